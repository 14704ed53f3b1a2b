"""The pipelines' parameters that come from the config, derived from one validated Settings: the
compiled defaults, a cluster retraining run's parameters and what `--param` refuses. So a run's
`config` and `config_hash` are what it runs on: change the config (`--set`), not the parameters."""

from __future__ import annotations

import json
from typing import Any

from components.common.config import Settings


def training_parameters(settings: Settings) -> dict[str, Any]:
    """The training pipeline's config-derived parameters (pipelines/training.py)."""
    cfg = settings.pipeline
    return {
        "source": cfg.data_ingestion.source_url,
        # the schedule says when to run, not what: keep it out of ingest's cache key
        "ingestion": cfg.data_ingestion.model_dump(
            mode="json", exclude_none=True, exclude={"schedule"}
        ),
        "data_schema": settings.schema_.model_dump(mode="json", exclude_none=True),
        "feature_engineering": cfg.feature_engineering.model_dump(mode="json", exclude_none=True),
        "algorithms": list(cfg.model_training.algorithms),
        # JSON, not a dict parameter: KFP structs hold only floats (400 -> 400.0) and estimators
        # tell 1 from 1.0 (e.g. max_features)
        "training_json": json.dumps(cfg.model_training.model_dump(mode="json"), sort_keys=True),
        "seed": cfg.model_training.seed,
        "evaluation_cfg": cfg.evaluation.model_dump(mode="json", exclude_none=True),
        # logged as MLflow params (the config holds no webhook URL: it is refused at load)
        "config": cfg.model_dump(mode="json", exclude_none=True),
        "config_hash": settings.digest(),
        "experiment": cfg.project.experiment,
        "registered_model": cfg.project.registered_model,
        "deployment": cfg.deployment.model_dump(mode="json", exclude_none=True),
        # the alert settings; the webhook URL itself comes from a Secret, never a parameter
        "monitoring": cfg.monitoring.model_dump(mode="json", exclude_none=True),
    }


def monitoring_parameters(settings: Settings) -> dict[str, Any]:
    """The monitoring pipeline's config-derived parameters (pipelines/monitoring.py)."""
    cfg = settings.pipeline
    return {
        "data_schema": settings.schema_.model_dump(mode="json", exclude_none=True),
        # the webhook URL comes from a Secret (or the CLI's environment), never a parameter
        "monitoring": cfg.monitoring.model_dump(mode="json", exclude_none=True),
        "cost": cfg.evaluation.cost.model_dump(mode="json"),
        "registered_model": cfg.project.registered_model,
    }
