"""`servestack rehearse --upgrade`: the incremental upgrade's steps on the fake multi-node Ray.

The stack (tests/fixtures/upgrade-rehearsal.yaml) is small enough for two cores: one CPU
group, the embeddings app, 4 Embedders at max, 2 per pod. Measured here: about 3 min."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import REPO_ROOT
from infra.stack_file import load_stack
from infra.upgrade_plan import serve_replicas_at, upgrade_plan
from servestack.rehearse.upgrade import (
    NEW_SUFFIX,
    NotIncrementalError,
    phase_document,
    phases,
    planned_pods,
)

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "upgrade-rehearsal.yaml"
STACK = "upgrade"


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stacks")
    shutil.copy(FIXTURE, folder / f"Pulumi.{STACK}.yaml")
    return folder


def test_the_phases_follow_kuberays_loop_and_fix_each_generations_replicas(
    stacks: Path,
) -> None:
    valid = load_stack(STACK, stacks)
    upgrade = upgrade_plan(valid.stack, valid.plan)
    walk = phases(upgrade)
    surge = upgrade.max_surge_percent
    assert surge is not None and 0 < surge < 100
    assert [(p.old_capacity, p.new_capacity) for p in walk] == [
        (100, 0), (100, surge), (100 - surge, surge), (100 - surge, 100), (0, 100)]
    document = {"applications": [{"name": "embeddings", "route_prefix": "/embed",
                                  "deployments": [{"name": "Embedder",
                                                   "autoscaling_config": {"max_replicas": 4}}]}]}
    both = phase_document(document, walk[1], {("embeddings", "Embedder"): 4})
    old, new = both["applications"]
    assert (old["name"], old["route_prefix"]) == ("embeddings", "/embed")
    assert (new["name"], new["route_prefix"]) == ("embeddings" + NEW_SUFFIX, "/next/embed")
    assert old["deployments"][0] == {"name": "Embedder", "autoscaling_config": None,
                                     "num_replicas": 4}
    assert new["deployments"][0]["num_replicas"] == serve_replicas_at(4, surge)
    assert [a["name"] for a in phase_document(document, walk[-1], {("embeddings", "Embedder"):
                                                                   4})["applications"]] == [
        "embeddings" + NEW_SUFFIX]
    assert planned_pods(valid.plan, walk[1]) == {"cpu": 3}  # 4 + 2 replicas, 2 per pod


def test_a_strategy_without_steps_has_nothing_to_rehearse() -> None:
    valid = load_stack("dev")
    with pytest.raises(NotIncrementalError, match="strategy is NewCluster"):
        phases(upgrade_plan(valid.stack, valid.plan))


@pytest.mark.ray
@pytest.mark.rehearsal
@pytest.mark.timeout(900)
def test_the_upgrade_rehearsal_fails_no_request_and_peaks_as_planned(stacks: Path) -> None:
    valid = load_stack(STACK, stacks)
    walk = phases(upgrade_plan(valid.stack, valid.plan))
    peak = max(planned_pods(valid.plan, phase)["cpu"] for phase in walk)
    result = subprocess.run(
        [sys.executable, "-c", "from servestack.cli import main; main()", "rehearse",
         "--stack", STACK, "--stacks-dir", str(stacks), "--upgrade", "--timeout", "400"],
        env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=850,
        check=False, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    out = result.stdout
    lines = out.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("Peak nodes per group"))
    peaks = next(line.split() for line in lines[title:] if line.startswith("cpu "))
    assert peaks[:3] == ["cpu", str(peak), str(peak)], out
    assert int(peaks[3]) >= 1 and int(peaks[4]) >= 1, out  # nodes launched and released
    sent = next(line for line in out.splitlines() if line.startswith("steady load:"))
    assert sent.endswith(", 0 failed (anything but a 2xx, or no answer)"), sent
    assert int(sent.split()[2]) > 0, sent
    assert "one Ray for both clusters" in out


def test_rehearsing_the_upgrade_of_a_new_cluster_stack_exits_2_before_any_ray() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from servestack.cli import main; main()", "rehearse",
         "--stack", "dev", "--upgrade"],
        env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=300,
        check=False, cwd=REPO_ROOT)
    assert result.returncode == 2, result.stderr
    assert "--upgrade rehearses NewClusterWithIncrementalUpgrade's steps" in result.stderr
    assert "fake cluster up" not in result.stderr
