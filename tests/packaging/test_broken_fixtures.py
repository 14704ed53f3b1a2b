"""The checks that pass the real manifests must fail on broken ones, or they prove nothing."""

from pathlib import Path

import pytest
import yaml

from tests.packaging.checks import container_errors, image_errors
from tests.packaging.render import (
    MANIFESTS,
    RenderError,
    kind_kubernetes_version,
    render,
    validation_errors,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _load(name):
    return yaml.safe_load((FIXTURES / name).read_text())


def test_a_deployment_with_an_unknown_field_is_rejected():
    errors = validation_errors(_load("deployment-unknown-field.yaml"), kind_kubernetes_version())
    assert errors and "replica" in " ".join(errors)


def test_a_serving_runtime_with_wrong_types_is_rejected():
    errors = validation_errors(_load("servingruntime-wrong-type.yaml"), kind_kubernetes_version())
    joined = " ".join(errors)
    assert "spec.protocolVersions" in joined and "array" in joined
    assert "spec.multiModel" in joined and "boolean" in joined


def test_an_overlay_patch_that_targets_nothing_fails_to_render():
    with pytest.raises(RenderError, match="mlfow"):
        render(FIXTURES / "overlay-patch-targets-nothing")


def test_an_unlocked_container_breaks_every_rule():
    obj = _load("deployment-unlocked.yaml")
    assert validation_errors(obj, kind_kubernetes_version()) == []  # the schema alone allows it
    errors = " ".join(container_errors(obj))
    for expected in (
        "no requests.cpu",
        "no limits.memory",
        "runAsNonRoot",
        "allowPrivilegeEscalation",
        "capabilities.drop",
        "readOnlyRootFilesystem",
    ):
        assert expected in errors
    assert image_errors(obj, "0.1.0") == [
        "Deployment mlpipe/careless container app: image 'docker.io/library/nginx:latest' "
        "is not pinned to a version"
    ]


def test_a_project_image_with_another_version_is_refused():
    obj = _load("deployment-unknown-field.yaml")
    assert image_errors(obj, "9.9.9") == [
        "Deployment mlpipe/mlflow container mlflow: ghcr.io/mlpipe/pipeline:0.1.0 is not the "
        "project version 9.9.9"
    ]


def test_an_object_without_a_schema_is_an_error_not_a_pass():
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "mlpipe"},
    }
    assert validation_errors(obj, kind_kubernetes_version())


def test_a_wrong_value_in_a_real_object_is_caught(tmp_path):
    objects = render(MANIFESTS / "overlays" / "kind")
    postgres = next(o for o in objects if o["kind"] == "StatefulSet")
    postgres["spec"]["replicas"] = "one"
    errors = validation_errors(postgres, kind_kubernetes_version())
    assert errors and "replicas" in errors[0]
