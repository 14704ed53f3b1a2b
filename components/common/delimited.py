"""Delimited text (CSV): the hint for a file read with the wrong delimiter, shared by every
reader of CSV files (ingest's pyarrow reader, monitor's batch reader)."""

from __future__ import annotations

COMMON_DELIMITERS = (",", ";", "\t", "|")


def delimiter_hint(head: str | bytes, delimiter: str) -> str | None:
    """ "did you mean delimiter ';'?" when the header line has no `delimiter` but another common
    one: such a file parses into one column holding whole lines."""
    if isinstance(head, bytes):
        head = head.decode("utf-8", errors="replace")
    lines = head.lstrip("\ufeff").splitlines()
    line = lines[0] if lines else ""
    if delimiter in line:
        return None
    counts = {d: line.count(d) for d in COMMON_DELIMITERS if d != delimiter}
    best = max(counts, key=lambda d: counts[d])
    return f"did you mean delimiter {best!r}?" if counts[best] else None


def one_column_message(delimiter: str, hint: str) -> str:
    return f"parsed into 1 column with delimiter {delimiter!r}; {hint} (data_ingestion.delimiter)"
