"""The Katib trial check's own pieces (no container engine needed): Katib's substitution and
StdOut wrapping, the collector's text parsing, the assignments it hands over."""

from __future__ import annotations

import shlex

from components.common.config import load_pipeline_config
from components.common.search_space import decode
from components.tune.katib_render import render_experiment
from components.tune.trial import parse_args
from tests.rehearsal.katib_check import (
    assignments,
    katib_fill,
    katib_text_metrics,
    stdout_wrap,
)

SPACE = load_pipeline_config().model_training.search_spaces["lightgbm"]


def test_the_filled_and_wrapped_template_is_a_trial_command():
    exp = render_experiment(
        namespace="mlpipe",
        algorithm="lightgbm",
        space=SPACE,
        train_uri="s3://b/stage/train.parquet",
        transformer_uri="s3://b/stage/transformer",
        folds_uri="s3://b/stage/folds.npz",
    )
    values = assignments(SPACE)
    assert len(values) == 2 and values[0] != values[1]
    for v in values:
        decode(SPACE, v)  # every value is one the trial accepts
    job = katib_fill(exp["spec"]["trialTemplate"]["trialSpec"], {**values[1], "trialName": "t"})
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    wrapped = stdout_wrap(command)
    assert wrapped[:2] == ["sh", "-c"] and len(wrapped) == 3
    argv = shlex.split(wrapped[2])
    end = argv.index("1>/var/log/katib/metrics.log")
    assert argv[end:] == ["1>/var/log/katib/metrics.log", "2>&1", "&&", "echo", "completed",
                          ">", "/var/log/katib/$$$$.pid"]  # fmt: skip
    args = parse_args(argv[3:end])
    assert args.folds == "s3://b/stage/folds.npz"
    assert sorted(p.split("=")[0] for p in args.param) == sorted(SPACE)


def test_the_collectors_text_parsing():
    log = "\n".join(
        [
            '[trial] lightgbm params {"num_leaves": 31}',
            "2026-01-01T00:00:00.1Z cv_roc_auc=0.81",
            "2026-01-01T00:00:01.1Z cv_roc_auc=0.83",
            "[trial] not reporting cv_roc_auc: nan",
            "2026-01-01T00:00:02.1Z cv_roc_auc_std=1.5e-02",
            "2026-01-01T00:00:02.2Z best_rounds=120",
        ]
    )
    found = katib_text_metrics(log, ["cv_roc_auc", "cv_roc_auc_std", "best_rounds"])
    assert found == {"cv_roc_auc": [0.81, 0.83], "cv_roc_auc_std": [0.015], "best_rounds": [120.0]}
