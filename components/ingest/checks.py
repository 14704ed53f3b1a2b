"""Freshness and completeness of an ingested batch: metrics, and anomalies when a check fails.

- freshness: age of the newest row (`checks.freshness_column`) against `checks.max_age`;
- completeness: the Dataset's row count against `checks.min_rows` / `checks.max_rows`.

Anomalies are warnings unless `checks.blocking` is true; then ingest stops before the Dataset is
moved into place (no Dataset, watermark not advanced).
"""

from __future__ import annotations

import time
from typing import Any

from components.common.config import IngestChecks, parse_duration


def evaluate(
    checks: IngestChecks, rows: int, newest_epoch_s: float | None, now: float | None = None
) -> dict[str, Any]:
    """{'checks': {...}, 'metrics': {...}, 'anomalies': [...]} for one batch."""
    now = time.time() if now is None else now
    severity = "blocking" if checks.blocking else "warning"
    result: dict[str, Any] = {
        "checks": {},
        "metrics": {"ingest_rows": float(rows)},
        "anomalies": [],
    }

    if checks.freshness_column and checks.max_age:
        max_age_s = parse_duration(checks.max_age)
        age = None if newest_epoch_s is None else round(now - newest_epoch_s, 3)
        ok = age is not None and age <= max_age_s
        result["checks"]["freshness"] = {
            "column": checks.freshness_column,
            "newest": None if newest_epoch_s is None else _iso(newest_epoch_s),
            "age_s": age,
            "max_age_s": max_age_s,
            "passed": ok,
        }
        if age is not None:
            result["metrics"]["ingest_newest_age_s"] = float(age)
        if not ok:
            what = (
                f"no value in {checks.freshness_column!r}"
                if age is None
                else f"the newest row ({_iso(newest_epoch_s)}) is {_human(age)} old"
            )
            result["anomalies"].append(
                {
                    "check": "freshness",
                    "severity": severity,
                    "subject": checks.freshness_column,
                    "message": f"stale data: {what}, more than the allowed {checks.max_age}",
                }
            )

    if checks.min_rows is not None or checks.max_rows is not None:
        low, high = checks.min_rows, checks.max_rows
        ok = (low is None or rows >= low) and (high is None or rows <= high)
        result["checks"]["completeness"] = {
            "rows": rows,
            "min_rows": low,
            "max_rows": high,
            "passed": ok,
        }
        if not ok:
            expected = f"{low if low is not None else 0}-{high if high is not None else 'any'}"
            result["anomalies"].append(
                {
                    "check": "completeness",
                    "severity": severity,
                    "subject": "rows",
                    "message": f"incomplete data: {rows:,} rows, expected {expected}",
                }
            )
    return result


def _iso(epoch_s: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s or 0))


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
