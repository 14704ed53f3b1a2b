"""KFP wrapper of the select stage (logic: select_model.py)."""

from typing import List  # noqa: UP035 - KFP's signature parser needs typing.List

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def select_model(models: Input[List[Model]], model: Output[Model]):  # noqa: UP006
    """Pick the best per-algorithm model by cross-validated ROC AUC.

    Args:
        models: One refitted model per algorithm (dsl.Collected over the ParallelFor).
        model: The chosen model (a copy); metadata: its algorithm, params, CV score, and a table
            of every candidate.
    """
    from components.common.recorder import record_task
    from components.select.select_model import run

    with record_task("select") as rec:
        meta = run([m.path for m in models], [dict(m.metadata) for m in models], model.path)
        rec.details = {"selected": meta["selected"], "candidates": meta["candidates"]}
    model.metadata.update(meta, task=rec.to_dict())
