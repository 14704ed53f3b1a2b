"""The TFDV side of the validate stage. Runs only in the tfdv environment (TFDV 1.16, pandas 1.5):

    python -m components.validate.tfdv_job --data data.parquet --schema-json '{...}' \
        --split-json '{...}' --out DIR

It splits the Dataset into the train and test windows (components.common.splitting, the same rows
the features stage uses), builds a TFDV schema from the data schema (or infers one when none is
given), computes statistics per window, validates both against the schema, measures drift of test
against train, and runs the project checks TFDV cannot express (components.validate.checks).

DIR is written atomically and holds one folder per output artifact:
    statistics/  train_stats.pb, test_stats.pb (TFDV DatasetFeatureStatisticsList, binary),
                 train_stats.json, test_stats.json (compact summaries), schema.json, schema.pbtxt
    schema/      schema.pbtxt (TFDV text format), schema.json
    anomalies/   anomalies.json (every finding, drift measurements, rows, status),
                 train_anomalies.pbtxt, test_anomalies.pbtxt (TFDV text format)
    report.html  self-contained: no script, no external resource
Exit code 0 whenever validation completed (blocking findings included), 2 for a bad argument or
data schema, 1 for anything unexpected. The main environment reads only the JSON files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from components.common.artifacts import atomic_dir, write_json, write_text
from components.common.config import DataSchema, LabelSpec, SchemaChecks, describe_errors
from components.common.tfdv_stats import anomaly_reasons, for_tfdv, import_tfdv, summarize_stats
from components.validate import checks
from components.validate.checks import DATASET, DRIFT, Contract, finding
from components.validate.report import render_report

STAGE = "validate"
WINDOWS = ("train", "test")
ARTIFACT_DIRS = ("statistics", "schema", "anomalies")
METRIC_NAMES = {"L_INFTY": "linf", "JENSEN_SHANNON_DIVERGENCE": "jensen_shannon"}
METRIC_LABELS = {"linf": "L-infinity distance", "jensen_shannon": "Jensen-Shannon divergence"}


def log(message: str) -> None:
    print(f"validate: {message}", flush=True)


# ---------------------------------------------------------------- schema


def _set_type(feature: Any, series: pd.Series | None, schema_pb2: Any) -> None:
    """Type of a column the data schema declares no dtype for (id, time): from the data."""
    if (
        series is None
        or pd.api.types.is_integer_dtype(series)
        or pd.api.types.is_bool_dtype(series)
    ):
        feature.type = schema_pb2.INT
    elif pd.api.types.is_float_dtype(series):
        feature.type = schema_pb2.FLOAT
    else:
        feature.type = schema_pb2.BYTES


def _presence(feature: Any, max_missing: float) -> None:
    feature.presence.min_fraction = 1.0 - max_missing
    feature.presence.min_count = 1


def drift_spec(contract: Contract, name: str) -> tuple[str, float]:
    """(metric, threshold) of a declared feature: its own `drift`, else the kind's default metric
    (L-infinity for categorical, Jensen-Shannon for numeric) at `checks.drift_threshold_default`."""
    spec = (contract.features or {})[name]
    default = contract.checks.drift_threshold_default
    metric = "linf" if spec.kind == "categorical" else "jensen_shannon"
    threshold = default
    if spec.drift is not None:
        metric, threshold = spec.drift.metric, spec.drift.threshold
    if metric == "linf" and spec.kind == "numeric":
        # TFDV's L-infinity comparator reads 0.0 on a numeric feature: it compares top values only
        log(f"feature {name!r}: linf drift needs a categorical feature; using jensen_shannon")
        metric = "jensen_shannon"
    return metric, threshold


def _set_comparator(feature: Any, metric: str, threshold: float) -> None:
    if metric == "linf":
        feature.drift_comparator.infinity_norm.threshold = threshold
    else:
        feature.drift_comparator.jensen_shannon_divergence.threshold = threshold


def build_schema(contract: Contract, df: pd.DataFrame) -> Any:
    """The TFDV schema of a declared data schema.

    Categorical features are INT with an int_domain over their codes and is_categorical (TFDV then
    computes top values and L-infinity drift for them; an exact code set with holes is a project
    check). Numeric features get an int or float domain. Presence follows max_missing_fraction;
    min_rows becomes the dataset's minimum example count.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    column = df.get
    for name in (contract.id_column, contract.time_column):
        if name:
            feature = schema.feature.add(name=name)
            _set_type(feature, column(name), schema_pb2)
            _presence(feature, contract.max_missing(name))
    for name, spec in (contract.features or {}).items():
        feature = schema.feature.add(name=name)
        _presence(feature, contract.max_missing(name))
        if spec.dtype == "string":
            # raw texts reach TFDV: BYTES with the declared texts as its domain (an unseen text is
            # TFDV's ENUM_TYPE_UNEXPECTED_STRING_VALUES)
            feature.type = schema_pb2.BYTES
            feature.string_domain.name = name
            feature.string_domain.value.extend(spec.values or [])
        elif spec.kind == "categorical" and spec.dtype == "int":
            codes = spec.codes()
            feature.type = schema_pb2.INT
            feature.int_domain.min, feature.int_domain.max = min(codes), max(codes)
            feature.int_domain.is_categorical = True
        elif spec.dtype == "int":
            feature.type = schema_pb2.INT
            if spec.min is not None:
                feature.int_domain.min = int(spec.min)
            if spec.max is not None:
                feature.int_domain.max = int(spec.max)
        else:
            feature.type = schema_pb2.FLOAT
            if spec.kind == "categorical":
                codes = spec.codes()
                feature.float_domain.min, feature.float_domain.max = min(codes), max(codes)
            if spec.min is not None:
                feature.float_domain.min = spec.min
            if spec.max is not None:
                feature.float_domain.max = spec.max
        _set_comparator(feature, *drift_spec(contract, name))
    if contract.label:
        label = contract.label
        feature = schema.feature.add(name=label.name)
        feature.type = schema_pb2.INT
        feature.int_domain.min, feature.int_domain.max = min(label.values), max(label.values)
        feature.int_domain.is_categorical = True
        _presence(feature, contract.max_missing(label.name))
    schema.dataset_constraints.min_examples_count = contract.checks.min_rows
    return schema


def infer_schema(tfdv: Any, train_stats: Any, contract: Contract) -> Any:
    """No data schema given: TFDV infers one from the train window; every inferred feature except
    id, time and label gets a drift comparator at the default threshold."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = tfdv.infer_schema(train_stats, infer_feature_shape=False)
    skip = {contract.id_column, contract.time_column, contract.label_name}
    threshold = contract.checks.drift_threshold_default
    for feature in schema.feature:
        if feature.name in skip:
            continue
        numeric = feature.type in (schema_pb2.INT, schema_pb2.FLOAT) and not feature.HasField(
            "domain"
        )
        _set_comparator(feature, "jensen_shannon" if numeric else "linf", threshold)
    schema.dataset_constraints.min_examples_count = contract.checks.min_rows
    return schema


# ---------------------------------------------------------------- statistics


# ---------------------------------------------------------------- anomalies


def tfdv_findings(anomalies: Any, window: str) -> list[dict[str, Any]]:
    """Blocking findings from TFDV's anomalies of one window (drift comes from drift_skew_info),
    with TFDV's own type (`anomaly_type`, also in `check` as tfdv:<TYPE>) and short description.
    One on a column a project check already failed is marked corroborating in `validate`."""
    return [
        finding(
            window,
            name,
            f"tfdv:{kind}",
            text,
            source="tfdv",
            anomaly_type=kind,
            short_description=short,
        )
        for name, kind, text, short in anomaly_reasons(anomalies)
    ]


def drift_measurements(anomalies: Any) -> dict[str, dict[str, Any]]:
    """Every comparator's measurement (test against train), drifted or not."""
    out = {}
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for m in info.drift_measurements:
            kind = m.DESCRIPTOR.fields_by_name["type"].enum_type.values_by_number[m.type].name
            metric = METRIC_NAMES.get(kind, kind.lower())
            out[name] = {
                "metric": metric,
                "value": round(float(m.value), 6),
                "threshold": float(m.threshold),
                "drifted": bool(m.value > m.threshold),
            }
    return dict(sorted(out.items()))


def drift_findings(drift: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        finding(
            "test",
            name,
            f"drift_{m['metric']}",
            f"{METRIC_LABELS.get(m['metric'], m['metric'])} {m['value']:.4g} from the train "
            f"window, above the threshold {m['threshold']:g}",
            kind=DRIFT,
            source="tfdv",
            value=m["value"],
            threshold=m["threshold"],
        )
        for name, m in drift.items()
        if m["drifted"]
    ]


# ---------------------------------------------------------------- the job


def _read(path: str) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    try:
        return pd.read_parquet(path), []
    except Exception as exc:  # any unreadable file is a blocking finding, not a crash
        text = " ".join(str(exc).split())[:300]
        return None, [finding(DATASET, None, "unreadable", f"cannot read {path}: {text}")]


def validate(
    data_path: str, data_schema: dict[str, Any], split_cfg: dict[str, Any], out_dir: str
) -> dict[str, Any]:
    """Validate the Dataset at `data_path`; write the outputs to `out_dir`; return the summary."""
    t0 = time.perf_counter()
    contract = Contract.from_dict(data_schema)
    tfdv = import_tfdv()
    from google.protobuf import json_format, text_format

    log(f"TFDV {tfdv.__version__} imported in {time.perf_counter() - t0:.1f} s")
    df, findings = _read(data_path)
    windows: dict[str, pd.DataFrame] = {}
    if df is not None:
        log(f"read {len(df):,} rows x {len(df.columns)} columns from {data_path}")
        ignored = [c for c in contract.ignore if c in df.columns]
        if ignored:
            df = contract.usable(df)
            log(f"dropped {len(ignored)} ignored column(s) (columns.ignore): {', '.join(ignored)}")
        windows, more = checks.project_findings(df, contract, split_cfg)
        findings += more
    rows = {
        "dataset": 0 if df is None else len(df),
        **{w: len(windows.get(w, ())) for w in WINDOWS},
    }
    if windows:
        log(f"windows: train {rows['train']:,} rows, test {rows['test']:,} rows")

    t1 = time.perf_counter()
    stats: dict[str, Any] = {}
    tfdv_anomalies: dict[str, Any] = {}
    schema, schema_source = None, "data_schema" if contract.declared else "inferred"
    if contract.declared:
        schema = build_schema(contract, pd.DataFrame() if df is None else df)
    elif windows:
        train_stats = tfdv.generate_statistics_from_dataframe(for_tfdv(windows["train"]))
        schema = infer_schema(tfdv, train_stats, contract)
    for name in WINDOWS:
        if name in windows:
            options = tfdv.StatsOptions(schema=schema, num_top_values=50)
            stats[name] = tfdv.generate_statistics_from_dataframe(
                for_tfdv(windows[name]), stats_options=options
            )
    drift: dict[str, dict[str, Any]] = {}
    if stats:
        tfdv_anomalies["train"] = tfdv.validate_statistics(stats["train"], schema)
        tfdv_anomalies["test"] = tfdv.validate_statistics(
            stats["test"], schema, previous_statistics=stats["train"]
        )
        drift = drift_measurements(tfdv_anomalies["test"])
        for name in WINDOWS:
            findings += tfdv_findings(tfdv_anomalies[name], name)
        findings += drift_findings(drift)
        log(f"statistics and anomalies of both windows in {time.perf_counter() - t1:.1f} s")

    checks.assign_roles(findings, contract)
    blocking = checks.counted_blocking(checks.mark_corroborating(findings))
    summary = {
        "status": "failed" if blocking else "passed",
        "blocking": len(blocking),
        "drift": sum(1 for f in findings if f["kind"] == DRIFT),
        "rows": rows,
        "duplicate_row_share": (
            None if df is None else round(checks.duplicate_row_share(df, contract), 4)
        ),
        "schema_source": schema_source,
        "split": split_cfg,
        "tfdv_version": tfdv.__version__,
        "drift_measurements": drift,
        "findings": findings,
    }
    summaries = {name: summarize_stats(s) for name, s in stats.items()}

    with atomic_dir(out_dir) as tmp:
        stats_dir, schema_dir, anomalies_dir = (tmp / d for d in ARTIFACT_DIRS)
        for folder in (stats_dir, schema_dir, anomalies_dir):
            folder.mkdir()
        for name, s in stats.items():
            (stats_dir / f"{name}_stats.pb").write_bytes(s.SerializeToString())
            write_json(summaries[name], stats_dir / f"{name}_stats.json")
            write_text(
                text_format.MessageToString(tfdv_anomalies[name]),
                anomalies_dir / f"{name}_anomalies.pbtxt",
            )
        if schema is not None:
            schema_json = {
                "source": schema_source,
                "tfdv_schema": json_format.MessageToDict(schema, preserving_proto_field_name=True),
            }
            for folder in (schema_dir, stats_dir):
                write_text(text_format.MessageToString(schema), folder / "schema.pbtxt")
                write_json(schema_json, folder / "schema.json")
        write_json(summary, anomalies_dir / "anomalies.json")
        write_text(render_report(summary, summaries), tmp / "report.html")
    log(
        f"{summary['blocking']} blocking and {summary['drift']} drift findings "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m components.validate.tfdv_job", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", required=True, help="the Dataset (Parquet)")
    parser.add_argument(
        "--schema-json",
        default="{}",
        help="the data schema as JSON (config/data_schema.yaml); '{}' or no `features`: infer",
    )
    parser.add_argument(
        "--split-json",
        required=True,
        help="feature_engineering.split as JSON (or the whole feature_engineering section)",
    )
    parser.add_argument("--out", required=True, help="output folder (replaced atomically)")
    return parser.parse_args(argv)


def split_config(value: dict[str, Any]) -> dict[str, Any]:
    """`feature_engineering.split`, given either itself or the whole section."""
    return dict(value["split"]) if isinstance(value.get("split"), dict) else dict(value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        data_schema = json.loads(args.schema_json)
        split_cfg = split_config(json.loads(args.split_json))
        Contract.from_dict(data_schema)
    except ValidationError as exc:
        # from_dict validates the whole schema, or only its label/checks when it has no features
        models = {m.__name__: m for m in (DataSchema, LabelSpec, SchemaChecks)}
        problems = "; ".join(describe_errors(models.get(exc.title, DataSchema), exc))
        print(f"validate: invalid argument: {problems}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad JSON
        print(f"validate: invalid argument: {exc}", file=sys.stderr)
        return 2
    validate(str(Path(args.data)), data_schema, split_cfg, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
