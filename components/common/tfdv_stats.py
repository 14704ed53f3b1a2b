"""TFDV statistics helpers shared by the stages that run TFDV jobs (validate, monitor).

Runs only in the tfdv environment (TFDV 1.16, pandas 1.5): TFDV and pandas are imported inside
the functions, so importing this module costs nothing elsewhere.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def import_tfdv():
    """Import TFDV quietly: TensorFlow, Beam and google-api-core log pages of notices on import."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger().setLevel(logging.ERROR)
    # display_util writes "Unable to import IPython" straight to stderr: not our concern
    with contextlib.redirect_stderr(io.StringIO()):
        import tensorflow_data_validation as tfdv
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tfdv


def for_tfdv(df: pd.DataFrame) -> pd.DataFrame:
    """A copy TFDV can read: it rejects dictionary (category) and datetime columns and object
    columns that mix numbers with text. Such columns were already reported by the project checks;
    TFDV sees them as text."""
    import pandas as pd

    out = {}
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_datetime64_any_dtype(s):
            s = s.astype(object)
        if pd.api.types.is_object_dtype(s) and not s.dropna().map(type).eq(str).all():
            s = s.map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v))
        out[str(col)] = s
    return pd.DataFrame(out)


def anomaly_reasons(anomalies: Any) -> Iterator[tuple[str | None, str, str, str]]:
    """(feature or None for the dataset, TFDV anomaly type, one-line description, short
    description) per reason TFDV gives, drift comparators left out: drift is measured apart."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    type_name = anomalies_pb2.AnomalyInfo.Type.Name
    infos: list[tuple[str | None, Any]] = list(anomalies.anomaly_info.items())
    if anomalies.HasField("dataset_anomaly_info"):
        infos.append((None, anomalies.dataset_anomaly_info))
    for name, info in infos:
        for reason in info.reason:
            kind = type_name(reason.type)
            if kind.startswith("COMPARATOR_"):
                continue
            text = " ".join((reason.description or reason.short_description).split())
            yield name, kind, text, reason.short_description


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def summarize_stats(stats: Any) -> dict[str, Any]:
    """A compact, JSON-able summary of one window's statistics (readable without TFDV)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    fns = statistics_pb2.FeatureNameStatistics
    standard = statistics_pb2.Histogram.STANDARD
    dataset = stats.datasets[0]
    features: dict[str, Any] = {}
    for f in dataset.features:
        name = ".".join(f.path.step) or f.name
        entry: dict[str, Any] = {"type": fns.Type.Name(f.type)}
        which = f.WhichOneof("stats")
        if which == "num_stats":
            ns = f.num_stats
            entry.update(
                kind="numeric",
                count=int(ns.common_stats.num_non_missing),
                missing=int(ns.common_stats.num_missing),
                mean=ns.mean,
                std=ns.std_dev,
                min=ns.min,
                max=ns.max,
                median=ns.median,
                zeros=int(ns.num_zeros),
                histogram=[
                    [_round(b.low_value), _round(b.high_value), round(b.sample_count, 2)]
                    for h in ns.histograms
                    if h.type == standard
                    for b in h.buckets
                ],
            )
        elif which == "string_stats":
            ss = f.string_stats
            buckets = ss.rank_histogram.buckets or [
                statistics_pb2.RankHistogram.Bucket(label=t.value, sample_count=t.frequency)
                for t in ss.top_values
            ]
            entry.update(
                kind="categorical",
                count=int(ss.common_stats.num_non_missing),
                missing=int(ss.common_stats.num_missing),
                unique=int(ss.unique),
                top_values=[[b.label, int(b.sample_count)] for b in buckets],
            )
        features[name] = entry
    return {"rows": int(dataset.num_examples), "features": features}
