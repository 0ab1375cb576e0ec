"""The rehearsal's pure parts, fast: reading the autoscaler's infeasible event, the plain
failure message, the placement checks, the Serve config copy, the fake cluster's config and
head command line, and the CLI's exit 2 / --help paths (nothing is started)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import servestack.cli.commands  # noqa: F401  (registers every command on `app`)
from infra.autoscaler_fit import NodeType, ReplicaDemand
from infra.capacity import CapacityPlan, plan_capacity
from infra.config import REPO_ROOT, STACKS_DIR
from infra.names import WORKER_GROUP_LABEL, worker_group_node_labels
from infra.stack_file import load_stack_config, stack_file
from servestack.cli import app
from servestack.local.head import LocalPorts
from servestack.local.serve_status import ServeSnapshot
from servestack.rehearse.cluster import RehearsalPorts, head_argv, head_environment
from servestack.rehearse.probe import AutoscalerView
from servestack.rehearse.run import (
    demands_of_config,
    infeasible_bundles,
    infeasible_message,
    load_concurrency,
    placements,
)
from servestack.rehearse.serve_copy import rehearsal_serve_config
from servestack.rehearse.translation import (
    FAKE_HEAD_NODE_TYPE,
    RayServiceError,
    fake_cluster_config,
    file_target,
    target_from_rayservice,
)

FIXTURE = (REPO_ROOT / "tests" / "fixtures"
           / "rayservice-dev-gpu-group-without-accelerator-type.yaml")
GPU = "gpu-nvidia-com-gpu-l4x1"
CLASSIFIER = {"CPU": 1.0, "GPU": 0.5, "accelerator_type:L4": 0.001}
# The message autoscaler v2 logs (ray/autoscaler/v2/event_logger.py), verbatim in form.
V2_EVENT = ("No available node types can fulfill resource requests "
            "{'CPU': 1.0, 'GPU': 0.5, 'accelerator_type:L4': 0.001}*1, {'CPU': 64.0}*2. "
            "Add suitable node types to this cluster to resolve this issue.")

NODES = (
    NodeType("headgroup", {"CPU": 0.0, "memory": 2 * 1024.0**3}, 0, 0),
    NodeType("cpu", {"CPU": 2.0, "memory": 4 * 1024.0**3}, 1, 3),
    NodeType(GPU, {"CPU": 2.0, "GPU": 1.0, "memory": 8 * 1024.0**3}, 0, 1),
)


@pytest.fixture(scope="module")
def dev_plan() -> CapacityPlan:
    return plan_capacity(load_stack_config("dev", STACKS_DIR))


def test_infeasible_bundles_reads_every_bundle_of_the_v2_event_once() -> None:
    events = ["Adding 1 node(s) of type cpu.", V2_EVENT, V2_EVENT]
    assert infeasible_bundles(events) == [CLASSIFIER, {"CPU": 64.0}]
    assert infeasible_bundles(["Resized to 2 CPUs, 1 GPUs."]) == []


def test_infeasible_message_names_deployment_demand_and_what_each_node_type_lacks() -> None:
    demands = [ReplicaDemand("classifier", "TileClassifier", CLASSIFIER, 1),
               ReplicaDemand("embeddings", "Embedder", {"CPU": 1.0}, 2)]
    message = infeasible_message([CLASSIFIER], demands, NODES)
    assert "application 'classifier', deployment 'TileClassifier'" in message
    assert "Embedder" not in message
    assert "{CPU: 1, GPU: 0.5, accelerator_type:L4: 0.001}" in message
    assert f"{GPU} " in message and "lacks accelerator_type:L4 (0.001 > 0)" in message
    assert "cpu {CPU: 2, memory: 4GiB} lacks GPU (0.5 > 0), accelerator_type:L4" in message
    unknown = infeasible_message([{"CPU": 64.0}], demands, NODES)
    assert "a demand of no deployment in the Serve config" in unknown


def _snapshot(replicas: dict[tuple[str, str], list[str]]) -> ServeSnapshot:
    applications: dict[str, Any] = {}
    for (app_name, dep), nodes in replicas.items():
        app_state = applications.setdefault(
            app_name, {"name": app_name, "status": "RUNNING", "deployments": {}})
        app_state["deployments"][dep] = {
            "name": dep, "status": "HEALTHY", "target_num_replicas": len(nodes),
            "replicas": [{"state": "RUNNING", "replica_id": f"r{i}", "node_id": node}
                         for i, node in enumerate(nodes)]}
    return ServeSnapshot.model_validate({"applications": applications})


def test_placements_flag_the_head_a_gpu_group_for_cpu_work_and_the_wrong_gpu_group(
        dev_plan: CapacityPlan) -> None:
    gpu_group = next(g.name for g in dev_plan.worker_groups
                     if any(d.deployment == "TileClassifier" for d in g.deployments))
    cpu_group = next(g.name for g in dev_plan.worker_groups if g.name != gpu_group)
    nodes = (NODES[0], NodeType(cpu_group, {"CPU": 2.0}, 1, 3),
             NodeType(gpu_group, {"CPU": 2.0, "GPU": 1.0}, 0, 1),
             NodeType("gpu-other", {"CPU": 2.0, "GPU": 1.0}, 0, 1))
    view = AutoscalerView(at=0.0, nodes=(("h", FAKE_HEAD_NODE_TYPE), ("c", cpu_group),
                                         ("g", gpu_group), ("o", "gpu-other")))
    demands = [ReplicaDemand("classifier", "TileClassifier", CLASSIFIER, 1),
               ReplicaDemand("embeddings", "Embedder", {"CPU": 1.0}, 2)]
    good = placements(_snapshot({("classifier", "TileClassifier"): ["g"],
                                 ("embeddings", "Embedder"): ["c", "c"]}),
                      view, demands, nodes, dev_plan)
    assert [(p.deployment, p.node_types, p.problems) for p in good] == [
        ("TileClassifier", (gpu_group,), ()), ("Embedder", (cpu_group, cpu_group), ())]
    bad = placements(_snapshot({("classifier", "TileClassifier"): ["o"],
                                ("embeddings", "Embedder"): ["g", "h"]}),
                     view, demands, nodes, dev_plan)
    assert bad[0].problems == (f"a GPU replica runs on gpu-other, not its group {gpu_group}",)
    assert set(bad[1].problems) == {"a replica runs on the head",
                                    f"a CPU replica runs on GPU group {gpu_group}"}
    missing = placements(_snapshot({}), view, demands, nodes, dev_plan)
    assert [p.node_types for p in missing] == [(), ()]


def test_the_serve_copy_changes_only_proxy_http_and_with_the_load_step_the_delays() -> None:
    config = {"proxy_location": "EveryNode", "http_options": {"host": "0.0.0.0", "port": 8000},
              "applications": [{"name": "a", "deployments": [
                  {"name": "D", "autoscaling_config": {"min_replicas": 1, "max_replicas": 2,
                                                       "upscale_delay_s": 30.0}},
                  {"name": "F", "num_replicas": 1}]}]}
    plain = rehearsal_serve_config(config, 18123, "HAProxy")
    assert plain.document["proxy_location"] == "HeadOnly"
    assert plain.document["http_options"] == {"host": "127.0.0.1", "port": 18123}
    assert plain.document["applications"] == config["applications"]
    assert config["proxy_location"] == "EveryNode"  # the stack's config is not touched
    assert any("HAProxy on the head only" in d and "(cluster: HAProxy on every node, "
               "proxy_location EveryNode)" in d for d in plain.differences)
    assert any("0.0.0.0:8000" in d for d in plain.differences)
    quick = rehearsal_serve_config(config, 18123, "HAProxy", short_delays=True)
    scaling = quick.document["applications"][0]["deployments"][0]["autoscaling_config"]
    assert (scaling["upscale_delay_s"], scaling["downscale_delay_s"]) == (5.0, 15.0)
    assert "autoscaling_config" not in quick.document["applications"][0]["deployments"][1]
    assert any("a.D" in d and "downscale_delay_s" in d for d in quick.differences)


def test_the_old_render_translates_to_a_gpu_type_without_its_accelerator_resource() -> None:
    target = file_target(FIXTURE)
    gpu = next(n for n in target.node_types if n.resources.get("GPU"))
    assert gpu.name.startswith("gpu-") and gpu.min_workers == 0
    assert not any(k.startswith("accelerator_type:") for k in gpu.resources)
    config = fake_cluster_config(target, "127.0.0.1:6399", idle_timeout_s=20)
    assert config["head_node_type"] == FAKE_HEAD_NODE_TYPE
    assert FAKE_HEAD_NODE_TYPE in config["available_node_types"]
    assert config["provider"]["type"] == "external"
    assert config["provider"]["gcs_address"] == "127.0.0.1:6399"
    assert config["provider"]["disable_node_updaters"] is True
    assert config["idle_timeout_minutes"] == pytest.approx(20 / 60)
    # Everything else is Ray's translation, untouched.
    untouched = {k: v for k, v in config["available_node_types"].items()
                 if k != FAKE_HEAD_NODE_TYPE}
    assert untouched == {k: v for k, v in target.autoscaling["available_node_types"].items()
                         if k != "headgroup"}


def test_a_document_that_is_not_a_rayservice_is_refused_by_field() -> None:
    with pytest.raises(RayServiceError, match="not RayService"):
        target_from_rayservice({"kind": "RayCluster"}, "x.yaml")
    with pytest.raises(RayServiceError, match=r"spec\.rayClusterConfig is missing"):
        target_from_rayservice({"kind": "RayService", "spec": {}}, "x.yaml")


def test_head_argv_and_environment_keep_the_rehearsal_private(tmp_path: Path) -> None:
    ports = RehearsalPorts(LocalPorts(http=6, gcs=1, dashboard=2, metrics=4), client=3,
                           dashboard_agent=5)
    argv = head_argv(ports, tmp_path, tmp_path / "c.json",
                     {"CPU": 0.0, "memory": 2.0 * 1024**3, "custom": 1.0})
    assert "--num-cpus=0" in argv and f"--memory={2 * 1024**3}" in argv
    assert "--port=1" in argv and "--dashboard-port=2" in argv
    assert "--ray-client-server-port=3" in argv and "--metrics-export-port=4" in argv
    assert "--dashboard-agent-listen-port=5" in argv
    assert "--node-ip-address=127.0.0.1" in argv and "--dashboard-host=127.0.0.1" in argv
    assert f"--temp-dir={tmp_path}" in argv and '--resources={"custom": 1.0}' in argv
    env = head_environment({"RAY_ADDRESS": "elsewhere:1", "PATH": "/bin"}, tmp_path, "tok", {})
    assert "RAY_ADDRESS" not in env and env["RAY_AUTH_TOKEN"] == "tok"
    assert env["RAY_enable_autoscaler_v2"] == "1" and env["RAY_FAKE_CLUSTER"] == "1"
    assert env["PYTHONPATH"].split(":")[0] == str(REPO_ROOT)


def test_load_concurrency_targets_every_scalable_deployments_max() -> None:
    applications = load_stack_config("dev", STACKS_DIR).applications
    concurrency = load_concurrency(applications)
    for spec in applications:
        scalable = [d for d in spec.deployments if d.autoscaling is not None
                    and d.autoscaling.max_replicas > d.autoscaling.min_replicas]
        assert (spec.name in concurrency) == bool(scalable)
        for dep in scalable:
            assert dep.autoscaling is not None
            assert concurrency[spec.name] >= (dep.autoscaling.max_replicas
                                              * dep.autoscaling.target_ongoing_requests)


def test_demands_of_the_old_render_include_the_accelerator_type() -> None:
    target = file_target(FIXTURE)
    demands = demands_of_config(target.serve_config, lambda a, d: 1)
    classifier = next(d for d in demands if d.deployment == "TileClassifier")
    assert classifier.resources["accelerator_type:L4"] == pytest.approx(0.001)


def test_autoscaler_view_parses_the_probe_line() -> None:
    line = json.dumps({"at": 1.0, "nodes": [["n1", "cpu"], ["n2", "cpu"]],
                       "pending": {GPU: 1}, "failed": [],
                       "demand": [[{"CPU": 1, "GPU": 0.5}, 2]]})
    view = AutoscalerView.parse(line)
    assert view.nodes_per_type() == {"cpu": 2} and view.node_type_of("n2") == "cpu"
    assert view.pending == {GPU: 1} and view.demand == (({"CPU": 1.0, "GPU": 0.5}, 2),)


# The CLI: invalid input exits 2 before anything starts; --help documents the exit codes.

def _cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["rehearse", *args])


def test_rehearse_help_names_the_load_step_and_exit_codes() -> None:
    result = _cli("--help")
    assert result.exit_code == 0
    assert "--load-step" in result.stdout and "--rayservice" in result.stdout
    assert "Exit codes: 0" in result.stdout and "2 invalid stack" in result.stdout


def test_rehearse_of_an_unknown_stack_exits_2() -> None:
    result = _cli("--stack", "nope")
    assert result.exit_code == 2
    assert "no stack 'nope'" in result.stderr


def test_rehearse_of_an_invalid_stack_exits_2_naming_the_field(tmp_path: Path) -> None:
    source = stack_file("dev", STACKS_DIR).read_text()
    assert "num_cpus:" in source
    (tmp_path / "Pulumi.typo.yaml").write_text(source.replace("num_cpus:", "num_cpu:", 1))
    result = _cli("--stack", "typo", "--stacks-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown field 'num_cpu'" in result.stderr


@pytest.mark.parametrize("content", ["kind: ConfigMap\n", "not: [valid"])
def test_rehearse_of_a_file_that_is_no_rayservice_exits_2(tmp_path: Path, content: str) -> None:
    manifest = tmp_path / "rs.yaml"
    manifest.write_text(content)
    result = _cli("--stack", "dev", "--rayservice", str(manifest))
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    expected = ("expected one RayService document, found 0" if content.startswith("kind")
                else "not YAML")
    assert expected in result.stderr



def test_placements_flag_a_replica_outside_its_label_selector_and_the_message_names_labels(
        dev_plan: CapacityPlan) -> None:
    """Two CPU-only groups: only the selector tells them apart, and only the selector check
    catches a replica on the wrong one."""
    selector = {WORKER_GROUP_LABEL: "cpu"}
    nodes = (NODES[0], NodeType("cpu", {"CPU": 2.0}, 1, 3, worker_group_node_labels("cpu")),
             NodeType("cpu-other", {"CPU": 2.0}, 0, 1, worker_group_node_labels("cpu-other")))
    view = AutoscalerView(at=0.0, nodes=(("c", "cpu"), ("x", "cpu-other")))
    demands = [ReplicaDemand("embeddings", "Embedder", {"CPU": 1.0}, 2, selector)]
    placed = placements(_snapshot({("embeddings", "Embedder"): ["c", "x"]}),
                        view, demands, nodes, dev_plan)
    assert placed[0].problems == (
        "a replica runs on cpu-other, which its label selector "
        "{servestack.io/worker-group: cpu} rules out",)
    message = infeasible_message([{"CPU": 1.0}], demands, nodes[:1] + nodes[2:])
    assert "label selector: {servestack.io/worker-group: cpu}" in message
    assert ("cpu-other {CPU: 2} lacks nothing, and its labels "
            "{servestack.io/worker-group: cpu-other} do not match") in message
