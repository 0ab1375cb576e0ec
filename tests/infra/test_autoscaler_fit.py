"""Ray's own KubeRay translation of every rendered RayService places every deployment.

The RayService is what the program registers (under Pulumi mocks); its groups go through
`ray.autoscaler._private.kuberay.autoscaling_config` and each deployment's demand through
Serve's `resources_from_ray_options`, so these tests judge what the KubeRay autoscaler would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.autoscaler_fit import (
    ReplicaDemand,
    autoscaler_placement_problems,
    autoscaling_config,
    demand_of,
    holds,
    node_types,
    placement_problems,
    raycluster_document,
)
from infra.capacity import plan_capacity
from infra.config import parse_stack_config
from infra.names import worker_group_selector
from infra.pod_preview import RAYSERVICE_TYPE
from infra.serve_config import serve_config_for, worker_group_selectors
from infra.stack_file import StackFileError, available_stacks, load_stack_config, read_stack_file
from servestack.offline import ProgramRun, run_stack_file
from servestack.render import manifest
from tests.infra.test_broken_stacks import write_stack

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE_STACKS = sorted(p for p in FIXTURES.glob("*.yaml") if not p.name.startswith("rayservice-"))
STACKS = available_stacks()
BEFORE_FIX = FIXTURES / "rayservice-dev-gpu-group-without-accelerator-type.yaml"


def rayservice_of(run: ProgramRun) -> dict[str, Any]:
    return manifest(run.one(RAYSERVICE_TYPE))


def demands_in(rayservice: Mapping[str, Any]) -> list[ReplicaDemand]:
    """Serve's demand per deployment, read from the serveConfigV2 the RayService carries."""
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    out = []
    for app in serve["applications"]:
        for dep in app["deployments"]:
            scaling = dep.get("autoscaling_config") or {}
            out.append(demand_of(app["name"], dep["name"], dep["ray_actor_options"],
                                 int(scaling.get("max_replicas") or dep["num_replicas"])))
    return out


def translated(rayservice: Mapping[str, Any]) -> dict[str, Any]:
    meta = rayservice["metadata"]
    return autoscaling_config(raycluster_document(meta["name"], meta["namespace"],
                                                  rayservice["spec"]["rayClusterConfig"]))


def assert_every_deployment_placed(rayservice: Mapping[str, Any]) -> None:
    problems = placement_problems(node_types(translated(rayservice)), demands_in(rayservice))
    assert problems == []


@pytest.mark.parametrize("stack", STACKS)
def test_rays_translation_of_each_stack_places_every_deployment(
        stack: str, unchecked_stack_run: Callable[[str], ProgramRun]) -> None:
    assert_every_deployment_placed(rayservice_of(unchecked_stack_run(stack).check()))


def _renders(path: Path) -> bool:
    return run_stack_file(path).error is None


@pytest.mark.parametrize("path", FIXTURE_STACKS, ids=[p.stem for p in FIXTURE_STACKS])
def test_rays_translation_of_each_fixture_that_renders_places_every_deployment(
        path: Path) -> None:
    try:
        run = run_stack_file(path)
    except StackFileError:
        pytest.skip("not a stack file the Pulumi CLI would read (test_broken_stacks_agree.py)")
    if run.error is not None:
        pytest.skip("refused before rendering (tests/servestack/render/"
                    "test_broken_stacks_agree.py)")
    assert_every_deployment_placed(rayservice_of(run))


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_gpu_groups_offer_their_pools_accelerator_type_to_rays_translation(
        stack: str, unchecked_stack_run: Callable[[str], ProgramRun]) -> None:
    config = load_stack_config(stack)
    plan = plan_capacity(config)
    run = unchecked_stack_run(stack)
    types = {t.name: t for t in node_types(translated(rayservice_of(run)))}
    gpu_groups = [g for g in plan.worker_groups if g.ray.devices]
    assert gpu_groups
    for group in gpu_groups:
        accelerator = config.pool(group.pool).accelerator
        assert accelerator is not None and accelerator.ray_type
        assert types[group.name].resources[f"accelerator_type:{accelerator.ray_type}"] == 1


def test_cpu_groups_offer_no_accelerator_type(
        unchecked_stack_run: Callable[[str], ProgramRun]) -> None:
    for node_type in node_types(translated(rayservice_of(unchecked_stack_run("prod")))):
        if not node_type.resources.get("GPU"):
            assert not [k for k in node_type.resources if k.startswith("accelerator_type:")]


def test_the_render_from_before_the_fix_leaves_the_classifier_unplaceable() -> None:
    rayservice = next(d for d in yaml.safe_load_all(BEFORE_FIX.read_text()) if d)
    problems = placement_problems(node_types(translated(rayservice)), demands_in(rayservice))
    assert [path for path, _ in problems] == [
        "apps.classifier.deployments.TileClassifier.resources"]
    message = problems[0][1]
    assert "accelerator_type:L4: 0.001" in message
    assert "gpu-nvidia-com-gpu-l4" in message and "lacks accelerator_type:L4" in message


def test_a_replica_without_a_selector_that_fits_the_head_is_refused_naming_its_field() -> None:
    """num_cpus 0 fits the head (num-cpus 0 but memory): without a label selector (a Serve
    config from before the worker-group labels) Ray could put it beside the GCS."""
    rayservice = next(d for d in yaml.safe_load_all(BEFORE_FIX.read_text()) if d)
    zero_cpu = ReplicaDemand("embeddings", "Embedder", {"memory": 2.0**30}, max_replicas=1)
    problems = placement_problems(node_types(translated(rayservice)), [zero_cpu])
    assert [p for p, _ in problems] == ["apps.embeddings.deployments.Embedder.resources"]
    assert "fits the head" in problems[0][1]


def test_a_zero_cpu_replica_stays_off_the_head_by_its_worker_group_selector(
        tmp_path: Path) -> None:
    """The stack's Serve config pins the replica to its group's label, which the head lacks,
    so Ray cannot put it beside the GCS even though the head's resources would hold it."""
    path = write_stack(tmp_path, "zero-cpu", "dev", {"servestack:apps": {
        "embeddings": {"deployments": {"Embedder": {"resources": {"num_cpus": 0}}}}}})
    config = parse_stack_config("zero-cpu", read_stack_file(path))
    assert autoscaler_placement_problems(config, plan_capacity(config)) == []


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_deployment_fits_only_its_plans_group_by_resources_and_selector(
        stack: str, unchecked_stack_run: Callable[[str], ProgramRun]) -> None:
    """CPU replicas cannot take a GPU node's spare CPUs (the prod rehearsal's finding: its
    Embedders did, and the autoscaler launched a second GPU node), and a GPU replica only
    fits the group the plan sized for it."""
    plan = plan_capacity(load_stack_config(stack))
    rayservice = rayservice_of(unchecked_stack_run(stack))
    nodes = node_types(translated(rayservice))
    planned = {(d.app, d.deployment): g.name for g in plan.worker_groups for d in g.deployments}
    for demand in demands_in(rayservice):
        assert [n.name for n in nodes if holds(demand, n)] == [
            planned[(demand.app, demand.deployment)]], demand


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_serve_builds_the_gpu_app_anywhere_and_the_cpu_apps_on_the_cpu_group(
        stack: str) -> None:
    """Serve runs an app's build task on its deployments' common label selector (Ray's own
    rule, called here): a selector on the classifier would launch a GPU node on every deploy,
    in dev from zero, before any request."""
    from ray.serve.schema import ServeDeploySchema

    from infra.ray_internals import serve_build_app_label_selector

    document = ServeDeploySchema.model_validate(serve_config_for(load_stack_config(stack)))
    pinned = {app.name: serve_build_app_label_selector(app)
              for app in document.applications}
    assert pinned == {"classifier": None, "embeddings": worker_group_selector("cpu"),
                      "search": worker_group_selector("cpu")}


def test_gpu_deployments_select_their_group_when_another_gpu_group_could_hold_them() -> None:
    """Two GPU groups: a GPU demand alone no longer tells them apart, so each selects its own."""
    apps = {app.name: app for app in load_stack_config("dev").applications}
    mig = {"resources": {"num_cpus": 1, "num_gpus": 1,
                         "accelerator_resource": "nvidia.com/mig-1g.10gb"}}
    apps["embeddings"] = apps["embeddings"].with_overrides({"deployments": {"Embedder": mig}})
    selectors = worker_group_selectors(apps.values())
    assert selectors[("embeddings", "Embedder")] == worker_group_selector(
        "gpu-nvidia-com-mig-1g-10gb")
    assert selectors[("classifier", "TileClassifier")] == worker_group_selector(
        "gpu-nvidia-com-gpu-l4")
    assert selectors[("search", "Embedder")] == worker_group_selector("cpu")


def test_a_group_without_the_label_its_deployments_select_is_refused_naming_each_one(
        unchecked_stack_run: Callable[[str], ProgramRun]) -> None:
    """Today's dev Serve config against dev as rendered before the labels (the old fixture):
    every deployment's selector matches no group, and each is named with what is missing."""
    old = next(d for d in yaml.safe_load_all(BEFORE_FIX.read_text()) if d)
    demands = demands_in(rayservice_of(unchecked_stack_run("dev")))
    problems = placement_problems(node_types(translated(old)), demands)
    assert sorted(path for path, _ in problems) == sorted(
        f"{d.path}.resources" for d in demands)
    embedder = dict(problems)["apps.embeddings.deployments.Embedder.resources"]
    assert "selecting {servestack.io/worker-group: cpu}" in embedder
    assert "cpu {CPU: 3, GPU: 0, memory: 3GiB} lacks nothing, and its labels {} do not match" \
        in embedder


def test_max_replicas_beyond_what_the_groups_hold_is_named() -> None:
    rayservice = next(d for d in yaml.safe_load_all(BEFORE_FIX.read_text()) if d)
    nodes = node_types(translated(rayservice))
    too_many = ReplicaDemand("embeddings", "Embedder", {"CPU": 1.0}, max_replicas=100)
    problems = placement_problems(nodes, [too_many])
    assert problems[0][0] == "apps.embeddings.deployments.Embedder.autoscaling.max_replicas"
    assert "cpu (3 per node x maxReplicas 2)" in problems[0][1]
