"""KFP wrappers of the ingest stage (logic: ingest.py): `ingest` and `commit_ingest`."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    source_digest: str,
    ingestion: dict,
    time_column: str,
    data: Output[Dataset],
    time: dict = {},  # noqa: B006 (KFP parameters take literal defaults)
):
    """Read the configured source in chunks and write the rows of the configured window.

    The state store (watermarks, dataset catalogue) comes from MLPIPE_STATE_DIR in the task's
    environment, never from a parameter. An incremental ingest depends on that state: its caching
    must be off (`IngestionConfig.live`).

    Args:
        source: What to read: a path or glob (file) or a URL (url); "" = the configured one.
        source_digest: Digest of the source, computed by the CLI: part of the cache key, so changed
            data re-runs everything downstream and unchanged data hits the cache.
        ingestion: The `data_ingestion` config section.
        time_column: Column the window applies to.
        time: The schema's `time` block (how that column is read); {} = a number column.
        data: Output Dataset (Parquet); metadata: rows, columns, sha256, version (content digest),
            source, query, window, watermark (candidate; committed by `commit_ingest`), checks,
            metrics, anomalies, task.
    """
    from components.common.recorder import record_task
    from components.ingest.ingest import run

    with record_task("ingest") as rec:
        meta = run(source, data.path, ingestion, time_column or None, source_digest, time_spec=time)
        rec.rows = meta["rows"]
        rec.metrics = dict(meta.get("metrics", {}))
        rec.details = {
            "version": meta["version"],
            "anomalies": [a["message"] for a in meta.get("anomalies", [])],
            "watermark": (meta.get("watermark") or {}).get("to"),
        }
    data.metadata.update(meta, task=rec.to_dict())


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def commit_ingest(data: Input[Dataset]) -> str:
    """Commit an ingested batch: advance its source's watermark, mark its version committed.

    Runs after the batch was validated and consumed (a side effect: caching off). Idempotent, and
    refuses to move a watermark another run advanced since the batch was read.

    Args:
        data: The Dataset written by `ingest` (its metadata holds the candidate watermark).

    Returns:
        A JSON summary: committed or why not, the state key and the new watermark.
    """
    import json

    from components.common.recorder import record_task
    from components.ingest.commit import commit

    with record_task("commit") as rec:
        out = commit(dict(data.metadata))
        rec.details = out
    return json.dumps(out, sort_keys=True, default=str)
