"""The validate component as KFP runs it: under kfp.local (main env, kfp 2.17.3) and under the kfp
2.13 executor of the tfdv environment (what the tfdv image runs), each on a small sample."""

import json
import os
import subprocess

import pytest
import yaml

from components.common.recorder import RECORDS_ENV, read_records
from components.validate import validate as logic
from components.validate.component import validate
from tests.conftest import TFDV_PYTHON, needs_tfdv
from tests.fixtures.bad_data import CASES_BY_NAME, DEFAULT_SPLIT, base_sample

pytestmark = [pytest.mark.tfdv, needs_tfdv()]


@pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom")
def test_kfp_local_run_fails_the_task_with_the_message(full_data, schema, tmp_path, monkeypatch):
    from kfp import dsl, local

    data = tmp_path / "data.parquet"
    CASES_BY_NAME["unseen_category"].make(base_sample(full_data)).to_parquet(data, index=False)
    monkeypatch.setenv(logic.TFDV_PYTHON_ENV, str(TFDV_PYTHON))
    monkeypatch.setenv(RECORDS_ENV, str(tmp_path / "records"))
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "root"),
        workspace_root=str(tmp_path / "workspace"),
    )

    @dsl.pipeline(name="validate-only")
    def pipeline(data_schema: dict, split: dict):
        data_task = dsl.importer(artifact_uri=str(data), artifact_class=dsl.Dataset)
        validate(data=data_task.output, data_schema=data_schema, split=split)

    with pytest.raises(RuntimeError):
        pipeline(
            data_schema=schema.model_dump(mode="json", exclude_none=True),
            split={"split": DEFAULT_SPLIT},
        )
    (record,) = read_records(tmp_path / "records")
    assert (record.task, record.status, record.error_type) == ("validate", "failed", "DataError")
    assert (
        record.error == "feature 'SEX': 1 value outside the domain [1, 2] (3) in the train window"
    )
    assert record.subject == "SEX"


def test_kfp_213_executor_runs_the_component_compiled_by_kfp_217(full_data, schema, tmp_path):
    """The tfdv image runs the spec compiled by kfp 2.17.3 with its own kfp 2.13 executor, and
    validate finds TFDV in its own interpreter (no MLPIPE_TFDV_PYTHON)."""
    from kfp import compiler

    data = tmp_path / "data.parquet"
    base_sample(full_data).to_parquet(data, index=False)
    compiler.Compiler().compile(validate, str(tmp_path / "validate.yaml"))
    spec = yaml.safe_load((tmp_path / "validate.yaml").read_text())
    container = spec["deploymentSpec"]["executors"]["exec-validate"]["container"]
    out = tmp_path / "outputs"
    types = {"statistics": "Artifact", "schema": "Artifact", "anomalies": "Artifact"}
    types["report"] = "HTML"

    def artifact(name: str, kind: str, uri: str) -> dict:
        return {
            "artifacts": [{"name": name, "type": {"schemaTitle": f"system.{kind}"}, "uri": uri}]
        }

    executor_input = {
        "inputs": {
            "parameterValues": {
                "data_schema": schema.model_dump(mode="json", exclude_none=True),
                "split": DEFAULT_SPLIT,
            },
            "artifacts": {"data": artifact("data", "Dataset", str(data))},
        },
        "outputs": {
            "artifacts": {n: artifact(n, k, str(out / n)) for n, k in types.items()},
            "outputFile": str(out / "executor_output.json"),
        },
    }
    out.mkdir()
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    with logic.job_environment() as env:
        env.pop(logic.TFDV_PYTHON_ENV, None)
        env["PATH"] = f"{TFDV_PYTHON.parent}{os.pathsep}{env['PATH']}"  # python3 = the tfdv one
        proc = subprocess.run(
            [*container["command"], *args], env=env, capture_output=True, text=True, check=False
        )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (
        "kfp 2.13"
        in subprocess.run(
            [str(TFDV_PYTHON), "-c", "import kfp; print('kfp', kfp.__version__[:4])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    result = json.loads((out / "executor_output.json").read_text())
    meta = result["artifacts"]["anomalies"]["artifacts"][0]["metadata"]
    assert meta["blocking"] == 0 and meta["rows_train"] == 1000 and meta["rows_test"] == 1000
    assert meta["task"]["status"] == "succeeded"
    assert (out / "statistics" / "train_stats.pb").stat().st_size > 0
    assert (out / "anomalies" / "anomalies.json").exists()
    assert (out / "schema" / "schema.pbtxt").exists()
    assert "PASSED" in (out / "report").read_text()
