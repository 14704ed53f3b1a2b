"""Ingest throughput and memory per source type.

Builds the sources in a temporary folder from the bundled data and runs the ingest logic on each
in a fresh Python process (so each peak RSS is that ingest's own), printing rows, wall seconds,
rows/s and peak RSS:

- CSV and Parquet: the bundled data replicated 10x (2,776,770 rows; ids made unique), the memory
  check of acceptance 4: peak RSS must stay under 2 GB;
- SQLite and PostgreSQL (when its server binaries are installed): the bundled data (277,677 rows);
- a REST JSON API served by a local http.server on 127.0.0.1, 1,000 rows a page (page pagination).

    uv run python benchmarks/ingest_sources.py [--replicas 10] [--batch-size 100000] [--skip-pg]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "acs_employment_ma_2015_2018.parquet"
LIMIT_MB = 2048


def one(ingestion: dict, out: str) -> None:
    """Child process: ingest once, print the figures as JSON."""
    sys.path.insert(0, str(REPO))
    from components.ingest.ingest import run

    t0 = time.perf_counter()
    meta = run(ingestion["source_url"], out, ingestion, "year")
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": meta["rows"],
                "wall_s": wall,
                "peak_rss_mb": peak,
                "chunks": meta["read"]["chunks"],
            }
        )
    )


def measure(label: str, ingestion: dict, tmp: Path, env: dict | None = None) -> dict:
    out = tmp / f"out-{label.split()[0].lower()}.parquet"
    cmd = [sys.executable, __file__, "--one", json.dumps(ingestion), str(out)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=REPO
    )
    if proc.returncode != 0:
        sys.exit(f"{label}: ingest failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row.update(source=label, rows_per_s=row["rows"] / row["wall_s"])
    out.unlink(missing_ok=True)
    return row


def replicate(replicas: int, tmp: Path) -> tuple[Path, Path, int]:
    """The bundled data `replicas` times as CSV and Parquet, written chunk by chunk."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    base = pq.read_table(DATA)
    span = int(pc.max(base["id"]).as_py()) + 1
    csv_path, pq_path = tmp / "acs_x.csv", tmp / "acs_x.parquet"
    with pcsv.CSVWriter(csv_path, base.schema) as cw, pq.ParquetWriter(pq_path, base.schema) as pw:
        for k in range(replicas):
            ids = pc.add(base["id"], pa.scalar(k * span, base.schema.field("id").type))
            part = base.set_column(base.schema.get_field_index("id"), "id", ids)
            cw.write_table(part)
            pw.write_table(part)
    return csv_path, pq_path, base.num_rows * replicas


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_api(page_size: int = 1000) -> tuple[ThreadingHTTPServer, str]:
    import pandas as pd

    frame = pd.read_parquet(DATA)
    pages = [
        json.dumps(
            {"data": json.loads(frame.iloc[i : i + page_size].to_json(orient="records"))}
        ).encode()
        for i in range(0, len(frame), page_size)
    ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
            body = pages[page - 1] if page <= len(pages) else b'{"data": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/people"


def start_postgres(tmp: Path):
    """A throwaway cluster (as the postgres user when root); None if PostgreSQL is missing."""
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        return None
    bindir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="mlpipe-pg-bench-"))
    (folder / "pw").write_text("bench\n")
    run_as = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(folder / "d"),
            "-U",
            "bench",
            "--pwfile",
            str(folder / "pw"),
            "--auth=scram-sha-256",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(folder / "d"),
            "-l",
            str(folder / "log"),
            "-o",
            opts,
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(folder / "d"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)

    return port, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(json.loads(args.one[0]), args.one[1])
        return

    import pandas as pd
    import sqlalchemy as sa

    rows = []
    with tempfile.TemporaryDirectory(prefix="mlpipe-ingest-bench-") as tmpdir:
        tmp = Path(tmpdir)
        csv_path, pq_path, n = replicate(args.replicas, tmp)
        print(
            f"sources: {n:,} rows; CSV {csv_path.stat().st_size / 1e6:.0f} MB, "
            f"Parquet {pq_path.stat().st_size / 1e6:.0f} MB",
            flush=True,
        )
        batch = {"batch_size": args.batch_size}
        rows.append(measure(f"CSV {args.replicas}x", {"source_url": str(csv_path), **batch}, tmp))
        rows.append(
            measure(f"Parquet {args.replicas}x", {"source_url": str(pq_path), **batch}, tmp)
        )

        frame = pd.read_parquet(DATA)
        db = tmp / "acs.db"
        frame.to_sql("people", sa.create_engine(f"sqlite:///{db}"), index=False, chunksize=50_000)
        sql = {
            "source_type": "sql",
            "source_url": f"sqlite:///{db}",
            "sql": {"table": "people"},
            **batch,
        }
        rows.append(measure("SQLite 1x", sql, tmp))

        pg = None if args.skip_pg else start_postgres(tmp)
        if pg is None:
            print("PostgreSQL: skipped (server binaries not installed or --skip-pg)")
        else:
            port, stop = pg
            try:
                engine = sa.create_engine(
                    f"postgresql+psycopg://bench:bench@127.0.0.1:{port}/postgres"
                )
                frame.head(0).to_sql("people", engine, index=False)  # the table, then COPY
                with engine.begin() as conn:
                    cursor = conn.connection.driver_connection.cursor()
                    with cursor.copy("COPY people FROM STDIN (FORMAT CSV)") as copy:
                        copy.write(frame.to_csv(index=False, header=False))
                engine.dispose()
                cfg = {
                    "source_type": "sql",
                    "source_url": f"postgresql+psycopg://bench@127.0.0.1:{port}/postgres",
                    "sql": {"table": "people", "password_env": "BENCH_PG_PASSWORD"},
                    **batch,
                }
                rows.append(measure("PostgreSQL 1x", cfg, tmp, env={"BENCH_PG_PASSWORD": "bench"}))
            finally:
                stop()

        server, url = start_api()
        try:
            api = {
                "source_type": "api",
                "source_url": url,
                "api": {"page_size": 1000, "auth_scheme": None},
                **batch,
            }
            rows.append(measure("API 1x (1,000/page)", api, tmp))
        finally:
            server.shutdown()

    print(f"\n{'source':<22} {'rows':>10} {'wall s':>8} {'rows/s':>11} {'peak RSS MB':>12}")
    for r in rows:
        print(
            f"{r['source']:<22} {r['rows']:>10,} {r['wall_s']:>8.2f} "
            f"{r['rows_per_s']:>11,.0f} {r['peak_rss_mb']:>12,.0f}"
        )
    csv_peak = rows[0]["peak_rss_mb"]
    verdict = "OK" if csv_peak < LIMIT_MB else "OVER"
    print(f"\nCSV {args.replicas}x peak RSS {csv_peak:,.0f} MB (limit {LIMIT_MB} MB): {verdict}")
    if csv_peak >= LIMIT_MB:
        sys.exit(1)


if __name__ == "__main__":
    main()
