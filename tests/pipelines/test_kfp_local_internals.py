"""Every assumption pipelines/kfp_local_internals.py makes about kfp.local, checked against a real
kfp.local run of a one-task pipeline (twice: the second is served from the cache). A kfp upgrade
that changes a log line, the cache entries or the pipeline root's layout fails here."""

import builtins
import contextlib
import io

import pytest
from kfp import dsl, local

from pipelines import kfp_local_internals as kfp_local
from pipelines.progress import ProgressTee


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def emit(n: int, out: dsl.Output[dsl.Artifact]):
    """Like our stages: a file, and the task record in the artifact's metadata."""
    with open(out.path, "w") as f:
        f.write(str(n))
    out.metadata["task"] = {"task": "emit-one", "wall_s": 1.5}


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fail():
    raise ValueError("on purpose")


@dsl.pipeline(name="internals-check")
def one_task(n: int) -> dsl.Artifact:
    return emit(n=n).output


@dsl.pipeline(name="internals-fail")
def failing():
    fail()


@pytest.fixture()
def kfp_local_run(tmp_path):
    """Runs a pipeline as the local runners do (pipelines/local_tasks.py `init_kfp_local`):
    returns (outputs, the log it printed); kfp.local's settings are put back afterwards."""
    from kfp.local import config

    before = config.LocalExecutionConfig.instance
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp"),
        cache_root=str(tmp_path / "cache"),
        raise_on_error=True,
        enable_caching=True,
    )

    def run(pipeline, **args):
        log = io.StringIO()
        with contextlib.redirect_stdout(log), kfp_local.info_logging(log):
            try:
                return pipeline(**args).output, kfp_local.ANSI.sub("", log.getvalue())
            except RuntimeError as exc:
                return exc, kfp_local.ANSI.sub("", log.getvalue())

    yield run
    config.LocalExecutionConfig.instance = before


def _matches(pattern, log):
    return [m.groups() for line in log.splitlines() if (m := pattern.search(line))]


def test_kfp_local_logs_caches_and_lays_out_outputs_as_the_local_runner_reads_them(
    kfp_local_run, tmp_path
):
    original_print = builtins.print
    artifact, log = kfp_local_run(one_task, n=1)
    assert builtins.print is original_print  # info_logging put kfp.local's replacement back
    assert _matches(kfp_local.EXECUTING, log) == [("emit",)]
    assert _matches(kfp_local.FINISHED, log) == [("emit", "SUCCESS")]
    # the executor input's JSON body as the progress tee expects it: one line in the log instead
    kept = io.StringIO()
    tee = ProgressTee(kept, io.StringIO())
    tee.write(log)
    tee.close()
    assert "lines of JSON not kept in the log" in kept.getvalue(), log
    assert _matches(kfp_local.RECORD_NAME, log) == [("emit-one",)]
    # <root>/<pipeline name>-<timestamp>/<task>/<output>
    run_dir = kfp_local.run_folder(artifact.path)
    assert run_dir.parent == tmp_path / "kfp"
    assert run_dir.name.startswith("internals-check-")
    assert len(run_dir.name) == len("internals-check-") + len(kfp_local.RUN_STAMP)
    assert kfp_local.previous_run_folder(run_dir) is None

    again, log = kfp_local_run(one_task, n=1)
    assert _matches(kfp_local.EXECUTING, log) == []
    ((task, key),) = _matches(kfp_local.CACHE_HIT, log)
    assert task == "emit"
    entry = kfp_local.cache_entry(tmp_path / "cache", key)
    assert entry["out"]["metadata"]["task"] == {"task": "emit-one", "wall_s": 1.5}
    assert again.path == artifact.path  # a cache hit returns the earlier run's files
    # a task that runs again makes a new run folder, named after the first one
    other, _ = kfp_local_run(one_task, n=2)
    assert kfp_local.previous_run_folder(kfp_local.run_folder(other.path)) == run_dir


def test_a_failed_task_is_logged_and_named_in_kfp_locals_error(kfp_local_run, tmp_path):
    error, log = kfp_local_run(failing)
    assert isinstance(error, RuntimeError) and "fail" in str(error)
    assert _matches(kfp_local.FINISHED, log) == [("fail", "FAILURE")]
