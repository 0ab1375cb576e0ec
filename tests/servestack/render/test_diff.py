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
from scratch_repo import committed_copy, git
from typer.testing import CliRunner

from infra.capacity import plan_capacity
from infra.config import REPO_ROOT, parse_stack_config
from infra.cost import estimate_cost, money, signed_money
from infra.stack_file import read_stack_file
from servestack.cli import app
from servestack.diffing.capacity_delta import capacity_delta
from servestack.diffing.fields import FieldChange, field_changes
from servestack.diffing.rollout import rayservice_change, serve_config_changes

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
    assert rayservice_row.endswith(
        f"`spec.rayClusterConfig.workerGroupSpecs[{GPU_GROUP}].maxReplicas`: `{pods[0]}` → "
        f"`{pods[1]}`<br>`spec.serveConfigV2` (Serve config above) |")
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
    assert "- Upgrade: none extra (in place; no second Ray cluster)." in report
    worktrees = git(repo, "worktree", "list")
    assert len(worktrees.strip().splitlines()) == 1  # the base worktree is gone again


def _plan_cost(stacks: Path) -> dict[str, Any]:
    from servestack.cli import commands  # noqa: F401  (registers the commands)

    result = CliRunner().invoke(app, ["plan", "--stack", "prod", "--json",
                                      "--stacks-dir", str(stacks)])
    assert result.exit_code == 0, result.output
    cost = json.loads(result.stdout)["cost"]
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
    assert (f"`NewCluster` runs a second Ray cluster beside this one for about "
            f"{upgrade['hours']:g} h (`cost.upgrade_hours`") in text
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
