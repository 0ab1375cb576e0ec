"""`servestack rehearse` end to end: a fake multi-node Ray, Ray's autoscaler v2, the stack's
Serve config deployed through the dashboard REST API. In CI: it is the only test that runs
Ray's scheduler and autoscaler on exactly what we render.

Measured here (2 cores, shared): dev with the load step ~3 min, prod and staging ~1 min
each, the old render ~50 s, so about 6 min of CI. The load step rides on the dev rehearsal
(one cluster start instead of two) and is bounded: load stops as soon as every group reached
its plan max (at most 90 s), scale-down is watched for at most 180 s."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.capacity import plan_capacity
from infra.config import REPO_ROOT
from infra.stack_file import load_stack_config
from servestack.rehearse.translation import FAKE_HEAD_NODE_TYPE

pytestmark = [pytest.mark.rehearsal, pytest.mark.ray, pytest.mark.timeout(1200)]
GPU_GROUP = "gpu-nvidia-com-gpu-l4"

FIXTURE = (REPO_ROOT / "tests" / "fixtures"
           / "rayservice-dev-gpu-group-without-accelerator-type.yaml")


@pytest.fixture(scope="module")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The classifier's default checkpoint, which the image ships, built by the real builder."""
    from apps.classifier.model_store import default_checkpoint_name
    from apps.classifier.training import build_checkpoint

    store = tmp_path_factory.mktemp("models")
    build_checkpoint(store / default_checkpoint_name(), seed=0)
    return store


def rehearse(model_store: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "SERVESTACK_MODEL_STORE": str(model_store), "COLUMNS": "200"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "from servestack.cli import main; main()", "rehearse", *args],
        env=env, capture_output=True, text=True, timeout=1100, check=False, cwd=REPO_ROOT)
    elapsed = time.monotonic() - started
    print(f"rehearse {' '.join(args)}: exit {result.returncode} in {elapsed:.0f} s")
    return result, elapsed


def assert_no_leftovers(output: str) -> None:
    """The temp dir named in the progress line is gone, and no process names it (HAProxy
    included: its config lives there, see assert_served_through_haproxy_across_nodes)."""
    import psutil

    marker = next((w for w in output.split() if w.startswith("/tmp/ssr-")), None)
    assert marker is not None, output
    marker = marker.rstrip(",")
    assert not Path(marker).exists()
    assert not [p for p in psutil.process_iter(["cmdline"])
                if any(marker in part for part in p.info["cmdline"] or [])]


def table_rows(out: str, title: str) -> list[list[str]]:
    """The cells of every row of the report table whose title starts with `title`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    rows = []
    for line in lines[start + 4:]:  # title, top border, header, header rule
        if line.startswith("└"):
            break
        rows.append([cell.strip() for cell in line.split("│")[1:-1]])
    return rows


def assert_served_through_haproxy_across_nodes(out: str, err: str, stack: str) -> None:
    """The stack's ingress (HAProxy, serve.haproxy's default) on the head sent requests to
    ingress replicas that Serve places on fake worker nodes: HAProxy's own statistics (its
    admin socket under the rehearsal's temp dir) per backend server, matched to the replica's
    node. The temp dir holding HAProxy's files is what assert_no_leftovers checks."""
    temp_dir = next(w for w in err.split() if w.startswith("/tmp/ssr-")).rstrip(",")
    assert f"HAProxy's files in {temp_dir}/hap" in out, out
    rows = table_rows(out, "Ingress: HAProxy on the head → replicas (HAProxy's statistics)")
    served = {(app, node_type) for app, _dep, _replica, node_type, _status, requests in rows
              if int(requests) > 0}
    assert {app for app, _ in served} == {a.name for a in load_stack_config(stack).applications}
    assert all(node_type not in (FAKE_HEAD_NODE_TYPE, "") for _, node_type in served), out


def gpu_nodes_over_time(out: str) -> list[int]:
    """The timeline's `nodes <GPU group>` column, top to bottom."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "t (s)" in line)
    column = [c.strip() for c in lines[header].split("┃")].index(f"nodes {GPU_GROUP}")
    counts = []
    for line in lines[header + 1:]:
        if line.startswith("└"):
            break
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > column and cells[column]:
            counts.append(int(cells[column].split()[0]))
    return counts


def test_dev_rehearsal_puts_the_classifier_on_a_gpu_node_from_zero_and_scales_nodes_both_ways(
        model_store: Path) -> None:
    result, _ = rehearse(model_store, "--stack", "dev", "--load-step", "--load-seconds", "90",
                         "--settle-seconds", "180")
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    out, err = result.stdout, result.stderr
    for app in ("classifier", "embeddings", "search"):
        assert any(line.startswith(f"│ {app} ") and "RUNNING" in line
                   for line in out.splitlines()), out
    # From zero: no GPU node until the classifier's first request, then one on its group.
    # (A label selector on the classifier would launch one at deploy: Serve builds the app on
    # its deployments' common selector.)
    assert "nodes cpux1, ray.head.defaultx1" in err and f"{GPU_GROUP}x1" in err, err
    before_request = err[:err.index("one example request per app sent")]
    assert GPU_GROUP not in before_request, err
    row = next(line for line in out.splitlines() if "│ TileClassifier │" in line)
    assert f"{GPU_GROUP}x" in row and "│ ok" in row, out
    # The load step: the autoscaler added GPU nodes and removed them once the load stopped.
    counts = gpu_nodes_over_time(out)
    peak = max(counts)
    assert peak >= 2, counts
    assert counts[-1] < peak, counts
    assert_served_through_haproxy_across_nodes(out, err, "dev")
    assert_no_leftovers(err)


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_rehearsal_runs_every_app_at_the_plans_minimum(model_store: Path, stack: str) -> None:
    """Every app RUNNING, every replica on its plan group (the report's checks: CPU replicas
    never on a GPU node, as they were in prod before the worker-group labels, which made the
    autoscaler launch a second GPU node) and every group at exactly the plan's minimum."""
    plan = plan_capacity(load_stack_config(stack))
    result, _ = rehearse(model_store, "--stack", stack)
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    assert "FAIL" not in result.stdout, result.stdout
    groups = {g.name: g for g in plan.worker_groups}
    # Nodes per group: `group │ resources │ plan min │ initial │ max │ nodes now │ check`.
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines()
            if any(line.startswith(f"│ {name} ") for name in groups)]
    assert {row[0]: (row[2], row[5]) for row in rows if len(row) == 7} == {
        name: (str(g.min_pods), str(g.min_pods)) for name, g in groups.items()}, result.stdout
    assert_served_through_haproxy_across_nodes(result.stdout, result.stderr, stack)
    assert_no_leftovers(result.stderr)


def test_a_gpu_group_without_its_accelerator_type_fails_plainly_and_quickly(
        model_store: Path) -> None:
    result, elapsed = rehearse(model_store, "--stack", "dev", "--rayservice", str(FIXTURE))
    assert result.returncode == 1, result.stderr[-4000:]
    err = result.stderr
    assert "Traceback" not in err
    for fragment in ("application 'classifier', deployment 'TileClassifier'",
                     "accelerator_type:L4: 0.001", "GPU: 0.5",
                     "gpu-nvidia-com-gpu-l4", "lacks accelerator_type:L4"):
        assert fragment in err, err
    assert elapsed < 600
    assert_no_leftovers(err)
