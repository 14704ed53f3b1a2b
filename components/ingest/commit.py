"""Commit an ingested batch: advance its watermark and mark its version committed.

Its own module so the `commit_ingest` task imports only the state store: not pyarrow, pandas or
the pydantic config that loading a source needs (about 2 s of start-up for a 0.1 s task).
"""

from __future__ import annotations

import time
from typing import Any

from components.common.artifacts import restore_ints
from components.common.errors import StageError
from components.ingest.state import STAGE, open_store


def commit(meta: dict[str, Any]) -> dict[str, Any]:
    """Advance the watermark of the batch described by `meta` (a Dataset's metadata) and mark its
    version committed. Run by the pipeline after the batch was validated and consumed.

    Idempotent (committing the same batch twice is a no-op); refuses to move a watermark that
    another run advanced since this batch was read (compare-and-set).
    """
    meta = restore_ints(meta)  # KFP hands the metadata back with doubles: id 137910 stays an int
    wm = meta.get("watermark")
    store = open_store("committing an incremental load" if wm else None)
    if store is None:
        return {"committed": False, "reason": "no state store"}
    sha = meta.get("content_sha256")
    if sha:
        store.mark_committed(sha)
    if not wm:
        return {
            "committed": False,
            "reason": "not an incremental load",
            "version": meta.get("version"),
        }
    key = wm["state_key"]
    current = store.watermark(key)
    target = wm["to"]
    if current and current.get("value") == target["value"]:
        return {"committed": False, "reason": "already committed", "state_key": key, **target}
    read_at = (wm.get("committed") or {}).get("value")
    now_at = (current or {}).get("value")  # None: reset since this batch was read
    if now_at != read_at:
        raise StageError(
            STAGE,
            f"watermark {key} moved from {read_at!r} to {now_at!r} since this batch "
            "was read (another run committed first): re-run to load from the new watermark",
            subject=key,
        )
    record = {
        **target,
        "column": wm["column"],
        "previous": read_at,
        "version": meta.get("version"),
        "content_sha256": sha,
        "rows": meta.get("rows"),
        "source": meta.get("source"),
        "committed_at": time.time(),
    }
    store.advance_watermark(key, read_at, record)  # compare-and-set: one run wins
    return {"committed": True, "state_key": key, "previous": read_at, **target}
