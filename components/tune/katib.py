"""Cluster tuning backend: a Katib v1beta1 Experiment, rendered as plain data, submitted through
the Kubernetes adapter (Katib's webhook checks it on the cluster), waited on, and read back into
the local backend's result.

This module re-exports the backend's public names; the code lives in
- `katib_render`: experiment naming, the trial command, `render_experiment`;
- `katib_launcher`: status reading, `run_katib`, `run_on_katib` (the tune stage's entry),
  `task_experiment` (the Experiment it submits), `experiment_namespace` and `KatibOptions` (an
  alias of `components.common.config.KatibConfig`);
- `katib_staging`: what trials read, copied to the project's object store and removed after.
"""

from __future__ import annotations

from components.tune.katib_launcher import (
    EXPERIMENT_LABEL,
    STAGE,
    KatibOptions,
    experiment_namespace,
    finished,
    run_katib,
    run_on_katib,
    task_experiment,
)
from components.tune.katib_render import (
    ADDITIONAL_METRICS,
    CONTAINER,
    DEFAULT_EARLY_STOPPING,
    DEFAULT_RESOURCES,
    JOB_FAILURE,
    JOB_SUCCESS,
    OBJECTIVE,
    SPEC_HASH,
    TRIAL_NAME_PARAM,
    experiment_name,
    render_experiment,
    spec_hash,
    trial_command,
)

__all__ = [
    "ADDITIONAL_METRICS",
    "CONTAINER",
    "DEFAULT_EARLY_STOPPING",
    "DEFAULT_RESOURCES",
    "EXPERIMENT_LABEL",
    "JOB_FAILURE",
    "JOB_SUCCESS",
    "OBJECTIVE",
    "SPEC_HASH",
    "STAGE",
    "TRIAL_NAME_PARAM",
    "KatibOptions",
    "experiment_name",
    "experiment_namespace",
    "finished",
    "render_experiment",
    "run_katib",
    "run_on_katib",
    "spec_hash",
    "task_experiment",
    "trial_command",
]
