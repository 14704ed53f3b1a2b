"""Warm start: a study's first trials are the best params of earlier studies of the same
algorithm and features, read back from the trials the track task logged to a real MLflow store."""

import json

from components.common.mlflow_utils import GATE_TAG
from components.common.search_space import ParamSpec
from components.track.track import _log_trials
from components.tune.warm_start import features_digest, in_space, previous_best

SPACE = {
    "learning_rate": ParamSpec(type="float", low=0.03, high=0.15, log=True),
    "num_leaves": ParamSpec(type="int", low=15, high=127),
}
DIGEST = "d1"


def log_study(tmp_path, best: dict, other: dict, digest: str = DIGEST, name: str = "run") -> str:
    """One pipeline run whose tune stage logged a two-trial study (trial 1 the best); returns
    the pipeline's run id, as a model version's run_id names it."""
    import mlflow

    history = [
        {"number": 0, "state": "COMPLETE", "value": 0.80, "params": other},
        {"number": 1, "state": "COMPLETE", "value": 0.90, "params": best},
    ]
    result = {"algorithm": "lightgbm", "backend": "optuna", "best_trial": 1, "history": history}
    result["features_digest"] = digest
    path = tmp_path / f"{name}-result.json"
    path.write_text(json.dumps(result))
    with mlflow.start_run(run_name=name) as root, mlflow.start_run(nested=True):
        _log_trials(path)
    return root.info.run_id


def ask(limit=3, digest=DIGEST, experiment="t", registered_model="m"):
    return previous_best("lightgbm", digest, SPACE, limit, experiment, registered_model)


def test_a_first_run_has_no_warm_start_and_creates_no_store(tmp_path, monkeypatch):
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    assert ask() == []
    assert not store.exists()


def test_the_champions_study_first_then_the_newest_studies(mlflow_store, tmp_path):
    a = {"learning_rate": 0.05, "num_leaves": 31}
    b = {"learning_rate": 0.08, "num_leaves": 63}
    champion_run = log_study(tmp_path, a, {"learning_rate": 0.1, "num_leaves": 20}, name="a")
    log_study(tmp_path, b, {"learning_rate": 0.12, "num_leaves": 90}, name="b")
    assert ask() == [b, a]  # no champion yet: newest first
    mlflow_store.create_registered_model("m")
    version = mlflow_store.create_model_version("m", "runs:/x/model", run_id=champion_run)
    mlflow_store.set_registered_model_alias("m", "champion", version.version)
    assert ask() == [a, b]
    assert ask(limit=1) == [a]
    assert ask(limit=0) == []
    assert ask(digest="other-features") == []
    assert ask(experiment="no-such-experiment") == []


def test_a_study_whose_run_the_gate_blocked_is_left_out(mlflow_store, tmp_path):
    a = {"learning_rate": 0.05, "num_leaves": 31}
    b = {"learning_rate": 0.08, "num_leaves": 63}
    log_study(tmp_path, a, {"learning_rate": 0.1, "num_leaves": 20}, name="a")
    blocked = log_study(tmp_path, b, {"learning_rate": 0.12, "num_leaves": 90}, name="b")
    assert ask() == [b, a]
    mlflow_store.set_tag(blocked, GATE_TAG, "blocked")
    assert ask() == [a]
    assert ask(limit=1) == [a]  # the limit counts the studies kept
    mlflow_store.set_tag(blocked, GATE_TAG, "passed")
    assert ask() == [b, a]


def test_params_the_space_no_longer_holds_are_skipped():
    assert in_space(SPACE, {"learning_rate": "0.05", "num_leaves": "31"}) == {
        "learning_rate": 0.05,
        "num_leaves": 31,
    }
    assert in_space(SPACE, {"learning_rate": "0.5", "num_leaves": "31"}) is None  # out of range
    assert in_space(SPACE, {"learning_rate": "0.05"}) is None  # a parameter missing
    assert in_space(SPACE, {"learning_rate": "x", "num_leaves": "31"}) is None


def test_an_unreachable_tracking_server_means_no_warm_start(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert ask() == []
    assert "warm start skipped" in capsys.readouterr().out


def test_the_features_digest_changes_with_the_features_not_their_order_of_keys():
    spec = {"label": "y", "features": [{"name": "a", "kind": "numeric", "dtype": "float"}]}
    same = {"features": [{"dtype": "float", "kind": "numeric", "name": "a"}], "label": "y"}
    assert features_digest(spec) == features_digest(same)
    other = {"label": "y", "features": [{"name": "b", "kind": "numeric", "dtype": "float"}]}
    assert features_digest(spec) != features_digest(other)
