"""What the Katib test modules share (test_katib_render, test_katib_launcher, test_trial): the
namespace, the small search space, the rendered Experiment and its trial container, and what
Katib does to the trial command (substitution, the StdOut collector's wrapping)."""

from __future__ import annotations

import json
from pathlib import Path

from components.common.k8s import KATIB_EXPERIMENT
from components.common.search_space import ParamSpec
from components.tune.katib_render import render_experiment

NS = "mlpipe"  # model_training.katib.namespace's default
EXP = (KATIB_EXPERIMENT.group, KATIB_EXPERIMENT.version, NS, KATIB_EXPERIMENT.plural)

# the launcher and trial tests use a small space of their own (one parameter of each type)
SPACE = {
    "learning_rate": ParamSpec(type="float", low=0.01, high=0.2, log=True),
    "num_leaves": ParamSpec(type="int", low=15, high=255, log=True),
    "boosting_type": ParamSpec(type="categorical", choices=["gbdt", "dart"]),
}


def rendered(**kw) -> dict:
    args = {
        "namespace": NS,
        "algorithm": "lightgbm",
        "space": SPACE,
        "train_uri": "s3://mlpipeline/artifacts/train",
        "transformer_uri": "s3://mlpipeline/artifacts/transformer",
        "fixed_params": {"n_estimators": 2000, "subsample_freq": 1},
        "max_trials": 6,
        **kw,
    }
    return render_experiment(**args)


def container(exp: dict) -> dict:
    return exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]


def _katib_substitute(exp: dict, values: dict[str, str]) -> dict:
    """What Katib's trial controller does: replace ${trialParameters.x} in the template's JSON."""
    text = json.dumps(exp["spec"]["trialTemplate"]["trialSpec"])
    for name, value in values.items():
        text = text.replace(f"${{trialParameters.{name}}}", value)
    return json.loads(text)


def _wrap_like_the_stdout_collector(command: list[str], metrics_file: Path) -> list[str]:
    """pkg/webhook/v1beta1/pod/utils.go wrapWorkerContainer: `sh -c` + args joined by spaces,
    with the collector's redirection and completion marker appended."""
    assert command[:2] == ["sh", "-c"]
    args = [
        *command[2:],
        f"1>{metrics_file} 2>&1",
        "&&",
        f"echo completed > {metrics_file.parent}/$$$$.pid",
    ]
    return ["sh", "-c", " ".join(args)]
