"""Every shell command in README.md and components/*/README.md works as written.

Which lines are commands, and what the static check verifies: tests/docs/readme_commands.py.
Every command gets the static check; the cheap ones also run:
- in-process through `pipelines.cli.main` (same argv, a temporary MLflow store and state dir):
  `mlpipe models`, `mlpipe runs`, `mlpipe data list`, `mlpipe data watermarks`;
- as shell commands (`uv run` = the project's venv on PATH, in a temporary folder holding the
  repository's config/ and data/): `mlpipe schema infer` on the bundled data and the `sed` that
  shows its output (compared with the output the README shows); `mlpipe serve` on a model dir a
  fixture trains (`<run>` → that dir, its port → a free one) and every V1 and V2 `curl` of both
  READMEs against it (`localhost:8080` → that server).
Expensive (`make run`, `mlpipe run`, `mlpipe simulate`, `make test`) and cluster-only commands
(kubectl, `mlpipe submit`, `make kind-up`, ...) are only checked statically.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from components.common.config import REPO_ROOT
from tests.components.serve.conftest import lgbm_model_dir  # noqa: F401  (a small trained model)
from tests.conftest import needs_tfdv
from tests.docs.readme_commands import VENV_BIN, Command, all_commands, check
from tests.support.mlflow_env import use_tracking_uri
from tests.support.servers import serve_banner

COMMANDS = all_commands()
RUN_IN_PROCESS = {
    "uv run mlpipe models": "no versions of 'acs-employment' in the registry",
    "uv run mlpipe runs": "no runs in experiment 'acs-employment'",
    "uv run mlpipe data list": "no dataset versions in",
    "uv run mlpipe data watermarks": "no watermarks in",
}
SERVE = "uv run mlpipe serve --model outputs/models/<run> --port 8081 --request-log requests.jsonl"
SCHEMA_INFER = (
    "mlpipe schema infer data/acs_employment_ma_2015_2018.parquet --label employed "
    "--time-column year --id-column id -o my_schema.yaml"
)


def _texts(where: str = "") -> list[str]:
    return [c.text for c in COMMANDS if c.where.startswith(where)]


def _shell(text: str, cwd: Path, env: dict[str, str], timeout: float = 120):
    """`text` as a shell would run it, `uv run [--frozen]` meaning the project's venv on PATH."""
    text = re.sub(r"^uv run (--frozen )?", "", text)
    return subprocess.run(
        ["bash", "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder with the repository's config/ and data/, and an environment whose MLflow store
    and state dir are in it (the commands never touch the repository's outputs/). One for the
    module: creating an MLflow store costs seconds."""
    tmp_path = tmp_path_factory.mktemp("docs")
    for name in ("config", "data"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLPIPE_STATE_DIR": str(tmp_path / "state"),
        "PYTHONUNBUFFERED": "1",
    }
    return tmp_path, env


def test_the_extraction_finds_the_commands_of_every_readme():
    assert len(COMMANDS) > 100
    readmes = {c.where.split(":")[0] for c in COMMANDS}
    assert {"README.md", "components/serve/README.md", "components/monitor/README.md"} <= readmes
    assert {"make run", "make test", SERVE} <= set(_texts())
    # each command this test runs is still in the docs, as written here
    assert set(RUN_IN_PROCESS) <= set(_texts())
    assert any(t.startswith(SCHEMA_INFER) for t in _texts("README.md"))
    assert "sed -n 23,26p my_schema.yaml" in _texts("README.md")


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"{c.where} {c.text[:60]}" for c in COMMANDS])
def test_every_readme_command_passes_the_static_check(cmd: Command):
    assert check(cmd) == []


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("uv run mlpipe run --no-cach", "unrecognized arguments: --no-cach"),
        ("uv run mlpipe run --sed model_training.seed=7", "unrecognized arguments: --sed"),
        ("uv run mlpipe modles", "invalid choice: 'modles'"),
        ("uv run mlpipe data lsit", "invalid choice: 'lsit'"),
        ("make kind-upp", "no target 'kind-upp'"),
        ("uv run mlpipe run --config config/examples/nope.yaml", "no such file"),
        ("uv run pytest -m integrashun", "unknown marker 'integrashun'"),
        ("uv run mlflow ui --backend-store x", "no option --backend-store"),
        ("kubectl --context kind-mlpipe port-forwrd svc/x 1:1", "no command 'port-forwrd'"),
        ("curl -s -X POST localhost:8080/v1/models/m:predikt -d '{}'", "not a V1 predict"),
        ("uv run python -m components.serve --model-dri m --model-name n", "--model-dir"),
        ("export KFP_HOTS=http://x", "no code reads it"),
        ("terraform apply", "no check for ['terraform']"),
    ],
)
def test_a_broken_readme_command_fails_the_check(text, complaint):
    (problem,) = check(Command("README.md:1", text))
    assert complaint in problem and problem.startswith(f"README.md:1: {text}: ")


def test_the_broken_command_is_found_in_a_readme(tmp_path, monkeypatch):
    """End to end: a README with a misspelled flag in a bash block fails the static check."""
    from tests.docs import readme_commands

    readme = tmp_path / "README.md"
    readme.write_text("Run it:\n\n```bash\nuv run mlpipe run --no-cach   # again\n```\n")
    monkeypatch.setattr(readme_commands, "REPO_ROOT", tmp_path)
    (cmd,) = readme_commands.extract(readme)
    assert cmd.where == "README.md:4" and cmd.text == "uv run mlpipe run --no-cach"
    assert "unrecognized arguments: --no-cach" in check(cmd)[0]


def test_the_readmes_show_runnable_v2_requests_without_placeholders():
    v2 = [t for t in _texts("README.md") if t.startswith("curl") and "/v2/models/" in t]
    assert v2, "the main README shows no V2 request"
    served = [t for t in _texts("components/serve/README.md") if t.startswith("curl")]
    assert len(served) == 2
    for text in v2 + served:
        assert "..." not in text and "…" not in text, text
        json.loads(text.split("-d '", 1)[1].rstrip("'"))  # a complete JSON body


@pytest.mark.parametrize("text", sorted(RUN_IN_PROCESS))
def test_cheap_mlpipe_commands_run_as_written(text, sandbox, monkeypatch, capsys):
    from pipelines.cli import main

    folder, env = sandbox
    # commands that talk to MLflow configure its global URI: restored after the test
    use_tracking_uri(monkeypatch, env["MLFLOW_TRACKING_URI"])
    monkeypatch.setenv("MLPIPE_STATE_DIR", env["MLPIPE_STATE_DIR"])
    monkeypatch.chdir(folder)
    assert main(Command("", text).argv()[1:]) == 0
    assert RUN_IN_PROCESS[text] in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.tfdv
@needs_tfdv()
def test_schema_infer_and_the_output_the_readme_shows(sandbox):
    folder, env = sandbox
    (infer,) = [t for t in _texts("README.md") if t.startswith(SCHEMA_INFER)]
    proc = _shell(infer, folder, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote my_schema.yaml: 277,677 rows, 19 columns" in proc.stdout
    shown = _shell("sed -n 23,26p my_schema.yaml", folder, env)
    # the README's block: the command, then the four lines it prints
    readme = (REPO_ROOT / "README.md").read_text().splitlines()
    at = readme.index("$ sed -n 23,26p my_schema.yaml")
    assert shown.stdout.splitlines() == readme[at + 1 : at + 5]


OWN_DATA_INFER = "mlpipe schema infer data/examples/signups.csv --label label"


@pytest.mark.integration
@pytest.mark.tfdv
@needs_tfdv()
def test_your_own_data_in_5_minutes_shows_what_the_draft_prints_and_holds(sandbox):
    """The README's walk-through: the lines `schema infer` prints, and each drafted line the
    review step quotes, are what the command gives on the example file."""
    folder, env = sandbox
    (infer,) = [t for t in _texts("README.md") if t.startswith(OWN_DATA_INFER)]
    proc = _shell(infer, folder, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("$ " + OWN_DATA_INFER, 1)[1].split("```", 1)[0].splitlines()[2:]
    printed = (proc.stderr + proc.stdout).splitlines()
    assert block and all(line in printed for line in block), (block, printed)
    review = readme.split("**2. Review it.**", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    drafted = (folder / "signups_schema.yaml").read_text().splitlines()
    quoted = [
        x for x in review.splitlines() if x.strip() and not x.startswith(("columns", "  ignore"))
    ]
    assert all(line in drafted for line in quoted), [x for x in quoted if x not in drafted]


@pytest.mark.integration  # a real model server and curl
def test_serve_and_every_curl_of_the_readmes(sandbox, lgbm_model_dir):  # noqa: F811
    folder, env = sandbox
    text = SERVE.replace("outputs/models/<run>", str(lgbm_model_dir))
    text = text.replace("--port 8081", "--port 0")
    server = subprocess.Popen(
        ["bash", "-c", "exec " + re.sub(r"^uv run ", "", text)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = int(re.search(r"POST http://127\.0\.0\.1:(\d+)/", serve_banner(server, 60))[1])
        curls = [t for t in _texts() if t.startswith("curl")]
        assert len(curls) == 4  # V1 and V2 in README.md and in components/serve/README.md
        for curl in curls:
            proc = _shell(curl.replace("localhost:8080", f"127.0.0.1:{port}"), folder, env)
            answer = json.loads(proc.stdout)
            if "/v1/" in curl:
                (p,) = answer["predictions"]
            else:
                (out,) = answer["outputs"]
                assert out["name"] == "predictions" and len(out["data"]) == out["shape"][0]
                p = out["data"][0]
            assert 0 <= p <= 1, curl
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
    # --request-log as the README says: one JSON line per request (flushed at shutdown)
    assert len((folder / "requests.jsonl").read_text().splitlines()) == len(curls)
