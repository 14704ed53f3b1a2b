"""The deploy stage's outcome for a model the quality gate blocked: the `not_deployed` task of the
gate's Else branch gives the pipeline's `deployment` output its value (`mlpipe run` reads it)."""

from kfp.dsl import Artifact

from components.deploy.component import not_deployed
from components.deploy.deploy import blocked_outcome


def test_the_failed_checks_are_the_reason_and_the_champion_stays():
    blessing = {
        "blessed": False,
        "failed_checks": ["roc_auc 0.71 < 0.75", "champion v3 0.82 - tolerance 0.005"],
        "champion_version": "3",
    }
    assert blocked_outcome(blessing) == {
        "outcome": "blocked",
        "reason": "quality gate: roc_auc 0.71 < 0.75; champion v3 0.82 - tolerance 0.005",
        "version": None,
        "champion": "3",
        "registration": None,
    }


def test_no_champion_and_no_named_check():
    out = blocked_outcome({"blessed": False})
    assert out["champion"] is None
    assert out["reason"] == "quality gate: not blessed"


def test_the_task_returns_the_outcome(tmp_path):
    blessing = Artifact(
        uri=str(tmp_path / "blessing"),
        metadata={"failed_checks": ["f1 0.2 < 0.5"], "champion_version": "7"},
    )
    out = not_deployed.python_func(blessing=blessing)
    assert out == blocked_outcome(blessing.metadata)
    assert out["reason"] == "quality gate: f1 0.2 < 0.5" and out["champion"] == "7"
