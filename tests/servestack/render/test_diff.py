"""`servestack diff`: field-level changes, KubeRay's rollout rule, and the PR report end to end."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from scratch_repo import committed_copy, git, prod_diff
from typer.testing import CliRunner

from infra.capacity import plan_capacity
from infra.config import REPO_ROOT, parse_stack_config
from infra.cost import estimate_cost, money, signed_money
from infra.stack_file import read_stack_file
from infra.upgrade_plan import UpgradePlan
from servestack.cli import app
from servestack.diffing.capacity_delta import capacity_delta
from servestack.diffing.fields import FieldChange, field_changes
from servestack.diffing.report import _rayservice_section
from servestack.diffing.rollout import (
    GROUP_ORDER,
    WORKER_GROUPS,
    rayservice_change,
    serve_config_changes,
    why_new_cluster,
)
from servestack.render import render_stack_file
from servestack.upgrade_summary import pool_rows, step_rows

GPU_GROUP = "gpu-nvidia-com-gpu-l4"


def test_named_lists_match_by_name_so_reordering_is_no_change() -> None:
    old = {"groups": [{"groupName": "cpu", "max": 2}, {"groupName": "gpu", "max": 1}]}
    new = {"groups": [{"groupName": "gpu", "max": 3}, {"groupName": "cpu", "max": 2}]}
    assert field_changes(old, new) == [FieldChange("groups[gpu].max", 1, 3)]
    assert field_changes({"n": 1.0}, {"n": 1}) == []  # the wire does not tell 1 from 1.0
    assert field_changes({"a": [1, 2]}, {"a": [1, 2, 3]}) == [FieldChange("a", [1, 2], [1, 2, 3])]
    assert field_changes({"a": 1}, {}) == [FieldChange("a", 1, None)]


@pytest.fixture(scope="module")
def prod_rayservice(rendered: Path) -> dict[str, Any]:
    document = yaml.safe_load((rendered / "prod" / "kubernetes" / "rayservice.servestack.yaml")
                              .read_text())
    assert isinstance(document, dict)
    return document


def _gpu_group(rayservice: dict[str, Any]) -> dict[str, Any]:
    groups = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return next(g for g in groups if g["groupName"] == GPU_GROUP)


def _with_serve(rayservice: dict[str, Any], change: Any) -> dict[str, Any]:
    document = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    change(document)
    rayservice["spec"]["serveConfigV2"] = yaml.safe_dump(document)
    return rayservice


def test_serve_config_and_replica_bounds_update_in_place(prod_rayservice: dict[str, Any]) -> None:
    new = copy.deepcopy(prod_rayservice)
    _gpu_group(new)["maxReplicas"] += 1
    _with_serve(new, lambda d: d["applications"][0]["deployments"][0].update(
        max_ongoing_requests=99))
    change = rayservice_change("servestack", prod_rayservice, new)
    assert change.rollout == "in place"
    assert [c.path for c in change.replica_changes] == [
        f"spec.rayClusterConfig.workerGroupSpecs[{GPU_GROUP}].maxReplicas"]
    (serve,) = change.serve_changes
    assert (serve.option, serve.new) == ("max_ongoing_requests", 99)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda g: g["template"]["spec"]["containers"][0].update(image="app:2.60.0-py311-gpu2"),
         "template.spec.containers[ray-worker].image"),
        (lambda g: g["rayStartParams"].update({"num-cpus": "8"}), "rayStartParams.num-cpus"),
        (lambda g: g["template"]["spec"]["containers"][0]["resources"]["limits"].update(cpu="9"),
         "template.spec.containers[ray-worker].resources.limits.cpu"),
    ],
)
def test_other_cluster_changes_roll_out_a_new_cluster(
    prod_rayservice: dict[str, Any], edit: Any, field: str
) -> None:
    new = copy.deepcopy(prod_rayservice)
    edit(_gpu_group(new))
    change = rayservice_change("servestack", prod_rayservice, new)
    assert change.rollout == "new cluster"
    assert [c.path for c in change.cluster_changes] == [
        f"spec.rayClusterConfig.workerGroupSpecs[{GPU_GROUP}].{field}"]


def test_metadata_only_changes_keep_the_cluster(prod_rayservice: dict[str, Any]) -> None:
    new = copy.deepcopy(prod_rayservice)
    new["metadata"]["labels"]["team"] = "ml"
    assert rayservice_change("servestack", prod_rayservice, new).rollout == "in place"
    assert rayservice_change("servestack", prod_rayservice, prod_rayservice).rollout == "no change"


def _groups(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return groups


def test_kuberay_ignores_tolerations_so_the_running_cluster_keeps_them(
    prod_rayservice: dict[str, Any],
) -> None:
    """KubeRay 1.7.0 hashes the cluster spec without tolerations (nor replica bounds): no new
    cluster, and no update of the running one either, which the report must say."""
    new = copy.deepcopy(prod_rayservice)
    _gpu_group(new)["template"]["spec"]["tolerations"] = []
    change = rayservice_change("servestack", prod_rayservice, new)
    assert change.rollout == "in place" and not change.cluster_changes
    assert [c.path for c in change.unapplied_changes] == [
        f"{WORKER_GROUPS}[{GPU_GROUP}].template.spec.tolerations"]


def test_a_worker_group_appended_after_the_others_updates_the_running_cluster(
    prod_rayservice: dict[str, Any],
) -> None:
    new = copy.deepcopy(prod_rayservice)
    added = {**copy.deepcopy(_gpu_group(new)), "groupName": "zz-gpu"}
    _groups(new).append(added)
    _gpu_group(new)["maxReplicas"] += 1
    change = rayservice_change("servestack", prod_rayservice, new)
    assert (change.rollout, change.appended_groups) == ("in place", ("zz-gpu",))
    assert change.updates_running_cluster and not change.unapplied_changes  # bounds go along


def test_a_removed_inserted_or_reordered_group_is_a_new_cluster_and_says_why(
    prod_rayservice: dict[str, Any],
) -> None:
    removed = copy.deepcopy(prod_rayservice)
    _groups(removed).remove(_gpu_group(removed))
    change = rayservice_change("servestack", prod_rayservice, removed)
    assert change.rollout == "new cluster"
    (field,) = change.cluster_changes
    assert "removed" in why_new_cluster(field)

    inserted = copy.deepcopy(prod_rayservice)
    _groups(inserted).insert(0, {**copy.deepcopy(_gpu_group(inserted)), "groupName": "a-gpu"})
    change = rayservice_change("servestack", prod_rayservice, inserted)
    assert change.rollout == "new cluster"
    assert [c.path for c in change.cluster_changes] == [f"{WORKER_GROUPS}[a-gpu]"]

    swapped = copy.deepcopy(prod_rayservice)
    _groups(swapped).reverse()
    change = rayservice_change("servestack", prod_rayservice, swapped)
    assert change.rollout == "new cluster"
    assert [c.path for c in change.cluster_changes] == [GROUP_ORDER]


def test_each_new_cluster_field_says_which_stack_edit_it_comes_from(
    prod_rayservice: dict[str, Any],
) -> None:
    new = copy.deepcopy(prod_rayservice)
    container = _gpu_group(new)["template"]["spec"]["containers"][0]
    ingress = next(e for e in container["env"] if e["name"] == "SERVESTACK_INGRESS")
    ingress["value"] = ingress["value"].replace("10.0", "20.0")
    container["image"] = "app:other"
    change = rayservice_change("servestack", prod_rayservice, new)
    reasons = {c.path.rsplit(".", 2)[-2 if c.path.endswith(".value") else -1]: why_new_cluster(c)
               for c in change.cluster_changes}
    assert "serve.ingress" in reasons["env[SERVESTACK_INGRESS]"]
    assert "servestack:image" in reasons["image"]
    section = _rayservice_section(change)
    assert f"  - why: {reasons['image']}" in section


def test_the_report_warns_when_kuberay_keeps_the_old_values(
    prod_rayservice: dict[str, Any],
) -> None:
    new = copy.deepcopy(prod_rayservice)
    _gpu_group(new)["maxReplicas"] += 1
    text = "\n".join(_rayservice_section(rayservice_change("servestack", prod_rayservice, new)))
    assert "does not copy these into the running RayCluster" in text


def test_serve_changes_are_keyed_by_application_and_deployment() -> None:
    old = {"proxy_location": "EveryNode", "applications": [
        {"name": "a", "route_prefix": "/a", "deployments": [{"name": "D", "num_replicas": 1}]},
        {"name": "b", "route_prefix": "/b", "deployments": []},
    ]}
    new = {"proxy_location": "HeadOnly", "applications": [
        {"name": "a", "route_prefix": "/a", "deployments": [
            {"name": "D", "num_replicas": 2}, {"name": "E", "num_replicas": 1}]},
    ]}
    rows = [(c.app, c.deployment, c.option, c.old, c.new) for c in serve_config_changes(old, new)]
    assert rows == [
        ("", "", "proxy_location", "EveryNode", "HeadOnly"),
        ("a", "D", "num_replicas", 1, 2),
        ("a", "E", "(deployment)", None, "present"),
        ("b", "", "(application)", "present", None),
    ]


def test_capacity_delta_names_pools_and_marks_gpu_ones() -> None:
    pool = {"pool": "gpu", "gpus_needed": 2, "nodes_needed": 2, "max_nodes": 4}
    old = {"pools": [pool], "worker_groups": [{"name": "g", "max_pods": 2, "deployments": []}]}
    new = {"pools": [{**pool, "gpus_needed": 3, "nodes_needed": 3}],
           "worker_groups": [{"name": "g", "max_pods": 3, "deployments": [{"app": "x"}]}]}
    delta = capacity_delta(old, new)
    assert delta.groups == (("g", (FieldChange("max_pods", 2, 3),)),)
    (gpu,) = delta.pools
    assert gpu.gpu and gpu.delta("nodes_needed") == 1


def test_a_ref_that_is_not_a_commit_exits_2() -> None:
    from servestack.cli import commands  # noqa: F401

    result = CliRunner().invoke(app, ["diff", "--base", "no-such-ref-anywhere"])
    assert result.exit_code == 2
    assert "is not a commit" in result.output


# --- acceptance: one max_replicas change between two commits --------------------------------


def test_diff_reports_one_max_replicas_change_in_place_with_its_capacity_delta(
    tmp_path: Path,
) -> None:
    """`servestack diff --base HEAD~1` in a repo whose last commit raises the prod classifier's
    max_replicas by 2: exactly that Serve field, "in place", and the GPU capacity delta.
    (Limited to prod and local with --stack to keep the test's two renders short.)"""
    repo = committed_copy(tmp_path / "repo")

    stack_path = repo / "stacks" / "Pulumi.prod.yaml"
    document = yaml.safe_load(stack_path.read_text())
    autoscaling = (document["config"]["servestack:apps"]["classifier"]["deployments"]
                   ["TileClassifier"]["autoscaling"])
    old_max = autoscaling["max_replicas"]
    autoscaling["max_replicas"] = old_max + 2
    stack_path.write_text(yaml.safe_dump(document, sort_keys=False))
    git(repo, "commit", "-qam", "prod: classifier may scale further")

    before = plan_capacity(parse_stack_config("prod", read_stack_file(REPO_ROOT / "stacks" /
                                                                      "Pulumi.prod.yaml")))
    after = plan_capacity(parse_stack_config("prod", read_stack_file(stack_path)))
    pods = (before.group(GPU_GROUP).max_pods, after.group(GPU_GROUP).max_pods)
    gpu_pool = after.group(GPU_GROUP).pool
    nodes = (before.pool(gpu_pool).nodes_needed, after.pool(gpu_pool).nodes_needed)
    assert pods[1] > pods[0], "the change must need more GPU pods for this test to mean much"

    result = subprocess.run(
        [sys.executable, "-c", "from servestack.cli import main; main()", "diff",
         "--base", "HEAD~1",
         "--stack", "prod", "--stack", "local", "--out", "report.md"],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True,
        timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = (repo / "report.md").read_text()
    assert report.startswith("<!-- servestack-diff -->")
    serve_rows = [line for line in report.splitlines() if line.startswith("| `classifier`")
                  or line.startswith("| (all)") or line.startswith("| `embeddings`")
                  or line.startswith("| `search`")]
    assert serve_rows == [
        f"| `classifier` | `TileClassifier` | `autoscaling_config.max_replicas` | `{old_max}` "
        f"| `{old_max + 2}` |"
    ]
    assert re.search(r"^\| `prod` \| \d+ changed \| \*\*in place\*\* \| 1 field\(s\) \|",
                     report, re.MULTILINE)
    (rayservice_row,) = [line for line in report.splitlines()
                         if line.startswith("| changed | `kubernetes:ray.io/v1:RayService`")]
    fields = rayservice_row.rsplit(" | ", 1)[1].removesuffix(" |").split("<br>")
    assert fields[0] == (f"`spec.rayClusterConfig.workerGroupSpecs[{GPU_GROUP}].maxReplicas`: "
                         f"`{pods[0]}` → `{pods[1]}`")
    assert fields[-1] == "`spec.serveConfigV2` (Serve config above)"
    # More replicas at max leave less room for an incremental upgrade's surge: its derived
    # step sizes may change too, outside rayClusterConfig (no new cluster).
    assert all(f.startswith("`spec.upgradeStrategy.clusterUpgradeOptions.") for f in fields[1:-1])
    assert "**RayService `servestack`: in place**" in report
    assert f"| `{GPU_GROUP}` | `max_pods` | `{pods[0]}` | `{pods[1]}` |" in report
    if nodes[0] != nodes[1]:
        assert f"{gpu_pool}: {nodes[1] - nodes[0]:+d} GPU nodes at max" in report
    assert "No change in `local`." in report
    assert "new cluster" not in report
    # The monthly cost at max, before and after, is what `plan --json` says on each side.
    monthly = [_plan_cost(stacks)["per_month"] for stacks in (REPO_ROOT / "stacks",
                                                                repo / "stacks")]
    assert monthly[1]["max"] > monthly[0]["max"]
    change = round(monthly[1]["max"] - monthly[0]["max"], 2)
    assert (f"| at max | {money(monthly[0]['max'])}/month | {money(monthly[1]['max'])}/month | "
            f"{signed_money(change)} |") in report
    assert (f"| at min | {money(monthly[0]['min'])}/month | {money(monthly[1]['min'])}/month | "
            "+$0.00 |") in report
    (summary,) = [line for line in report.splitlines() if line.startswith("| `prod` |")]
    assert f"| {signed_money(change)}/month at max | " in summary
    assert "- Upgrade: none extra (in place; no second Ray cluster)." in report
    assert "**in place**: no second Ray cluster, so no upgrade plan is needed." in report
    worktrees = git(repo, "worktree", "list")
    assert len(worktrees.strip().splitlines()) == 1  # the base worktree is gone again


def test_diff_of_a_new_image_release_shows_the_upgrade_plan_plan_prints(tmp_path: Path) -> None:
    """A new release tag replaces the Ray cluster: the PR comment carries the working tree's
    upgrade steps and each pool's peak, row for row what `plan --json` says."""
    repo = committed_copy(tmp_path / "repo")
    stack_path = repo / "stacks" / "Pulumi.prod.yaml"
    document = yaml.safe_load(stack_path.read_text())
    document["config"]["servestack:image"]["release"] = "r42"
    stack_path.write_text(yaml.safe_dump(document, sort_keys=False))
    git(repo, "commit", "-qam", "prod: release r42")

    report = prod_diff(repo, "HEAD~1")
    assert "**new cluster** (new image)" in report
    upgrade = UpgradePlan.from_output(_plan_json(repo / "stacks")["upgrade"])
    assert upgrade.strategy == "NewClusterWithIncrementalUpgrade" and len(upgrade.steps) > 1
    heading = f"#### Upgrade (`{upgrade.strategy}`)\n"
    section = report.split(heading, 1)[1].split("\n#### ", 1)[0]
    for row in step_rows(upgrade) + pool_rows(upgrade):
        assert "| " + " | ".join(row) + " |" in section
    gpu = next(p for p in upgrade.pools if p.gpu)
    assert gpu.extra_nodes > 0 and gpu.peak_nodes <= gpu.max_nodes
    assert f"{upgrade.peak_extra_gpu_nodes} of them GPU nodes" in section
    assert f"maxSurgePercent {upgrade.max_surge_percent} (derived" in section


def _plan_json(stacks: Path) -> dict[str, Any]:
    from servestack.cli import commands  # noqa: F401  (registers the commands)

    result = CliRunner().invoke(app, ["plan", "--stack", "prod", "--json",
                                      "--stacks-dir", str(stacks)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert isinstance(document, dict)
    return document


def _plan_cost(stacks: Path) -> dict[str, Any]:
    cost = _plan_json(stacks)["cost"]
    assert isinstance(cost, dict)
    return cost


def test_a_new_cluster_rollout_prices_its_upgrade_from_the_working_trees_estimate() -> None:
    from servestack.diffing.cost_delta import CostDelta
    from servestack.diffing.report import _cost_section
    from servestack.diffing.rollout import RayServiceChange

    config = parse_stack_config("prod", read_stack_file(REPO_ROOT / "stacks" / "Pulumi.prod.yaml"))
    estimate = estimate_cost(config, plan_capacity(config)).to_output()
    change = RayServiceChange("servestack", "new cluster", (), (), (), (), "NewCluster")
    text = "\n".join(_cost_section(CostDelta(estimate, estimate), [change]))
    upgrade = estimate["upgrade"]
    assert f"`{upgrade['strategy']}` " in text
    assert "beside this one" in text
    assert f"for about {upgrade['hours']:g} h (the upgrade plan's estimate)" in text
    assert (f"{upgrade['extra_nodes']} more node(s) at max load: peak "
            f"{money(upgrade['peak_per_hour'])}/h ({money(upgrade['extra_per_hour'])}/h more), "
            f"about {money(upgrade['extra_cost'])} for the rollout.") in text
    assert "| at max | " in text and "| +$0.00 |" in text
    unpriced = {**estimate, "per_month": {"min": None, "initial": None, "max": None},
                "unpriced_pools": ["gpu-l4"]}
    text = "\n".join(_cost_section(CostDelta(estimate, unpriced), [change]))
    assert "price unknown for `gpu-l4`, so its totals are unknown" in text
    assert "| price unknown | — |" in text


def test_report_cells_stay_on_one_table_row_and_show_where_long_strings_differ() -> None:
    from servestack.diffing.report import _pair

    assert _pair("a\nb|c", None) == "`a\\nb\\|c` → —"
    long_old = "sum by (deployment) (rate(serve_requests[5m])) " * 3 + ">= 8"
    shown = _pair(long_old, long_old[:-1] + "10")
    assert shown.endswith(">= 8` → `…" + long_old[-21:-1] + "10`")


def test_moving_a_deployment_to_a_new_gpu_pool_shows_both_pools_and_the_net_per_type() -> None:
    """The prod classifier moves from the L4 pool to a new A100 pool: the summary names the
    L4 pool's -N GPU nodes, the new pool's +M, and the net GPUs per accelerator type."""
    from servestack.diffing import DiffResult, StackDiff
    from servestack.diffing.report import markdown

    raw = read_stack_file(REPO_ROOT / "stacks" / "Pulumi.prod.yaml")
    moved = copy.deepcopy(raw)
    l4 = next(p for p in moved["pools"] if p["name"] == "gpu-l4")
    moved["pools"].append({**l4, "name": "gpu-a100", "machine_type": "a2-highgpu-1g",
                           "labels": {"servestack.io/pool": "gpu-a100"}, "min_nodes": 0,
                           "accelerator": {**l4["accelerator"], "cloud_type": "nvidia-tesla-a100",
                                           "ray_type": "A100"}})
    l4["min_nodes"] = 0
    moved["apps"]["classifier"]["deployments"]["TileClassifier"]["resources"][
        "accelerator_type"] = "A100"
    before = plan_capacity(parse_stack_config("prod", raw))
    after = plan_capacity(parse_stack_config("prod", moved))
    old_l4, new_l4, a100 = before.pool("gpu-l4"), after.pool("gpu-l4"), after.pool("gpu-a100")
    assert old_l4.gpus_needed > 0 and new_l4.gpus_needed == 0 and a100.gpus_needed > 0

    delta = capacity_delta(before.to_output(), after.to_output())
    assert {p.pool: p.status for p in delta.pools} == {"gpu-l4": "changed", "gpu-a100": "added"}
    l4_label, a100_label = "nvidia.com/gpu (L4)", "nvidia.com/gpu (A100)"
    assert delta.gpus_by_accelerator() == {a100_label: a100.gpus_needed,
                                           l4_label: -old_l4.gpus_needed}

    report = markdown(DiffResult("main", "0" * 40, (StackDiff("prod", None, None,
                                                              capacity=delta),)))
    (summary,) = [line for line in report.splitlines() if line.startswith("| `prod` |")]
    removed_nodes = new_l4.nodes_needed - old_l4.nodes_needed
    assert removed_nodes < 0
    assert f"gpu-l4: {removed_nodes:+d} GPU nodes at max" in summary
    assert f"gpu-a100 (new): {a100.nodes_needed:+d} GPU nodes at max" in summary
    assert (f"net GPUs at max: {a100_label} {a100.gpus_needed:+d}, "
            f"{l4_label} {-old_l4.gpus_needed:+d}") in summary

    removed = capacity_delta(after.to_output(), before.to_output())
    assert {p.pool: p.status for p in removed.pools} == {"gpu-l4": "changed",
                                                        "gpu-a100": "removed"}
    assert removed.gpus_by_accelerator()[a100_label] == -a100.gpus_needed


def test_a_base_rendered_before_pools_named_their_devices_is_labelled_by_its_groups() -> None:
    old = {"pools": [{"pool": "gpu", "gpus_needed": 2, "nodes_needed": 2}],
           "worker_groups": [{"name": "g", "pool": "gpu",
                              "pod": {"accelerator_resource": "nvidia.com/gpu"}}]}
    delta = capacity_delta(old, {"pools": [], "worker_groups": []})
    assert delta.gpus_by_accelerator() == {"nvidia.com/gpu": -2}


# --- acceptance: app edits stay in serveConfigV2 ----------------------------------------------


def _render_prod(tmp_path: Path, edit: Any) -> dict[str, Any]:
    """The prod RayService rendered from the shipped stack after `edit(config)`."""
    document = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    edit(document["config"])
    stack = tmp_path / "Pulumi.prod.yaml"
    stack.write_text(yaml.safe_dump(document, sort_keys=False))
    render_stack_file(stack, tmp_path / "out", "prod")
    rendered = yaml.safe_load((tmp_path / "out" / "prod" / "kubernetes" /
                               "rayservice.servestack.yaml").read_text())
    assert isinstance(rendered, dict)
    return rendered


def _remove_search(config: dict[str, Any]) -> None:
    del config["servestack:apps"]["search"]


def _move_search(config: dict[str, Any]) -> None:
    config["servestack:apps"]["search"]["route_prefix"] = "/find"


def _retune_embeddings(config: dict[str, Any]) -> None:
    config["servestack:apps"]["embeddings"]["deployments"]["Embedder"]["user_config"] = {
        "max_texts_per_request": 32}


@pytest.mark.parametrize(("edit", "app", "option"), [
    (_remove_search, "search", "(application)"),
    (_move_search, "search", "route_prefix"),
    (_retune_embeddings, "embeddings", "user_config.settings.max_texts_per_request"),
], ids=["remove-app", "route-prefix", "user-config"])
def test_removing_an_app_or_changing_its_route_or_user_config_is_in_place(
    prod_rayservice: dict[str, Any], tmp_path: Path, edit: Any, app: str, option: str,
) -> None:
    """Nothing about an app sits in the pod templates: only serveConfigV2 changes, and the
    worker groups' replica bounds where the capacity plan sized them for the app (removing
    search halves prod's CPU group), which KubeRay 1.7.0 does not compare."""
    change = rayservice_change("servestack", prod_rayservice, _render_prod(tmp_path, edit))
    assert change.rollout == "in place"
    assert (change.cluster_changes, change.muted_changes, change.other_changes) == ((), (), ())
    assert [(c.app, c.option) for c in change.serve_changes] == [(app, option)]
    assert change.unapplied_changes == change.replica_changes
    if option != "(application)":
        assert change.replica_changes == ()


SHIPPED_STACKS = sorted(path.name.split(".")[1]
                        for path in (REPO_ROOT / "stacks").glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_removing_any_app_of_a_shipped_stack_leaves_every_worker_pod_as_it_was(
    stack: str,
) -> None:
    """A pod template that changes replaces the Ray cluster: each group's pod must not
    depend on which apps the stack runs."""
    config = read_stack_file(REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    full = plan_capacity(parse_stack_config(stack, config))
    assert len(config["apps"]) >= 2
    for name in config["apps"]:
        fewer = copy.deepcopy(config)
        del fewer["apps"][name]
        for pool in fewer["pools"]:  # a GPU pool whose last app left may not idle at min
            if pool.get("taints"):
                pool["min_nodes"] = 0
        for group in plan_capacity(parse_stack_config(stack, fewer)).worker_groups:
            kept = full.group(group.name)
            assert (group.pool, group.pod, group.ray) == (kept.pool, kept.pod, kept.ray), name


def test_removing_an_app_from_the_shared_stack_is_in_place(tmp_path: Path) -> None:
    """The case that replaced the cluster while pods were sized from the apps they held."""
    stack = tmp_path / "Pulumi.shared.yaml"
    document = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.shared.yaml").read_text())
    stack.write_text(yaml.safe_dump(document, sort_keys=False))
    rendered = []
    for out in ("before", "after"):  # the second without search
        render_stack_file(stack, tmp_path / out, "shared")
        (manifest,) = (tmp_path / out / "shared" / "kubernetes").glob("rayservice.*.yaml")
        rendered.append(yaml.safe_load(manifest.read_text()))
        document["config"]["servestack:apps"].pop("search", None)
        stack.write_text(yaml.safe_dump(document, sort_keys=False))
    change = rayservice_change(rendered[0]["metadata"]["name"], rendered[0], rendered[1])
    assert change.rollout == "in place"
    assert change.cluster_changes == ()
    assert [(c.app, c.option) for c in change.serve_changes] == [("search", "(application)")]


def test_diff_reports_a_fourth_app_in_place_with_only_serve_config_changed(
    tmp_path: Path,
) -> None:
    """`servestack diff --base HEAD~1` in a repo whose last commit adds a fourth app to prod:
    the team's own `greeter` (examples/team-app, registered by its entry point, as
    `make install` installs it): in place, serveConfigV2 only."""
    repo = committed_copy(tmp_path / "repo")
    stack_path = repo / "stacks" / "Pulumi.prod.yaml"
    document = yaml.safe_load(stack_path.read_text())
    document["config"]["servestack:apps"]["greeter"] = {}
    stack_path.write_text(yaml.safe_dump(document, sort_keys=False))
    git(repo, "commit", "-qam", "prod: a fourth app")

    report = prod_diff(repo, "HEAD~1")
    assert "**RayService `servestack`: in place**" in report
    assert "new cluster" not in report
    assert "| `greeter` | — | `(application)` | — | `present` |" in report
    (rayservice_row,) = [line for line in report.splitlines()
                         if line.startswith("| changed | `kubernetes:ray.io/v1:RayService`")]
    assert rayservice_row.endswith("| `spec.serveConfigV2` (Serve config above) |")
