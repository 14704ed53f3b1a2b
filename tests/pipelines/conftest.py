"""Fixtures of the tests that drive `mlpipe submit` and `mlpipe schedule` against the stand-in
KFP API server, and `mlpipe compile` for the tests that read the compiled spec."""

from __future__ import annotations

import pytest
import yaml

import pipelines.submit_cli as submit_cli
from pipelines.cli import main
from pipelines.kfp_package import compile_package

_compiled: dict[tuple[str, str], object] = {}


def _compile_once(settings, pipeline="training"):
    """The real compile, memoised per (config digest, pipeline): compiling costs ~1 s."""
    key = (settings.digest(), pipeline)
    if key not in _compiled:
        _compiled[key] = compile_package(settings, pipeline)
    return _compiled[key]


@pytest.fixture(scope="session")
def compile_once():
    return _compile_once


@pytest.fixture
def kfp_offline(monkeypatch, tmp_path, compile_once):
    """No KFP host, token or namespace from the environment; the CLI compiles through
    compile_once."""
    for name in ("KFP_HOST", "KFP_TOKEN", "KFP_TOKEN_FILE", "KFP_NAMESPACE", "KFP_UI_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(submit_cli, "compile_package", compile_once)


@pytest.fixture(scope="session")
def compile_cli(tmp_path_factory):
    """`mlpipe compile ARGS` into a fresh folder -> (pipeline spec, platform spec)."""

    def compile_(*args: str):
        out = tmp_path_factory.mktemp("spec") / "pipeline.yaml"
        assert main(["compile", "--output", str(out), *args]) == 0
        spec, platform = yaml.safe_load_all(out.read_text())
        return spec, platform

    return compile_
