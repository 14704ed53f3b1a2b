"""Every folder under components/ (a stage or a library) has a metadata.yaml that says what it
needs, and what it says about images and kfp is what the code and the pins say: the images are
the ones its component.py's `@dsl.component(base_image=...)` resolve to through
components/common/images.py (read with ast, nothing imported), and each image's kfp version is
that image's pin (pyproject.toml for the pipeline image, the image's requirements.lock for the
others: the tfdv environment runs kfp 2.13)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from components.common.config import REPO_ROOT

COMPONENTS = REPO_ROOT / "components"
REQUIRED = ("name", "description", "images", "services", "kfp_version", "stability")
STABILITY = {"stable", "beta", "alpha"}
HOW = {"unit tests", "local run", "cluster rehearsal"}
FOLDERS = sorted(p.parent for p in COMPONENTS.glob("*/__init__.py"))


def image_names(images_py: Path = COMPONENTS / "common" / "images.py") -> dict[str, str]:
    """{"PIPELINE_IMAGE": "pipeline", ...}: the module's `X = image_ref("name")` assignments."""
    names = {}
    for node in ast.parse(images_py.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "image_ref"
        ):
            names[node.targets[0].id] = node.value.args[0].value
    return names


def base_images(component_py: Path) -> set[str]:
    """The names the `@dsl.component(base_image=NAME)` decorators of a component.py use."""
    found = set()
    for node in ast.walk(ast.parse(component_py.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and ast.unparse(deco.func) == "dsl.component":
                for kw in deco.keywords:
                    if kw.arg == "base_image":
                        found.add(ast.unparse(kw.value))
    return found


def kfp_pin(image: str) -> str | None:
    """The kfp version an image runs: the pipeline image is built from pyproject.toml's pins; the
    others from their own lock (images/<image>/requirements.lock)."""
    if image == "pipeline":
        deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        text = "\n".join(deps)
    else:
        lock = REPO_ROOT / "images" / image / "requirements.lock"
        text = lock.read_text() if lock.is_file() else ""
    match = re.search(r"^kfp==([\w.]+)", text, re.M)
    return match.group(1) if match else None


def problems(folder: Path, meta: object) -> list[str]:
    """What is wrong with `meta`, the parsed metadata.yaml of `folder` (empty: nothing)."""
    if not isinstance(meta, dict):
        return ["metadata.yaml is missing or not a mapping"]
    found = [f"missing key {key!r}" for key in REQUIRED if key not in meta]
    verified = meta.get("last_verified")
    if not isinstance(verified, dict) or not {"date", "how"} <= verified.keys():
        found.append("last_verified needs a date and how")
    else:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(verified["date"])):
            found.append(f"last_verified.date {verified['date']!r} is not YYYY-MM-DD")
        if not verified["how"] or not set(verified["how"]) <= HOW:
            found.append(f"last_verified.how {verified['how']!r}: a non-empty subset of {HOW}")
    if meta.get("name", folder.name) != folder.name:
        found.append(f"name {meta['name']!r} is not the folder's name {folder.name!r}")
    if "stability" in meta and meta["stability"] not in STABILITY:
        found.append(f"stability {meta['stability']!r} is not one of {sorted(STABILITY)}")
    if "services" in meta and not isinstance(meta["services"], list):
        found.append("services is not a list")
    images = set(meta.get("images") or [])
    component_py = folder / "component.py"
    if component_py.is_file():
        names = image_names()
        uses = {names.get(name, f"<unknown {name}>") for name in base_images(component_py)}
        if images != uses:
            found.append(f"images {sorted(images)} but component.py runs in {sorted(uses)}")
    for image in images:
        if not (REPO_ROOT / "images" / image / "Dockerfile").is_file():
            found.append(f"image {image!r} has no images/{image}/Dockerfile")
    versions = meta.get("kfp_version")
    if "kfp_version" in meta:
        if not isinstance(versions, dict) or set(versions) != images:
            found.append(f"kfp_version {versions!r} must name each image once: {sorted(images)}")
        else:
            for image, version in versions.items():
                if str(version) != kfp_pin(image):
                    found.append(f"kfp_version {image}: {version} but the pin is {kfp_pin(image)}")
    return found


def _load(folder: Path) -> object:
    path = folder / "metadata.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def test_the_folders_include_every_stage_and_library():
    stages = {"deploy", "evaluate", "features", "ingest", "monitor", "notify", "register"}
    stages |= {"select", "track", "train", "tune", "validate"}
    assert stages | {"common", "serve"} <= {f.name for f in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_each_component_folder_has_true_metadata(folder):
    assert problems(folder, _load(folder)) == []


def _good() -> dict:
    return _load(COMPONENTS / "monitor")  # two images: pipeline and tfdv


def test_a_missing_file_or_key_is_found():
    assert problems(COMPONENTS / "monitor", None) == ["metadata.yaml is missing or not a mapping"]
    meta = _good()
    del meta["services"]
    del meta["last_verified"]["how"]
    assert problems(COMPONENTS / "monitor", meta) == [
        "missing key 'services'",
        "last_verified needs a date and how",
    ]


def test_an_image_the_component_does_not_run_in_is_found():
    meta = {**_good(), "images": ["pipeline"], "kfp_version": {"pipeline": kfp_pin("pipeline")}}
    assert problems(COMPONENTS / "monitor", meta) == [
        "images ['pipeline'] but component.py runs in ['pipeline', 'tfdv']"
    ]


def test_a_kfp_version_other_than_the_pin_is_found():
    meta = _good()
    meta["kfp_version"] = {"pipeline": kfp_pin("pipeline"), "tfdv": kfp_pin("pipeline")}
    assert kfp_pin("tfdv") != kfp_pin("pipeline")  # the tfdv environment pins an older kfp
    assert problems(COMPONENTS / "monitor", meta) == [
        f"kfp_version tfdv: {kfp_pin('pipeline')} but the pin is {kfp_pin('tfdv')}"
    ]


def test_base_images_reads_the_decorators(tmp_path):
    py = tmp_path / "component.py"
    py.write_text(
        "from kfp import dsl\n"
        "@dsl.component(base_image=TFDV_IMAGE, install_kfp_package=False)\n"
        "def a(): ...\n"
        "@dsl.component(base_image=PIPELINE_IMAGE)\n"
        "def b(): ...\n"
    )
    assert base_images(py) == {"TFDV_IMAGE", "PIPELINE_IMAGE"}
    assert image_names() == {"PIPELINE_IMAGE": "pipeline", "TFDV_IMAGE": "tfdv"}
