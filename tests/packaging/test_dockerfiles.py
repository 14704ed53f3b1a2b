"""Each image's Dockerfile installs from its lock only and runs as a non-root user; the locks
derived from uv.lock are exactly the main environment (so a dependency change without
`make lock-images` fails here), and the compiled pipeline uses exactly the images we build."""

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.packaging.dockerfile import dockerfile_errors, lineage, parse, root_base
from tests.packaging.render import REPO_ROOT

IMAGES = ("pipeline", "serving", "tfdv")
FROM_UV_LOCK = ("pipeline", "serving")
FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: Path) -> dict[str, str]:
    """name -> version of every `name==version` requirement line."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            pins[_norm(match.group(1))] = match.group(3)
    return pins


def _requirement_lines(lock: Path) -> list[str]:
    return [
        line
        for line in lock.read_text().splitlines()
        if line and not line.startswith((" ", "#", "\t"))
    ]


def _uv_lock() -> dict[str, dict]:
    data = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    return {_norm(p["name"]): p for p in data["package"]}


def _main_closure(packages: dict[str, dict]) -> dict[str, str]:
    """Everything the project's runtime dependencies pull in (extras followed, no dev group)."""
    seen: dict[str, str] = {}
    todo = [(d["name"], tuple(d.get("extra", []))) for d in packages["mlpipe"]["dependencies"]]
    while todo:
        name, extras = todo.pop()
        package = packages[_norm(name)]
        first = _norm(name) not in seen
        seen[_norm(name)] = package["version"]
        deps = list(package.get("dependencies", [])) if first else []
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        todo += [(d["name"], tuple(d.get("extra", []))) for d in deps]
    return seen


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_installs_from_its_lock_and_runs_as_non_root(image):
    path = REPO_ROOT / "images" / image / "Dockerfile"
    assert dockerfile_errors(path, image, REPO_ROOT) == []


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_facts(image):
    stages = parse((REPO_ROOT / "images" / image / "Dockerfile").read_text())
    final = stages[-1]
    # the BASE build argument's default: the official slim image, by tag and digest
    assert re.fullmatch(
        r"docker\.io/library/python:3\.11\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}",
        root_base(stages, final),
    )
    # one base for every stage (the wheel is built by the interpreter that installs it)
    assert {root_base(stages, stage) for stage in stages} == {root_base(stages, final)}
    (user,) = {u.args for u in final.all("USER")}
    assert user == "10001:10001"
    title = f'org.opencontainers.image.title="mlpipe-{image}"'
    assert any(title in label.args for label in final.all("LABEL"))


def test_the_serving_image_starts_the_model_server():
    final = parse((REPO_ROOT / "images" / "serving" / "Dockerfile").read_text())[-1]
    (entrypoint,) = final.all("ENTRYPOINT")
    assert entrypoint.args == '["python", "-m", "components.serve"]'
    (cmd,) = final.all("CMD")
    args = json.loads(cmd.args)
    assert args[args.index("--model-dir") + 1] == "/mnt/models"
    assert args[args.index("--port") + 1] == "8080"
    # in a container the server must not keep its laptop default (127.0.0.1)
    assert args[args.index("--host") + 1] == "0.0.0.0"
    from components.serve.__main__ import build_parser

    parsed = build_parser().parse_args(args)
    assert (parsed.host, parsed.port, parsed.model_dir) == ("0.0.0.0", 8080, "/mnt/models")
    # fault injection stays off in the image: no switch, no fault, anywhere in the Dockerfile
    text = (REPO_ROOT / "images" / "serving" / "Dockerfile").read_text()
    for word in ("--allow-faults", "MLPIPE_ALLOW_FAULTS", "--fault", "MLPIPE_SERVE_FAULT"):
        assert word not in text
    assert not parsed.allow_faults and parsed.fault is None
    assert build_parser().parse_args(["--model-dir", "m", "--model-name", "n"]).host == (
        "127.0.0.1"
    )


def test_a_broken_dockerfile_is_rejected():
    errors = " | ".join(dockerfile_errors(FIXTURES / "Dockerfile.broken", "pipeline", REPO_ROOT))
    for expected in (
        "mentions :latest",
        "not pinned by version",
        "installs 'pandas' outside its lock",
        "--require-hashes is missing",
        "copied before the lock is installed",
        "must be a numeric non-root uid",
        "missing LABEL org.opencontainers.image.version",
    ):
        assert expected in errors


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


GOOD_TAIL = """
LABEL org.opencontainers.image.source="s" org.opencontainers.image.title="t" \\
      org.opencontainers.image.version="1"
COPY --from=wheel /dist/ /tmp/dist/
RUN pip install --no-deps /tmp/dist/mlpipe-*.whl
USER 10001:10001
CMD ["python"]
"""
WHEEL_STAGE = """
FROM python:3.11.14-slim-bookworm AS wheel
COPY components /src/components
RUN pip wheel --no-deps --wheel-dir /dist /src
"""


def test_a_compiler_in_the_final_image_is_rejected(tmp_path):
    text = (
        WHEEL_STAGE
        + "FROM python:3.11.14-slim-bookworm AS base\n"
        + "RUN apt-get update && apt-get install -y --no-install-recommends build-essential\n"
        + "FROM base\n"
        + "RUN apt-get update && apt-get install -y g++ libgomp1\n"
        + "COPY images/tfdv/requirements.lock /tmp/requirements.lock\n"
        + "RUN pip install --no-deps -r /tmp/requirements.lock\n"
        + GOOD_TAIL
    )
    errors = " | ".join(dockerfile_errors(_write(tmp_path, text), "tfdv", REPO_ROOT))
    assert "the final image installs build-essential" in errors  # through FROM base
    assert "the final image installs g++ (" in errors  # libgomp1 is fine


def test_find_links_must_come_from_a_builder_stage(tmp_path):
    final = (
        "FROM python:3.11.14-slim-bookworm\n"
        "COPY images/tfdv/requirements.lock /tmp/requirements.lock\n"
        "COPY --from=sdists /wheels /tmp/wheels\n"
        "RUN pip install --no-deps --only-binary=:all: --find-links /tmp/{links} "
        "-r /tmp/requirements.lock\n"
    )
    sdists = "FROM python:3.11.14-slim-bookworm AS sdists\nRUN pip wheel --no-deps -w /wheels x\n"
    good = WHEEL_STAGE + sdists + final.format(links="wheels") + GOOD_TAIL
    assert dockerfile_errors(_write(tmp_path, good), "tfdv", REPO_ROOT) == []
    bad = WHEEL_STAGE + sdists + final.format(links="elsewhere") + GOOD_TAIL
    errors = dockerfile_errors(_write(tmp_path, bad), "tfdv", REPO_ROOT)
    assert len(errors) == 1
    assert errors[0].endswith(": --find-links /tmp/elsewhere is not copied from a builder")


def _tfdv_stages():
    return parse((REPO_ROOT / "images" / "tfdv" / "Dockerfile").read_text())


def _platform_check() -> str:
    """The tfdv Dockerfile's first RUN: the platform check."""
    first = _tfdv_stages()[0]
    return next(i for i in first.instructions if i.keyword == "RUN").args


def test_tfdv_checks_the_platform_before_anything_else():
    stages = _tfdv_stages()
    first = stages[0]
    assert [i.keyword for i in first.instructions] == ["ARG", "RUN"]
    assert first.instructions[0].args == "TARGETARCH"
    # every stage derives from the checked one, so nothing is built before the check
    assert all(first in lineage(stages, stage) for stage in stages)


@pytest.mark.parametrize(
    ("target", "ok"),
    [("amd64", True), ("x86_64", True), ("arm64", False), ("aarch64", False), ("s390x", False)],
)
def test_tfdv_platform_check_refuses_everything_but_amd64(target, ok):
    env = {**os.environ, "TARGETARCH": target}
    result = subprocess.run(
        ["sh", "-c", _platform_check()], env=env, capture_output=True, text=True
    )
    assert (result.returncode == 0) is ok
    if not ok:
        assert f"cannot build for {target}" in result.stderr
        assert "linux/amd64" in result.stderr and "x86_64 only" in result.stderr


def test_tfdv_platform_check_falls_back_to_uname_without_targetarch():
    env = {k: v for k, v in os.environ.items() if k != "TARGETARCH"}
    result = subprocess.run(
        ["sh", "-c", _platform_check()], env=env, capture_output=True, text=True
    )
    assert (result.returncode == 0) is (os.uname().machine == "x86_64")


def test_tfdv_builds_the_source_only_pins_in_a_builder_and_installs_wheels_only():
    stages = _tfdv_stages()
    final = stages[-1]
    (sdists,) = [s for s in stages if s.name == "sdists"]
    (arg,) = [i.args for i in sdists.all("ARG") if i.args.startswith("SOURCE_ONLY=")]
    names = arg.partition("=")[2].strip('"').split()
    pins = _pins(REPO_ROOT / "images" / "tfdv" / "requirements.lock")
    assert "pyfarmhash" in names and set(names) <= set(pins), set(names) - set(pins)
    builder_runs = " ".join(i.args for i in sdists.all("RUN"))
    assert "g++" in builder_runs and "--no-build-isolation" in builder_runs
    assert sdists not in lineage(stages, final)  # the compiler stays in the builder
    installs = " ".join(i.args for i in final.all("RUN"))
    assert "--only-binary=:all:" in installs and "--find-links=/tmp/wheels" in installs
    assert any(i.args.split()[:2] == ["--from=sdists", "/wheels"] for i in final.all("COPY"))


@pytest.mark.parametrize("image", FROM_UV_LOCK)
def test_lock_is_exactly_the_main_environment_of_uv_lock(image):
    lock = REPO_ROOT / "images" / image / "requirements.lock"
    pins = _pins(lock)
    packages = _uv_lock()
    wrong = {
        name: (version, packages.get(name, {}).get("version"))
        for name, version in pins.items()
        if packages.get(name, {}).get("version") != version
    }
    assert wrong == {}, f"{lock}: versions differ from uv.lock (run `make lock-images`)"
    expected = _main_closure(packages)
    assert set(pins) == set(expected), (
        f"{lock} is stale (run `make lock-images`): missing {sorted(set(expected) - set(pins))}, "
        f"extra {sorted(set(pins) - set(expected))}"
    )
    assert "mlpipe" not in pins
    assert not {"pytest", "ruff", "moto"} & set(pins)  # no dev tools in an image


@pytest.mark.parametrize(
    "lock",
    [
        "images/pipeline/requirements.lock",
        "images/serving/requirements.lock",
        "images/build-requirements.lock",
    ],
)
def test_hashed_locks_pin_and_hash_every_requirement(lock):
    text = (REPO_ROOT / lock).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    blocks = re.split(r"\n(?=[A-Za-z0-9])", body)
    for block in blocks:
        if not block.strip() or block.startswith("#"):
            continue
        assert "==" in block.splitlines()[0], block.splitlines()[0]
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_tfdv_lock_pins_every_package_and_tfdv_itself():
    lock = REPO_ROOT / "images" / "tfdv" / "requirements.lock"
    lines = _requirement_lines(lock)
    assert lines and all("==" in line for line in lines)
    pins = _pins(lock)
    assert pins["tensorflow-data-validation"] == "1.16.1"
    assert pins["kfp"].startswith("2.13.")
    # the tfdv set cannot share versions with uv.lock (protobuf < 6, pandas < 2 by design):
    assert pins["protobuf"].split(".")[0] < "6"


def test_build_lock_pins_the_wheel_backend_the_project_declares():
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["build-system"]
    assert declared["build-backend"] == "hatchling.build"
    assert "hatchling" in _pins(REPO_ROOT / "images" / "build-requirements.lock")


def _makefile_images() -> tuple[str, ...]:
    makefile = (REPO_ROOT / "Makefile").read_text()
    match = re.search(r"^IMAGES := (.+)$", makefile, re.MULTILINE)
    assert match, "Makefile: no IMAGES := line"
    return tuple(match.group(1).split())


def test_make_images_builds_one_image_per_folder():
    folders = {p.parent.name for p in (REPO_ROOT / "images").glob("*/Dockerfile")}
    assert set(_makefile_images()) == folders == set(IMAGES)


def test_compiled_pipeline_uses_exactly_the_images_make_images_builds(tmp_path, monkeypatch):
    from components.common import images
    from pipelines.cli import main

    assert images.VERSION == PROJECT_VERSION  # the installed package is this source tree
    out = tmp_path / "pipeline.yaml"
    assert main(["compile", "--output", str(out)]) == 0
    # the pipeline spec, possibly followed by a platform spec document
    (spec,) = [d for d in yaml.safe_load_all(out.read_text()) if d and "deploymentSpec" in d]
    used = {
        executor["container"]["image"]
        for executor in spec["deploymentSpec"]["executors"].values()
        if "container" in executor
    }
    built = {f"{images.REGISTRY}/{name}:{PROJECT_VERSION}" for name in _makefile_images()}
    assert used, "no task images in the compiled spec"
    assert used <= built, used - built
    # every image a task needs except serving (KServe runs that one) is used by some task
    assert built - used <= {f"{images.REGISTRY}/serving:{PROJECT_VERSION}"}
