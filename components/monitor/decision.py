"""The monitoring decision: none | alert | retrain, with its reasons.

- blocking anomalies (values outside the declared domains, missing features): `alert` — bad data
  is never trained on, whatever else the batch shows;
- fewer rows than `decision.min_rows`: `none` (reported, too noisy to act on);
- decay beyond the tolerance: `decision.on_decay` (default retrain);
- at least `decision.min_drifted_features` drifted features: `decision.on_drift` (default
  retrain). Drift never blocks anything (README "Two kinds of data checks"); it only decides.
"""

from __future__ import annotations

from typing import Any

from components.monitor import drift as drift_mod

RANK = {"none": 0, "alert": 1, "retrain": 2}


def decide(
    measurements: dict[str, dict[str, Any]],
    decay: dict[str, Any] | None,
    anomalies: list[dict[str, Any]],
    rows: int,
    policy: dict[str, Any],
) -> dict[str, Any]:
    drifted = drift_mod.drifted(measurements)
    reasons: list[str] = []
    kinds: list[str] = []
    decision = "none"
    if anomalies:
        kinds.append("data_anomaly")
        reasons += [
            f"{a.get('feature') or 'dataset'}: {a.get('description', a.get('check'))}"
            for a in anomalies
        ]
        decision = "alert"
    elif rows < (min_rows := policy.get("min_rows", 1)):
        reasons.append(f"only {rows} rows (< decision.min_rows {min_rows}): not acted on")
    else:
        if decay and decay.get("decayed"):
            kinds.append("performance_decay")
            reasons += decay["reasons"]
            decision = max(decision, policy.get("on_decay", "retrain"), key=RANK.__getitem__)
        if drifted and len(drifted) >= policy.get("min_drifted_features", 1):
            kinds.append("drift")
            reasons += [
                f"{n}: {measurements[n]['metric']} {measurements[n]['value']:.4f} > "
                f"{measurements[n]['threshold']:g}"
                for n in drifted
            ]
            decision = max(decision, policy.get("on_drift", "retrain"), key=RANK.__getitem__)
    return {"decision": decision, "reasons": reasons, "kinds": kinds, "drifted": drifted}
