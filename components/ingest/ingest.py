"""Ingest: read the configured file source, keep the configured time window, write one Dataset.

Catches what makes a source unusable before anything else runs: no matching file, an empty or
unreadable file, an unknown format, a missing time column, no rows in the window.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from components.common.artifacts import write_dataset
from components.common.config import IngestionConfig
from components.common.errors import DataError

STAGE = "ingest"
READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def resolve_files(source: str) -> list[Path]:
    """The files a path or glob names, sorted; an error if there are none."""
    matches = sorted(glob.glob(source)) if glob.has_magic(source) else [source]
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        what = "no file matches" if glob.has_magic(source) else "file not found:"
        raise DataError(STAGE, f"{what} {source}", subject=source)
    return files


def source_digest(source: str) -> str:
    """A content digest of every file the source names: the cache key of a run's data."""
    digest = hashlib.sha256()
    for file in resolve_files(source):
        digest.update(file.name.encode())
        with open(file, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def read_file(path: Path, batch_size: int) -> pd.DataFrame:
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            STAGE,
            f"{path}: unsupported file type {path.suffix!r} (expected one of {sorted(READERS)})",
            subject=str(path),
        )
    if path.stat().st_size == 0:
        raise DataError(STAGE, f"{path}: the file is empty", subject=str(path))
    try:
        if kind == "parquet":
            return pq.read_table(path).to_pandas()
        # csv in chunks of batch_size rows, so a large file never needs a second full copy
        chunks = list(pd.read_csv(path, chunksize=batch_size, low_memory=False))
        return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    except (pa.ArrowInvalid, pa.ArrowException, OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(STAGE, f"{path}: unreadable {kind} file: {exc}", subject=str(path)) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(STAGE, f"{path}: the file is empty", subject=str(path)) from exc


def read_source(source: str, batch_size: int) -> pd.DataFrame:
    frames = [read_file(f, batch_size) for f in resolve_files(source)]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if df.empty or len(df.columns) == 0:
        raise DataError(STAGE, f"{source}: no rows", subject=source)
    return df


def apply_window(df: pd.DataFrame, window: dict[str, int] | None, time_column: str | None):
    if not window:
        return df
    if not time_column or time_column not in df.columns:
        raise DataError(
            STAGE, f"column {time_column!r} is missing: the window needs it", subject=time_column
        )
    times = pd.to_numeric(df[time_column], errors="coerce")
    kept = df[(times >= window["start"]) & (times <= window["end"])]
    if kept.empty:
        raise DataError(
            STAGE,
            f"no rows with {time_column} in {window['start']}-{window['end']}",
            subject=time_column,
        )
    return kept.reset_index(drop=True)


def run(
    source: str,
    output_path: str,
    ingestion: dict[str, Any],
    time_column: str | None,
    digest: str = "",
) -> dict[str, Any]:
    """Read `source`, keep `ingestion['window']`, write the Dataset; return its metadata."""
    # re-validate: KFP passes dict parameters as JSON numbers (400 arrives as 400.0)
    cfg = IngestionConfig.model_validate(ingestion)
    window = cfg.window.model_dump() if cfg.window else None
    df = read_source(source, cfg.batch_size)
    rows_read = len(df)
    df = apply_window(df, window, time_column)
    meta = write_dataset(df, output_path)
    meta.update(
        source=source,
        source_type=cfg.source_type,
        source_digest=digest,
        rows_read=rows_read,
        window=window,
    )
    return meta
