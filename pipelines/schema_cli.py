"""`mlpipe schema infer`: draft a data schema (config/data_schema.yaml's format) from a dataset.

mlpipe schema infer DATA --label COL [--time-column COL] [--id-column COL] [-o FILE] [--force]
                    [--no-tfdv] [--tfdv-python PY]

DATA is a Parquet, CSV or JSON-lines file, a glob, or a folder of such files, read by ingest's
file readers. Without -o the draft is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.common.artifacts import write_text
from components.common.config import IngestionConfig
from components.common.errors import StageError
from components.common.tfdv_env import TFDV_PYTHON_ENV
from pipelines.cli_args import add_tfdv_python_arg

if TYPE_CHECKING:  # pandas costs ~0.7 s to import: only `schema infer` reads data
    import pandas as pd


def read_data(source: str) -> pd.DataFrame:
    """The rows of a file, glob or folder, read the way ingest reads a `file` source."""
    import pyarrow as pa

    from components.ingest.sources.files import FORMATS, iter_file

    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS)
        if not files:
            raise StageError("schema infer", f"{source}: no {'/'.join(sorted(FORMATS))} file")
        sources = [str(p) for p in files]
    else:
        sources = [source]
    cfg = IngestionConfig(source_url=source)
    tables = [t for s in sources for t in iter_file(s, cfg)]
    if not tables:
        raise StageError("schema infer", f"{source}: no rows")
    try:
        return pa.concat_tables(tables, promote_options="default").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # files with clashing column types
        raise StageError("schema infer", f"{source}: the files do not fit together: {exc}") from exc


def cmd_infer(args: argparse.Namespace) -> int:
    from components.validate.draft import DraftError, infer

    out = Path(args.output) if args.output else None
    if out is not None and out.exists() and not args.force:
        print(f"mlpipe schema infer: {out} exists (use --force to replace it)", file=sys.stderr)
        return 1
    try:
        df = read_data(args.data)
        # progress goes to stderr so that the printed draft can be piped
        draft, text = infer(
            df,
            args.label,
            args.time_column,
            args.id_column,
            source=args.data,
            use_tfdv=not args.no_tfdv,
            python=args.tfdv_python,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (DraftError, StageError) as exc:
        no_tfdv = isinstance(exc, StageError) and exc.subject == TFDV_PYTHON_ENV
        hint = " (or draft without TFDV: --no-tfdv)" if no_tfdv else ""
        print(f"mlpipe schema infer: {exc}{hint}", file=sys.stderr)
        return 1
    if out is None:
        print(text, end="")
        return 0
    write_text(text, out)  # whole or not at all: a failed write never leaves half a schema
    print(f"wrote {out}: {draft.header[0]}")
    for name, why in draft.skipped.items():
        print(f"  not drafted: {name}: {why}")
    for line in draft.warnings:
        print(f"  warning: {line}")
    print(f"review it, then: mlpipe run --schema {out} --set data_ingestion.source_url={args.data}")
    if (draft.schema.get("time") or {}).get("kind") == "timestamp":
        # the default config's windows are the bundled data's years: refused for a timestamp
        print(
            "  with the time windows as ISO dates: data_ingestion.window, "
            "feature_engineering.split.train_window and test_window "
            "(an example: config/examples/signups.yaml)"
        )
    return 0


def add_schema_parser(sub: Any) -> None:
    """Register `mlpipe schema ...` on the CLI's subparsers."""
    schema = sub.add_parser("schema", help="draft a data schema from data")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True)
    p = schema_sub.add_parser("infer", help="draft data_schema.yaml from a dataset (to review)")
    p.add_argument("data", help="a Parquet/CSV/JSON-lines file, a glob or a folder")
    p.add_argument("--label", required=True, help="the binary label column")
    p.add_argument("--time-column", default=None, help="a numeric time column (e.g. year)")
    p.add_argument("--id-column", default=None, help="a unique row id column")
    p.add_argument("-o", "--output", default=None, help="write the draft here (default: print)")
    p.add_argument("--force", action="store_true", help="replace an existing -o file")
    p.add_argument("--no-tfdv", action="store_true", help="pandas statistics only (no TFDV job)")
    add_tfdv_python_arg(p)
    p.set_defaults(func=cmd_infer)
