"""Reading what is monitored: a batch file, or the model server's JSON-lines request log.

Request log format (one line per request, written by the model server):
    {"ts", "model", "model_version", "request_id", "protocol", "status", "latency_ms",
     "inputs": [{feature: value, ...}, ...], "outputs": [p, ...]}
Each input row becomes one row; requests that failed (status >= 400 or not "ok") and unreadable
lines are skipped and counted. Labels that arrive later for logged requests come as a file with
`request_id`, a label column (named like the schema's label unless told otherwise) and optionally
`row` (the row's index within its request).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.delimited import delimiter_hint, one_column_message
from components.common.errors import DataError

STAGE = "monitor"
OK_STATUSES = {"ok", "success", "succeeded"}


def read_table(path: str | Path, delimiter: str = ",") -> pd.DataFrame:
    """A batch file (a path or an fsspec URL such as s3://...): Parquet, CSV (fields separated
    by `delimiter`, data_ingestion.delimiter) or JSON lines, by extension."""
    path = str(path)
    suffix = Path(path.rsplit("/", 1)[-1]).suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            df = pd.read_csv(path, sep=delimiter)
            # one column of whole lines: the file uses another delimiter (the header tells)
            hint = delimiter_hint(str(df.columns[0]), delimiter) if df.shape[1] == 1 else None
            if hint:
                raise DataError(
                    STAGE, f"{path}: {one_column_message(delimiter, hint)}", subject=str(path)
                )
            return df
        if suffix in (".jsonl", ".ndjson", ".json"):
            # pandas parses a local path that does not exist as JSON text ("Expected object")
            if "://" not in path and not Path(path).exists():
                raise FileNotFoundError(path)
            return pd.read_json(path, lines=True)
        return pd.read_parquet(path)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(STAGE, f"batch file {path} does not exist", subject=str(path)) from None
    except Exception as exc:  # any unreadable file: one clear message naming it
        raise DataError(STAGE, f"cannot read {path}: {exc}", subject=str(path)) from None


def _ok(status: Any) -> bool:
    if status is None:
        return True
    if isinstance(status, (int, float)) and not isinstance(status, bool):
        return status < 400
    return str(status).lower() in OK_STATUSES


def _lines(path: Path):
    with open(path) as fh:
        yield from fh


def read_request_log(path: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The logged input rows (plus `request_id`, `model_version`, `ts`, `prediction`) and
    counts of requests read, skipped as failed and skipped as unreadable. The server rotates
    its log (`path.1` ... `path.<N>`, components/serve/request_log.py): those files are read
    too, oldest first."""
    from components.serve.request_log import request_log_files

    path = Path(path)
    files = request_log_files(path)
    if not files:
        raise DataError(STAGE, f"request log {path} does not exist", subject=str(path))
    rows: list[dict[str, Any]] = []
    counts = {"requests": 0, "failed": 0, "unreadable": 0}
    for line in (line for file in files for line in _lines(file)):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            inputs = entry["inputs"]
            if not isinstance(inputs, list):
                raise TypeError("inputs is not a list")
        except (json.JSONDecodeError, KeyError, TypeError):
            counts["unreadable"] += 1
            continue
        if not _ok(entry.get("status")):
            counts["failed"] += 1
            continue
        counts["requests"] += 1
        outputs = entry.get("outputs") or []
        for i, item in enumerate(inputs):
            if not isinstance(item, dict):
                counts["unreadable"] += 1
                continue
            rows.append(
                {
                    **item,
                    "request_id": entry.get("request_id"),
                    "model_version": entry.get("model_version"),
                    "ts": entry.get("ts"),
                    "row": i,
                    "prediction": outputs[i] if i < len(outputs) else None,
                }
            )
    if not rows:
        raise DataError(
            STAGE, f"request log {path} holds no successful request rows ({counts})", subject="log"
        )
    return pd.DataFrame(rows), counts


def read_labels(
    labels_path: str | Path, label: str, delimiter: str = ",", column: str = ""
) -> pd.DataFrame:
    """The late labels file with its label column (`column`, default `label`, the schema's
    name) renamed to `label`. A missing column is a DataError naming the columns found."""
    column = column or label
    labels = read_table(labels_path, delimiter)
    missing = [c for c in ("request_id", column) if c not in labels.columns]
    if missing:
        found = ", ".join(str(c) for c in labels.columns) or "none"
        hint = " (name the label column with --label-column)" if column in missing else ""
        raise DataError(
            STAGE,
            f"labels file {labels_path} lacks column(s) {', '.join(missing)}; "
            f"it has: {found}{hint}",
            subject=column,
        )
    if column == label:
        return labels
    # another column holds the label: it replaces any column already named like the schema's
    return labels.drop(columns=[label], errors="ignore").rename(columns={column: label})


def attach_labels(
    df: pd.DataFrame,
    labels_path: str | Path,
    label: str,
    delimiter: str = ",",
    column: str = "",
) -> pd.DataFrame:
    """Join late labels onto logged rows by request_id (and `row`, default 0); `column`: the
    labels file's label column when it is not named like the schema's label."""
    labels = read_labels(labels_path, label, delimiter, column)
    if "row" not in labels.columns:
        labels = labels.assign(row=0)
    keyed = labels[["request_id", "row", label]].drop_duplicates(["request_id", "row"])
    return df.drop(columns=[label], errors="ignore").merge(
        keyed, on=["request_id", "row"], how="left"
    )


def rows_digest(df: pd.DataFrame) -> str:
    """A digest of the rows' content (column names, then each row's hash in order): the batch's
    identity for alert and retraining dedup, whatever file it came in."""
    digest = hashlib.sha256(json.dumps([str(c) for c in df.columns]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=False).values.tobytes())
    return digest.hexdigest()
