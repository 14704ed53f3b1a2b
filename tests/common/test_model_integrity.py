"""Issue 14, acceptance 1: a tampered model file is refused by each loader; untouched, it loads.

Real parts: a real MLflow store (SQLite + local artifacts), models logged and registered through
the register stage's recording path, the real model server as a subprocess over HTTP. Tampering
is what an attacker who can write the artifact store does: one byte appended to the stored
`model.pkl` (or a model dir's `model.joblib`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pandas as pd
import pytest

from components.common import model_integrity as mi
from components.common import registry
from components.common.artifacts import FEATURE_SPEC_FILE, MODEL_FILE, load_model, save_model
from components.common.config import REPO_ROOT
from components.common.errors import StageError
from components.common.model_integrity import ModelIntegrityError
from tests.fixtures.models import FEATURES, LABEL, logistic

NAME = "integrity"


@pytest.fixture(scope="module")
def small_model():
    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    return logistic(df[df.year == 2015][[*FEATURES, LABEL]].sample(1500, random_state=0))


@pytest.fixture(scope="module")
def rows():
    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    return df[df.year == 2016][FEATURES].head(20)


def log_and_register(model, spec, tmp: Path) -> str:
    """As track + register do: log (cloudpickle + feature spec), record the manifest tags."""
    from components.register.register import run as register_run

    spec_file = tmp / FEATURE_SPEC_FILE
    spec_file.write_text(json.dumps(spec))
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle", extra_files=[str(spec_file)]
        )
    out = register_run(NAME, info.model_uri, run.info.run_id, "d", {}, {}, model_id=info.model_id)
    registry.promote(registry.client(), NAME, out["version"])
    return out["version"]


def stored_dir(version: str) -> Path:
    """The version's folder in the artifact store (what KServe's storageUri names)."""
    uri = mlflow.MlflowClient().get_model_version_download_uri(NAME, version)
    return Path(urlparse(uri).path if uri.startswith("file:") else uri)


def tamper(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\0")


@pytest.fixture()
def version(mlflow_store, small_model, tmp_path):
    return log_and_register(*small_model, tmp_path)


# ---------------------------------------------------------------- the manifest itself


def test_manifest_names_changed_missing_and_extra_files(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_text("b")
    (tmp_path / "registered_model_meta").write_text("model_name: x")  # MLflow's, per download
    files = mi.manifest(tmp_path)
    assert set(files) == {"a", "sub/b"}
    assert mi.verify(tmp_path, mi.digest_of(files)) == mi.digest_of(files)
    (tmp_path / "a").write_text("A")
    (tmp_path / "sub" / "b").unlink()
    (tmp_path / "c").write_text("c")
    with pytest.raises(ModelIntegrityError) as err:
        mi.verify(tmp_path, files, what="m")
    assert "changed: a" in str(err.value) and "missing: sub/b" in str(err.value)
    assert "extra: c" in str(err.value)


# ---------------------------------------------------------------- model dirs (train stage)


def test_model_dir_loads_untouched_and_refuses_a_tampered_pickle(small_model, tmp_path):
    meta = save_model(small_model[0], tmp_path / "m", small_model[1])
    assert (tmp_path / "m" / mi.MANIFEST_FILE).is_file()
    model, spec = load_model(tmp_path / "m", meta["sha256"])
    assert spec["label"] == LABEL and hasattr(model, "predict_proba")
    tamper(tmp_path / "m" / MODEL_FILE)
    with pytest.raises(ModelIntegrityError, match=f"changed: {MODEL_FILE}"):
        load_model(tmp_path / "m")


def test_model_dir_with_a_rewritten_manifest_is_refused_against_the_upstream_digest(
    small_model, tmp_path
):
    meta = save_model(small_model[0], tmp_path / "m", small_model[1])
    tamper(tmp_path / "m" / MODEL_FILE)
    mi.write_manifest(tmp_path / "m")  # the attacker also rewrote MANIFEST.json
    load_model(tmp_path / "m")  # consistent with itself ...
    with pytest.raises(ModelIntegrityError, match="not the recorded manifest"):
        load_model(tmp_path / "m", meta["sha256"])  # ... not with the train stage's metadata


def test_model_dir_without_a_manifest_is_refused(small_model, tmp_path):
    save_model(small_model[0], tmp_path / "m", small_model[1])
    (tmp_path / "m" / mi.MANIFEST_FILE).unlink()
    with pytest.raises(ModelIntegrityError, match="has no MANIFEST.json"):
        load_model(tmp_path / "m")


# ---------------------------------------------------------------- registered versions


def test_register_records_the_manifest_of_the_stored_model(version):
    mv = registry.get_version(registry.client(), NAME, version)
    files = json.loads(mv.tags[mi.MANIFEST_TAG])
    assert "model.pkl" in files and "MLmodel" in files and "registered_model_meta" not in files
    assert mv.tags[mi.MANIFEST_SHA256_TAG] == mi.digest_of(files)
    assert mi.manifest(stored_dir(version)) == files


def test_register_refuses_a_model_changed_since_track_recorded_it(
    mlflow_store, small_model, tmp_path
):
    from components.register.register import run as register_run
    from components.track.track import logged_manifest

    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            small_model[0], name="model", serialization_format="cloudpickle"
        )
    recorded = logged_manifest(info.model_uri)  # what track passes on
    location = mlflow.get_logged_model(info.model_id).artifact_location
    tamper(
        Path(urlparse(location).path if location.startswith("file:") else location) / "model.pkl"
    )
    with pytest.raises(ModelIntegrityError, match="changed: model.pkl"):
        register_run(NAME, info.model_uri, run.info.run_id, "d", {}, {}, model_manifest=recorded)


def test_registry_load_version(version, tmp_path, rows):
    model, _, v = registry.load_version(NAME, "champion", tmp_path / "ok")
    assert v == version and len(model.predict_proba(rows[FEATURES])) == len(rows)
    tamper(stored_dir(version) / "model.pkl")
    with pytest.raises(ModelIntegrityError, match=rf"{NAME} version {version}.*changed: model.pkl"):
        registry.load_version(NAME, "champion", tmp_path / "bad")


def test_a_version_without_manifest_is_refused_unless_explicitly_allowed(
    version, tmp_path, monkeypatch
):
    client = registry.client()
    client.delete_model_version_tag(NAME, version, mi.MANIFEST_SHA256_TAG)
    with pytest.raises(ModelIntegrityError, match="Re-register it"):
        registry.load_version(NAME, version, tmp_path / "a")
    monkeypatch.setenv(mi.ALLOW_UNVERIFIED_ENV, "1")
    assert registry.load_version(NAME, version, tmp_path / "b")[2] == version


def test_serve_model_source_by_uri(version, tmp_path):
    from components.serve.model_source import load_model_uri

    assert load_model_uri(f"models:/{NAME}@champion", tmp_path / "ok").version == version
    tamper(stored_dir(version) / "model.pkl")
    for uri in (f"models:/{NAME}@champion", f"models:/{NAME}/{version}"):
        with pytest.raises(ModelIntegrityError, match="changed: model.pkl"):
            load_model_uri(uri, tmp_path / "bad")


def test_gate_and_monitor_fail_closed_on_a_tampered_champion(version, tmp_path):
    from components.evaluate.compare import champion_evaluation

    tamper(stored_dir(version) / "model.pkl")
    summary, v, error = champion_evaluation(NAME, str(tmp_path / "unused.parquet"), {})
    assert summary is None and v == version and "changed: model.pkl" in error


# ---------------------------------------------------------------- the real server over HTTP


def test_mlpipe_serve_starts_untouched_and_refuses_tampered(version, mlflow_store):
    from components.serve.launch import ServerStartError, start_server

    with start_server(f"models:/{NAME}@champion", NAME, timeout=120) as server:
        assert server.alive()
    tamper(stored_dir(version) / "model.pkl")
    with pytest.raises(ServerStartError, match="changed: model.pkl"):
        start_server(f"models:/{NAME}@champion", NAME, timeout=120)


def test_server_refuses_a_tampered_model_dir(small_model, tmp_path):
    from components.serve.launch import ServerStartError, start_server

    save_model(small_model[0], tmp_path / "m", small_model[1])
    tamper(tmp_path / "m" / MODEL_FILE)
    with pytest.raises(ServerStartError, match=f"changed: {MODEL_FILE}"):
        start_server(tmp_path / "m", "m", timeout=120)


def test_kserve_entry_checks_mnt_models_against_the_rendered_digest(version, tmp_path):
    """The serving image's command on /mnt/models (the storage initializer's copy of
    storageUri), with the digest the deploy stage renders into the InferenceService."""
    from components.deploy.kserve_target import KServeSettings, render_inference_service
    from components.serve.launch import ServerStartError, start_server

    client = registry.client()
    tags = client.get_model_version(NAME, version).tags
    digest = tags[mi.MANIFEST_SHA256_TAG]
    obj = render_inference_service(
        NAME, _model(version, digest, tags[mi.MANIFEST_TAG]), KServeSettings()
    )
    env = {e["name"]: e["value"] for e in obj["spec"]["predictor"]["model"]["env"]}
    assert env[mi.SHA256_ENV] == digest
    mnt = tmp_path / "mnt" / "models"
    shutil.copytree(stored_dir(version), mnt)
    with start_server(mnt, NAME, timeout=120, env=env) as server:
        assert server.alive()
    with pytest.raises(ServerStartError, match="no expected manifest digest"):
        start_server(mnt, NAME, timeout=120)  # a pod without the digest loads nothing
    tamper(mnt / "model.pkl")
    with pytest.raises(ServerStartError, match="changed: model.pkl"):  # named by the manifest
        start_server(mnt, NAME, timeout=120, env=env)
    with pytest.raises(ServerStartError, match="not the recorded model"):  # the digest alone
        start_server(mnt, NAME, timeout=120, env={mi.SHA256_ENV: digest})


def _model(version: str, digest: str, manifest: str = ""):
    from components.deploy.kserve_target import Model

    return Model(version, "s3://mlflow/artifacts/1/models/m-x/artifacts", digest, manifest)


# ---------------------------------------------------------------- deploy


def test_deploy_renders_the_registry_digest_into_the_inference_service(version, monkeypatch):
    from components.common.config import load_pipeline_config
    from components.deploy import deploy
    from tests.support.k8s_standin import InMemoryCluster
    from tests.support.kserve_knative import KnativeKServe

    monkeypatch.setattr(deploy, "model_storage_uri", lambda c, n, v: f"s3://b/{n}/{v}")
    model = deploy.kserve_model(registry.client(), NAME, version)
    tags = registry.client().get_model_version(NAME, version).tags
    assert model.sha256 == tags[mi.MANIFEST_SHA256_TAG] and model.manifest == tags[mi.MANIFEST_TAG]
    cluster = InMemoryCluster()
    cluster.script("inferenceservices", NAME, KnativeKServe())
    cfg = load_pipeline_config(
        overrides={"deployment.environment": "kserve", "deployment.rollout.kserve.poll_s": 0.01}
    ).deployment
    deploy.kserve_rollout(
        NAME, version, model.storage_uri, cfg, print, adapter=cluster, model=model
    )
    (obj,) = [v for k, v in cluster.objects.items() if k[1] == "inferenceservices"]
    env = {e["name"]: e["value"] for e in obj["spec"]["predictor"]["model"]["env"]}
    assert env[mi.SHA256_ENV] == tags[mi.MANIFEST_SHA256_TAG]
    client = registry.client()
    client.delete_model_version_tag(NAME, version, mi.MANIFEST_SHA256_TAG)
    with pytest.raises(StageError, match="no mlpipe.model_manifest_sha256"):
        deploy.kserve_model(client, NAME, version)


def test_deploy_refuses_a_tampered_candidate_before_it_is_served(
    mlflow_store, small_model, tmp_path
):
    from components.deploy import deploy
    from components.register.register import run as register_run

    meta = save_model(small_model[0], tmp_path / "m", small_model[1])
    spec_file = tmp_path / FEATURE_SPEC_FILE
    spec_file.write_text(json.dumps(small_model[1]))
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(
            small_model[0], name="model", serialization_format="cloudpickle",
            extra_files=[str(spec_file)],
        )  # fmt: skip
    out = register_run(NAME, info.model_uri, run.info.run_id, meta["sha256"], {}, {})
    tamper(tmp_path / "m" / MODEL_FILE)
    with pytest.raises(StageError, match=rf"version {out['version']}.*changed: {MODEL_FILE}"):
        deploy.run(NAME, out["version"], str(tmp_path / "m"), "unused.parquet", {}, log=print)
    assert registry.alias_version(registry.client(), NAME, registry.CHAMPION) is None
