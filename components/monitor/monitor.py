"""Monitor: drift and decay of a batch (or of logged traffic) against the registry's champion.

`run` reads the batch, fetches the champion's companions from the registry (training statistics
and TFDV schema, logged by the track stage), computes the batch's statistics with TFDV in the tfdv
environment (components.monitor.stats_job), measures drift per feature, measures decay when the
batch has labels (the champion scores it), decides none | alert | retrain and writes the drift
report. Nothing here raises for drift: it is a finding, never a blocking check.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components.common import categories, registry, tfdv_env
from components.common.artifacts import (
    FEATURE_SPEC_FILE,
    atomic_dir,
    read_json,
    write_json,
    write_text,
)
from components.common.config import DataSchema
from components.common.errors import StageError
from components.monitor import decay as decay_mod
from components.monitor import decision as decision_mod
from components.monitor import drift as drift_mod
from components.monitor.batch import read_table, rows_digest
from components.monitor.report import render

STAGE = "monitor"
JOB_MODULE = "components.monitor.stats_job"


REFERENCE_FILES = ("train_stats.json", "schema.json")


def fetch_reference(registered_model: str, out_dir: str, tracking_uri: str = "") -> dict[str, Any]:
    """Write the champion's reference to `out_dir`: its training statistics summary, TFDV
    schema, feature spec, and champion.json (version, features, label, evaluation metrics)."""
    with tempfile.TemporaryDirectory(prefix="mlpipe-monitor-ref-") as tmp:
        try:
            files, mv = registry.download_extra_files(
                registered_model, registry.CHAMPION, tmp, tracking_uri
            )
        except registry.RegistryError as exc:
            raise StageError(
                STAGE, f"nothing to monitor against: {exc}", subject="champion"
            ) from None
        missing = [f for f in REFERENCE_FILES if not (files / f).is_file()]
        if missing:
            raise StageError(
                STAGE,
                f"{registered_model} version {mv.version} carries no {missing} (logged by track)",
                subject="champion",
            )
        spec = read_json(files / FEATURE_SPEC_FILE)
        meta = {
            "registered_model": registered_model,
            "version": str(mv.version),
            "features": [f["name"] for f in spec["features"]],
            "label": spec["label"],
            "metrics": registry.version_metrics(mv),
        }
        with atomic_dir(out_dir) as out:
            for name in (*REFERENCE_FILES, FEATURE_SPEC_FILE):
                shutil.copy2(files / name, out / name)
            write_json(meta, out / "champion.json")
    return meta


def compute_statistics(
    batch_path: str,
    reference_dir: str,
    out_dir: str,
    python: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The batch's TFDV statistics (batch_stats.pb/.json, anomalies.json in `out_dir`), computed
    in the tfdv environment with the champion's schema. Returns anomalies.json."""
    python = python or tfdv_env.tfdv_python(STAGE)
    meta = read_json(Path(reference_dir) / "champion.json")
    spec = read_json(Path(reference_dir) / FEATURE_SPEC_FILE)
    with tempfile.TemporaryDirectory(prefix="mlpipe-monitor-batch-") as tmp:
        # a request log holds a string feature's codes, the training statistics its texts
        df = read_table(batch_path)
        texts = categories.to_texts(df, spec["features"])
        if texts is not df:
            batch_path = str(Path(tmp) / "batch.parquet")
            texts.to_parquet(batch_path, index=False)
        args = ["--data", batch_path, "--schema", str(Path(reference_dir) / "schema.json")]
        args += ["--features-json", json.dumps(meta["features"]), "--out", str(out_dir)]
        code, last = tfdv_env.run_module(python, JOB_MODULE, args, log, "monitor:")
    if code:
        raise RuntimeError(f"the TFDV statistics job failed (exit code {code}): {last}")
    return read_json(Path(out_dir) / "anomalies.json")


def assess(
    batch_path: str,
    reference_dir: str,
    statistics_dir: str,
    schema: DataSchema,
    monitoring: dict[str, Any],
    cost: dict[str, Any],
    result_path: str,
    report_path: str,
    context: dict[str, Any] | None = None,
    tracking_uri: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Drift, decay (if the batch has labels), the decision and the report; writes result.json
    to `result_path` and the HTML report; returns the result."""
    ref, stats = Path(reference_dir), Path(statistics_dir)
    champion = read_json(ref / "champion.json")
    train_stats = read_json(ref / "train_stats.json")
    batch_stats = read_json(stats / "batch_stats.json")
    anomalies = read_json(stats / "anomalies.json")["findings"]
    df = read_table(batch_path)
    label, features = champion["label"], champion["features"]
    measurements = drift_mod.measure(train_stats, batch_stats, schema)
    decay = None
    labelled = df[df[label].notna()] if label in df.columns else df.iloc[0:0]
    if len(labelled) and not anomalies and set(features) <= set(df.columns):
        with tempfile.TemporaryDirectory(prefix="mlpipe-monitor-model-") as tmp:
            model, _, _ = registry.load_version(
                champion["registered_model"], champion["version"], tmp, tracking_uri
            )
            spec = read_json(ref / FEATURE_SPEC_FILE)
        # a raw batch holds a string feature's texts, the model scores codes
        scores = model.predict_proba(categories.to_codes(labelled, spec["features"])[features])
        scores = scores[:, 1]
        decay = decay_mod.measure(
            labelled[label].to_numpy(),
            scores,
            champion["metrics"],
            monitoring["decay_tolerance"],
            cost,
        )
    decision = decision_mod.decide(measurements, decay, anomalies, len(df), monitoring["decision"])
    result = {
        "batch_digest": rows_digest(df),
        "rows": len(df),
        "registered_model": champion["registered_model"],
        "champion_version": champion["version"],
        "drift": measurements,
        "decay": decay,
        "anomalies": anomalies,
        "decision": decision,
        "newest": _newest(df, schema),
        "context": {"registered_model": champion["registered_model"], **(context or {})},
    }
    write_json(result, result_path)
    write_text(render(result, train_stats, batch_stats), report_path)
    top = ", ".join(f"{n} {m['value']:.4f}" for n, m in top_drift(measurements, 3))
    log(f"monitor: {len(df):,} rows vs v{champion['version']}: {decision['decision']} ({top})")
    return result


def run(
    batch_path: str,
    schema: DataSchema,
    monitoring: dict[str, Any],
    cost: dict[str, Any],
    registered_model: str,
    out_dir: str,
    context: dict[str, Any] | None = None,
    tracking_uri: str = "",
    python: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """All three steps in one call (what the pipeline's tasks do one each): `out_dir` gets
    reference/, statistics/, result.json and report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fetch_reference(registered_model, str(out / "reference"), tracking_uri)
    compute_statistics(batch_path, str(out / "reference"), str(out / "statistics"), python, log)
    return assess(
        batch_path,
        str(out / "reference"),
        str(out / "statistics"),
        schema,
        monitoring,
        cost,
        str(out / "result.json"),
        str(out / "report.html"),
        context,
        tracking_uri,
        log,
    )


def _newest(df: Any, schema: DataSchema) -> Any:
    """The batch's newest time value (the retraining window's end), if it has a time column."""
    col = schema.time_column
    if col and col in df.columns and df[col].notna().any():
        value = df[col].max()
        return value.item() if hasattr(value, "item") else value
    return None


def top_drift(measurements: dict[str, dict[str, Any]], n: int = 3) -> list[tuple[str, dict]]:
    """The n features closest to (or furthest past) their threshold, relative to it."""
    scored = [(k, m) for k, m in measurements.items() if m.get("value") is not None]
    return sorted(scored, key=lambda km: -km[1]["value"] / km[1]["threshold"])[:n]


def metrics(result: dict[str, Any]) -> dict[str, float]:
    """Scalar metrics of a result, for KFP Metrics and MLflow."""
    out: dict[str, float] = {
        "rows": float(result["rows"]),
        "drifted_features": float(len(result["decision"]["drifted"])),
        "anomalies": float(len(result["anomalies"])),
        "decision_code": float(decision_mod.RANK[result["decision"]["decision"]]),
    }
    for name, m in result["drift"].items():
        if m.get("value") is not None:
            out[f"drift.{name}"] = float(m["value"])
    for key in ("roc_auc", "expected_cost"):
        value = (result.get("decay") or {}).get(key)
        if value is not None:
            out[key] = float(value)
    return out
