"""Select: the best of the per-algorithm models, by cross-validated ROC AUC on the training rows.

The test window is not looked at: it stays an unbiased estimate for evaluate and the gate.
"""

from __future__ import annotations

import shutil
from typing import Any

from components.common.artifacts import atomic_dir
from components.common.errors import StageError

STAGE = "select"


def choose(candidates: list[dict[str, Any]]) -> int:
    """Index of the best candidate (highest cv_roc_auc; ties: the first)."""
    scored = [(c.get("cv_roc_auc"), -i) for i, c in enumerate(candidates)]
    usable = [(score, i) for score, i in scored if isinstance(score, (int, float))]
    if not usable:
        raise StageError(STAGE, "no candidate model has a cross-validation score")
    return -max(usable)[1]


def run(model_dirs: list[str], metadata: list[dict[str, Any]], out_dir: str) -> dict[str, Any]:
    if not model_dirs:
        raise StageError(STAGE, "no candidate models")
    best = choose(metadata)
    with atomic_dir(out_dir) as tmp:
        shutil.copytree(model_dirs[best], tmp, dirs_exist_ok=True)
    table = [
        {k: m.get(k) for k in ("algorithm", "cv_roc_auc", "cv_std", "trials", "backend")}
        for m in metadata
    ]
    chosen = metadata[best]
    return {
        **{k: v for k, v in chosen.items() if k != "task"},
        "selected": chosen.get("algorithm"),
        "candidates": sorted(table, key=lambda c: -(c["cv_roc_auc"] or 0)),
    }
