"""Cluster tuning backend: a Katib v1beta1 Experiment, rendered as plain data, checked offline,
submitted through the Kubernetes adapter, waited on, and read back into the local backend's result.

This module re-exports the backend's public names; the code lives in
- `katib_render`: experiment naming, the trial command, `render_experiment`;
- `katib_admission`: `apply_defaults`, `validate_experiment` and the rules behind them (with where
  each rule comes from in Katib);
- `katib_launcher`: status reading, `run_katib`, `run_on_katib` (the tune stage's entry),
  `task_experiment` (the Experiment it submits), `experiment_namespace` and `KatibOptions` (an
  alias of `components.common.config.KatibConfig`);
- `katib_staging`: what trials read, copied to the project's object store and removed after.
"""

from __future__ import annotations

from components.tune.katib_admission import (
    ALGORITHMS,
    COLLECTOR_KINDS,
    DISTRIBUTIONS,
    EARLY_STOPPING_ALGORITHMS,
    JOB_FAILURE,
    JOB_SUCCESS,
    META_KEYS,
    PARAMETER_TYPES,
    RESUME_POLICIES,
    apply_defaults,
    job_errors,
    validate_experiment,
)
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
    "ALGORITHMS",
    "COLLECTOR_KINDS",
    "CONTAINER",
    "DEFAULT_EARLY_STOPPING",
    "DEFAULT_RESOURCES",
    "DISTRIBUTIONS",
    "EARLY_STOPPING_ALGORITHMS",
    "EXPERIMENT_LABEL",
    "JOB_FAILURE",
    "JOB_SUCCESS",
    "META_KEYS",
    "OBJECTIVE",
    "PARAMETER_TYPES",
    "RESUME_POLICIES",
    "SPEC_HASH",
    "STAGE",
    "TRIAL_NAME_PARAM",
    "KatibOptions",
    "apply_defaults",
    "experiment_name",
    "experiment_namespace",
    "finished",
    "job_errors",
    "render_experiment",
    "run_katib",
    "run_on_katib",
    "spec_hash",
    "task_experiment",
    "trial_command",
    "validate_experiment",
]
