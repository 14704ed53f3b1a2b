"""A real PostgreSQL server for tests and the cluster rehearsal: Debian's server binaries, a
cluster in a temporary folder, password authentication, listening on 127.0.0.1 only. As root it
runs as the postgres user (initdb refuses root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, driver: str = "postgresql+psycopg") -> str:
        """The SQLAlchemy URL without the password (it comes from the environment)."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{self.database}"

    def engine(self):
        import sqlalchemy as sa

        url = f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"
        return sa.create_engine(url, pool_pre_ping=True)


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_postgres(
    port: int | None = None,
    user: str = "mlpipe",
    password: str | None = None,
    database: str = "postgres",
) -> Iterator[Postgres]:
    """A server on `port` (default: a free one) with superuser `user`; `database` is created
    if it is not `postgres`. Stopped and removed afterwards."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="mlpipe-pg-"))
    data, pwfile = folder / "data", folder / "pw"
    password = password or "pg-" + os.urandom(6).hex()
    pwfile.write_text(password + "\n")
    run_as: list[str] = []
    if root:
        shutil.chown(folder, "postgres")
        shutil.chown(pwfile, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = port or _free_port()

    def pg(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=120, env=env)

    def check(result: subprocess.CompletedProcess, what: str) -> None:
        if result.returncode != 0:
            log = (folder / "log").read_text() if (folder / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL {what} failed: {result.stdout}{result.stderr}{log}")

    check(
        pg(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ),
        "initdb",
    )
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = False
    try:
        check(
            pg(
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(folder / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ),
            f"start on port {port}",
        )
        started = True
        if database != "postgres":
            env = {**os.environ, "PGPASSWORD": password}
            check(
                pg(
                    str(bindir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    user,
                    database,
                    env=env,
                ),
                f"createdb {database}",
            )
        yield Postgres("127.0.0.1", port, user, password, database)
    finally:
        if started:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
