"""`mlpipe approve | reject | models` against a real MLflow store."""

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from components.common import registry
from components.register.register import run as register_run
from pipelines.cli import main

LINEAGE = {"pipeline_run": "r", "data_digest": "d", "config_hash": "c", "code_version": "v"}


@pytest.fixture()
def store(mlflow_store):
    client = mlflow_store
    for seed, approval in ((1, False), (2, True)):
        model = LogisticRegression().fit([[0.0], [1.0], [float(seed)]], [0, 1, 1])
        with mlflow.start_run() as active:
            info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle")
        out = register_run(
            "m", info.model_uri, active.info.run_id, f"d{seed}", {"roc_auc": 0.9}, LINEAGE, approval
        )
        if seed == 1:  # the deploy stage's move
            registry.promote(client, "m", out["version"])
    return client


def test_approve_needs_what_the_deploy_stage_left(store, capsys):
    # version 2 was registered by hand here, not left awaiting approval by the pipeline's deploy
    # stage (no replay rows): approve refuses before touching the registry
    assert main(["approve", "2", "--model", "m"]) == 1
    assert "has no replay rows" in capsys.readouterr().err
    assert registry.alias_version(store, "m", "champion").version == 1


def test_approve_reads_the_store_it_is_given(store, capsys, tmp_path, monkeypatch):
    # --tracking-uri names the store for every step, not only the approvability check: with the
    # environment pointing elsewhere, approve still finds version 2 (and its missing replay rows)
    given = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    assert main(["approve", "2", "--model", "m", "--tracking-uri", given]) == 1
    assert "has no replay rows" in capsys.readouterr().err


def test_rollback_by_hand(store, capsys):
    registry.promote(store, "m", "2")
    assert main(["rollback", "--model", "m", "--reason", "p99"]) == 0
    assert "champion is version 1 again; version 2 is rolled back" in capsys.readouterr().out
    assert registry.alias_version(store, "m", "champion").version == 1
    assert main(["rollback", "--model", "m"]) == 1  # no previous left


def test_reject_leaves_the_champion(store, capsys):
    assert main(["reject", "2", "--model", "m", "--reason", "bias review"]) == 0
    assert "champion stays version 1" in capsys.readouterr().out
    assert registry.alias_version(store, "m", "champion").version == 1
    assert store.get_model_version("m", "2").tags[registry.REJECTED_TAG] == "bias review"
    # and a rejected version cannot be approved afterwards
    assert main(["approve", "2", "--model", "m"]) == 1
    assert "was rejected" in capsys.readouterr().err


def test_models_lists_aliases_and_status(store, capsys):
    assert main(["models", "--model", "m"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:3] == ["1", "champion", "champion"]
    assert out[2].split()[:3] == ["2", "challenger", "challenger"]


def test_unknown_version_is_an_error(store, capsys):
    assert main(["approve", "9", "--model", "m"]) == 1
    assert "no version 9" in capsys.readouterr().err


def _reasons(capsys) -> dict[str, str]:
    """`mlpipe models`: {version: its reason column}."""
    assert main(["models", "--model", "m"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines[0].index("reason")
    return {line.split()[0]: line[start:] for line in lines[1:]}


def test_models_says_why_each_version_is_where_it_is(store, capsys):
    found = _reasons(capsys)
    assert found["1"] == "-"  # the champion
    assert found["2"].startswith("awaiting approval since 20")
    assert found["2"].endswith("(mlpipe approve 2)")

    # what the deploy stage writes when a canary rolls the version back
    registry.reject(store, "m", "2", f"{registry.ROLLOUT_REASON}canary p99 412 ms > 250 ms")
    assert _reasons(capsys)["2"] == "rejected by the rollout: canary p99 412 ms > 250 ms"
    registry.reject(store, "m", "2", "bias review")  # `mlpipe reject`
    assert _reasons(capsys)["2"] == "rejected by hand: bias review"


def test_models_reason_after_a_promotion_and_a_rollback(store, capsys):
    registry.promote(store, "m", "2")
    assert _reasons(capsys) == {"1": "replaced by version 2", "2": "-"}
    registry.rollback(store, "m", "p99 too high")
    assert _reasons(capsys) == {"1": "-", "2": "rolled back by mlpipe rollback: p99 too high"}
