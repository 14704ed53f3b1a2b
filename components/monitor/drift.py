"""Drift of a batch against the champion's training data, per feature, from TFDV statistics
summaries (the JSON validate and the monitor's TFDV job write; readable without TFDV).

The same measures as TFDV's drift comparators, thresholds per feature from data_schema.yaml:
- categorical: L-infinity distance between the two value-frequency vectors (the largest change in
  any code's share);
- numeric: Jensen–Shannon divergence (base 2, so in [0, 1]) between the two histograms, after
  rebinning both onto the union of their bucket edges (mass spread uniformly within a bucket); a
  window whose values are all one number has a zero-width bucket, which is a bucket of its own,
  as in TFDV's comparator (`aligned`; tests/components/monitor/test_drift_tfdv.py checks the values
  against TFDV's and scipy's on the same windows).
"""

from __future__ import annotations

import math
from typing import Any

from components.common.config import DataSchema


def drift_spec(schema: DataSchema, name: str) -> tuple[str, float]:
    """(metric, threshold): the feature's own `drift`, else its kind's metric at the default.
    L-infinity needs value frequencies: a numeric feature always uses Jensen–Shannon."""
    spec = schema.features[name]
    metric = "linf" if spec.kind == "categorical" else "jensen_shannon"
    threshold = schema.checks.drift_threshold_default
    if spec.drift is not None:
        metric, threshold = spec.drift.metric, spec.drift.threshold
    if spec.kind == "numeric":
        metric = "jensen_shannon"
    return metric, threshold


def frequencies(entry: dict[str, Any]) -> dict[str, float]:
    """Share of each value of a categorical summary (top values)."""
    counts = {str(label): float(n) for label, n in entry.get("top_values", [])}
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def linf(a: dict[str, float], b: dict[str, float]) -> float:
    return max((abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b)), default=0.0)


def _rebin(histogram: list[list[float]], edges: list[float]) -> list[float]:
    mass = [0.0] * (len(edges) - 1)
    for low, high, count in histogram:
        if count <= 0:
            continue
        if high <= low:  # a point mass: the first fine bin starting at it
            i = max(0, min(len(mass) - 1, next((j for j, e in enumerate(edges) if e >= low), 0)))
            mass[i] += count
            continue
        for i in range(len(mass)):
            overlap = min(high, edges[i + 1]) - max(low, edges[i])
            if overlap > 0:
                mass[i] += count * overlap / (high - low)
    return mass


def histogram_distributions(
    a: list[list[float]], b: list[list[float]]
) -> tuple[list[float], list[float], list[float]]:
    """(edges, p, q): both histograms on the union of their edges, each summing to 1 (for plots;
    a point mass joins the bin starting at it: drift is measured on `aligned`)."""
    edges = sorted({float(x) for h in (a, b) for low, high, _ in h for x in (low, high)})
    if len(edges) < 2:
        edges = [edges[0], edges[0] + 1.0] if edges else [0.0, 1.0]
    p, q = _rebin(a, edges), _rebin(b, edges)
    sp, sq = sum(p), sum(q)
    return edges, [x / sp if sp else 0.0 for x in p], [x / sq if sq else 0.0 for x in q]


def _split(histogram: list[list[float]]) -> tuple[list[list[float]], dict[float, float], float]:
    """(buckets with a finite range, {value: count} of zero-width buckets, the count in buckets
    with an infinite bound)."""
    ranged, points, infinite = [], {}, 0.0
    for low, high, count in histogram:
        if not (math.isfinite(low) and math.isfinite(high)):
            infinite += count
        elif high == low:
            points[float(low)] = points.get(float(low), 0.0) + count
        else:
            ranged.append([low, high, count])
    return ranged, points, infinite


def aligned(a: list[list[float]], b: list[list[float]]) -> tuple[list[float], list[float]]:
    """(p, q): both histograms as distributions over the same buckets, aligned the way TFDV's
    Jensen-Shannon comparator does. Finite ranges are rebinned onto the union of their edges; a
    zero-width bucket (a constant window) is a bucket of its own per value, sharing no mass with
    any range (spread uniformly, a range puts none on one point: a constant batch against a
    spread reference reads 1.0, not a share that depends on where the reference's edges fall);
    infinite-bound mass is a bucket of its own per window."""
    (ra, pa, ia), (rb, pb, ib) = _split(a), _split(b)
    edges = sorted({float(x) for h in (ra, rb) for low, high, _ in h for x in (low, high)})
    p = _rebin(ra, edges) if len(edges) > 1 else []
    q = _rebin(rb, edges) if len(edges) > 1 else []
    for value in sorted(set(pa) | set(pb)):
        p.append(pa.get(value, 0.0))
        q.append(pb.get(value, 0.0))
    for mass_p, mass_q in ((ia, 0.0), (0.0, ib)):
        if mass_p or mass_q:
            p.append(mass_p)
            q.append(mass_q)
    sp, sq = sum(p), sum(q)
    return [x / sp if sp else 0.0 for x in p], [x / sq if sq else 0.0 for x in q]


def jensen_shannon(p: list[float], q: list[float]) -> float:
    def kl(x: list[float], m: list[float]) -> float:
        return sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m, strict=True) if xi > 0)

    m = [(pi + qi) / 2 for pi, qi in zip(p, q, strict=True)]
    return max(0.0, min(1.0, 0.5 * kl(p, m) + 0.5 * kl(q, m)))


def measure(
    reference: dict[str, Any], batch: dict[str, Any], schema: DataSchema
) -> dict[str, dict[str, Any]]:
    """Per feature of the schema: {metric, value, threshold, drifted}, or {missing: True} when a
    summary lacks the feature. `reference` and `batch` are statistics summaries."""
    out: dict[str, dict[str, Any]] = {}
    ref_f, new_f = reference.get("features", {}), batch.get("features", {})
    for name in schema.feature_names:
        metric, threshold = drift_spec(schema, name)
        if name not in ref_f or name not in new_f:
            out[name] = {"metric": metric, "threshold": threshold, "missing": True}
            continue
        if metric == "linf":
            value = linf(frequencies(ref_f[name]), frequencies(new_f[name]))
        else:
            p, q = aligned(ref_f[name].get("histogram", []), new_f[name].get("histogram", []))
            value = jensen_shannon(p, q)
        out[name] = {
            "metric": metric,
            "value": round(value, 6),
            "threshold": threshold,
            "drifted": value > threshold,
        }
    return out


def drifted(measurements: dict[str, dict[str, Any]]) -> list[str]:
    """Drifted features, largest excess over the threshold first."""
    hits = [(n, m) for n, m in measurements.items() if m.get("drifted")]
    return [n for n, m in sorted(hits, key=lambda nm: nm[1]["threshold"] - nm[1]["value"])]
