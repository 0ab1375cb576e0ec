"""kind: worker nodes impersonate the pools (labels, taints), local images are loaded."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import yaml

from infra.clusters.kind import image_id_command, images_to_load, kind_config
from infra.config import StackConfig, parse_stack_config
from infra.stack_file import load_stack_config
from servestack.offline import ProgramRun

Runs = Callable[[str], ProgramRun]
COMMAND = "command:local:Command"


def two_pool_stack(**image: Any) -> StackConfig:
    return parse_stack_config("kind-test", {
        "cluster": {"backend": "kind", "name": "kt", "node_image": "kindest/node:v1.33.1"},
        "pools": [
            {"name": "cpu", "cpu": 4, "memory": "8GiB", "labels": {"servestack.io/pool": "cpu"},
             "max_nodes": 2},
            {"name": "batch", "cpu": 4, "memory": "8GiB", "labels": {"servestack.io/pool": "batch"},
             "taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}],
             "max_nodes": 1},
        ],
        "image": {"repository": "localhost/servestack", **image},
        "rayservice": {"upgrade_strategy": "None"},
        "apps": {"embeddings": None},
    })


def test_each_pool_becomes_max_nodes_workers_with_its_labels_and_taints() -> None:
    config = kind_config(two_pool_stack())
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    cpu, _, batch = config["nodes"][1:]
    assert cpu["labels"] == {"servestack.io/pool": "cpu"} and "kubeadmConfigPatches" not in cpu
    assert batch["labels"] == {"servestack.io/pool": "batch"}
    (patch,) = batch["kubeadmConfigPatches"]
    join = yaml.safe_load(patch)
    assert join["kind"] == "JoinConfiguration"
    assert join["nodeRegistration"]["taints"] == [
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]
    assert {node["image"] for node in config["nodes"]} == {"kindest/node:v1.33.1"}


def test_only_local_images_are_loaded_into_kind() -> None:
    assert images_to_load(two_pool_stack()) == {"cpu": "localhost/servestack:2.60.0-py311-cpu"}
    remote = two_pool_stack(repository="ghcr.io/acme/servestack")
    assert images_to_load(remote) == {}
    never_pulled = two_pool_stack(repository="ghcr.io/acme/servestack", pull_policy="Never")
    assert list(images_to_load(never_pulled)) == ["cpu"]


def test_gpu_pools_on_kind_are_only_a_warning() -> None:
    plain = two_pool_stack()
    assert plain.cluster.pool_warnings(plain.pools) == []
    stack = load_stack_config("local").model_copy(update={"pools": (
        *load_stack_config("local").pools,
        load_stack_config("dev").pool("gpu-l4"),
    )})
    (warning,) = stack.cluster.pool_warnings(stack.pools)
    assert "pools[gpu-l4]" in warning and "nvkind" in warning


def test_local_stack_creates_and_deletes_the_cluster_from_the_generated_config(
    checked_stack_run: Runs,
) -> None:
    run = checked_stack_run("local")
    cluster = run.one(COMMAND, "kind-cluster").inputs
    assert cluster["create"].startswith("kind create cluster --name servestack-local --config -")
    assert cluster["delete"] == "kind delete cluster --name servestack-local"
    assert yaml.safe_load(cluster["stdin"]) == kind_config(load_stack_config("local"))


def test_kubeconfig_is_read_from_kind_and_kept_secret(checked_stack_run: Runs) -> None:
    run = checked_stack_run("local")
    cluster = run.one(COMMAND, "kind-cluster")
    kubeconfig = run.one(COMMAND, "kind-kubeconfig")
    assert kubeconfig.inputs["create"] == "kind get kubeconfig --name servestack-local"
    assert kubeconfig.options.additional_secret_outputs == ("stdout",)
    assert cluster.urn in kubeconfig.options.depends_on
    provider = run.one("pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_inputs
    assert "kubeconfig" in run.secret_outputs


def test_the_app_image_is_loaded_before_workloads(checked_stack_run: Runs) -> None:
    run = checked_stack_run("local")
    load = run.one(COMMAND, "kind-load-cpu")
    image = load_stack_config("local").image.reference(gpu=False)
    assert load.inputs["create"] == f"kind load docker-image {image} --name servestack-local"
    namespace = run.one("kubernetes:core/v1:Namespace", "namespace")
    assert load.urn in namespace.options.depends_on


def test_a_changed_cluster_is_deleted_before_it_is_created_again(checked_stack_run: Runs) -> None:
    """pulumi-command replaces create-before-delete by default: `kind create cluster` would
    fail on the existing name, and the old resource's delete would then remove the new one."""
    cluster = checked_stack_run("local").one(COMMAND, "kind-cluster")
    assert cluster.options.delete_before_replace is True
    assert "kind delete cluster" in cluster.inputs["delete"]


def test_images_are_reloaded_when_their_content_changes_not_only_their_tag(
    checked_stack_run: Runs,
) -> None:
    run = checked_stack_run("local")
    load = run.one(COMMAND, "kind-load-cpu")
    reference = images_to_load(load_stack_config("local"))["cpu"]
    # The offline mock answers `docker image inspect` with a digest of the command.
    digest = hashlib.sha256(image_id_command(reference).encode()).hexdigest()
    assert f"sha256:{digest}" in load.inputs["triggers"]
    assert reference not in load.inputs["triggers"]


def test_the_image_id_is_read_with_docker_inspect() -> None:
    command = image_id_command("localhost/servestack:2.60.0-py311-cpu")
    assert command == ("docker image inspect --format '{{.Id}}' "
                       "localhost/servestack:2.60.0-py311-cpu")
