"""`servestack render`: one deterministic YAML per resource, manifests valid, secrets masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from infra.capacity import plan_capacity
from infra.clusters.spec import FAKE_KUBECONFIG
from infra.pod_preview import PREVIEW_ANNOTATION, PREVIEW_VALUE
from infra.serve_config import serve_config_for
from infra.stack_file import available_stacks, load_stack_config, stack_file
from servestack.cli import app
from servestack.offline import SECRET_PLACEHOLDER, run_stack
from servestack.render import (
    CAPACITY_PLAN,
    INDEX,
    SECRET,
    RenderError,
    render_documents,
    render_stack_file,
    write_documents,
)

STACKS = available_stacks()
KUBERNETES_VERSION = "1.33"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("stack", STACKS)
def test_one_file_per_registered_resource(stack: str, rendered: Path) -> None:
    index = load(rendered / stack / INDEX)
    run = run_stack(stack).check()
    assert sorted(r["urn"] for r in index["resources"]) == sorted(r.urn for r in run.resources)
    for entry in index["resources"]:
        assert (rendered / stack / entry["file"]).is_file(), entry
    assert len({e["file"] for e in index["resources"]}) == len(index["resources"])


def test_render_is_byte_for_byte_deterministic(tmp_path: Path, rendered: Path) -> None:
    render_stack_file(stack_file("prod"), tmp_path, "prod")
    assert files(tmp_path / "prod") == files(rendered / "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_kubernetes_objects_are_valid_manifests(stack: str, rendered: Path) -> None:
    manifests = sorted((rendered / stack / "kubernetes").glob("*.yaml"))
    pods = sorted((rendered / stack / "preview-pods").glob("*.yaml"))
    assert manifests and pods
    for path in manifests + pods:
        document = load(path)
        assert {"apiVersion", "kind", "metadata"} <= set(document), path
        if "." not in document["apiVersion"].split("/")[0]:  # core groups; CRDs are checked
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_is_ever_written(stack: str, rendered: Path) -> None:
    text = "\n".join(p.read_text() for p in sorted((rendered / stack).rglob("*.yaml")))
    assert SECRET_PLACEHOLDER not in text  # the offline stand-in for every secret config value
    assert "offline-ca" not in text and FAKE_KUBECONFIG not in text
    for path in (rendered / stack / "kubernetes").glob("secret.*.yaml"):
        document = load(path)
        assert set(document["stringData"].values()) == {SECRET}
    provider = next((rendered / stack / "resources").glob("pulumi-providers-kubernetes.*.yaml"))
    assert load(provider)["inputs"]["kubeconfig"] == SECRET


@pytest.mark.parametrize("stack", STACKS)
def test_serve_config_and_capacity_plan_files_are_the_derived_documents(
    stack: str, rendered: Path
) -> None:
    config = load_stack_config(stack)
    (serve_file,) = (rendered / stack / "serve-config").glob("*.yaml")
    assert load(serve_file) == serve_config_for(config)
    assert load(rendered / stack / CAPACITY_PLAN) == plan_capacity(config).to_output()


def test_preview_pods_expand_every_group_with_the_autoscaler_on_the_head(rendered: Path) -> None:
    rayservice = load(rendered / "prod" / "kubernetes" / "rayservice.servestack.yaml")
    cluster = rayservice["spec"]["rayClusterConfig"]
    pods = {load(p)["metadata"]["name"]: load(p)
            for p in (rendered / "prod" / "preview-pods").glob("*.yaml")}
    groups = [g["groupName"] for g in cluster["workerGroupSpecs"]]
    assert sorted(pods) == sorted(["servestack-head-preview"]
                                  + [f"servestack-{g}-worker-preview" for g in groups])
    for pod in pods.values():
        assert pod["metadata"]["annotations"][PREVIEW_ANNOTATION] == PREVIEW_VALUE
        assert pod["metadata"]["namespace"] == rayservice["metadata"]["namespace"]
    head = pods["servestack-head-preview"]
    assert [c["name"] for c in head["spec"]["containers"]][-1] == "autoscaler"
    assert head["spec"]["containers"][-1]["resources"] == cluster["autoscalerOptions"]["resources"]
    for group in cluster["workerGroupSpecs"]:
        pod = pods[f"servestack-{group['groupName']}-worker-preview"]
        assert pod["spec"] == group["template"]["spec"]  # tolerations, selector, resources
        assert pod["metadata"]["labels"]["ray.io/group"] == group["groupName"]


def test_render_refuses_to_clear_a_directory_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "notes.txt").write_text("mine")
    run = run_stack("prod").check()
    with pytest.raises(RenderError, match="not a servestack render"):
        write_documents(render_documents(run), tmp_path / "prod")
    assert (tmp_path / "prod" / "notes.txt").read_text() == "mine"


def test_cli_renders_and_exits_2_for_an_unknown_stack(tmp_path: Path) -> None:
    from servestack.cli import commands  # noqa: F401

    result = CliRunner().invoke(app, ["render", "--out", str(tmp_path), "--stack", "nope"])
    assert result.exit_code == 2
    assert "no stack file" in result.output
    result = CliRunner().invoke(app, ["render", "--out", str(tmp_path), "--stack", "local"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "local" / INDEX).is_file()
