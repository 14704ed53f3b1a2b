"""KFP wrapper of the ingest stage (logic: ingest.py)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    source_digest: str,
    ingestion: dict,
    time_column: str,
    data: Output[Dataset],
):
    """Read the configured source and write the rows of the configured window.

    Args:
        source: Path or glob of the source files (Parquet or CSV).
        source_digest: Content digest of the source, computed by the CLI: it is part of the cache
            key, so changed data re-runs everything downstream and unchanged data hits the cache.
        ingestion: The `data_ingestion` config section.
        time_column: Column the window applies to.
        data: Output Dataset (Parquet); metadata: rows, columns, sha256, source, window, task.
    """
    from components.common.recorder import record_task
    from components.ingest.ingest import run

    with record_task("ingest") as rec:
        meta = run(source, data.path, ingestion, time_column or None, source_digest)
        rec.rows = meta["rows"]
    data.metadata.update(meta, task=rec.to_dict())
