"""`servestack rehearse` end to end: a fake multi-node Ray, Ray's autoscaler v2, the stack's
Serve config deployed through the dashboard REST API. Slow (minutes each) but in CI: it is
the only test that runs Ray's scheduler and autoscaler on exactly what we render."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.config import REPO_ROOT

pytestmark = [pytest.mark.rehearsal, pytest.mark.ray, pytest.mark.timeout(1200)]

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
    """The temp dir named in the progress line is gone, and no process names it."""
    import psutil

    marker = next((w for w in output.split() if w.startswith("/tmp/ssr-")), None)
    assert marker is not None, output
    marker = marker.rstrip(",")
    assert not Path(marker).exists()
    assert not [p for p in psutil.process_iter(["cmdline"])
                if any(marker in part for part in p.info["cmdline"] or [])]


def test_dev_rehearsal_runs_every_app_and_puts_the_classifier_on_a_gpu_node_from_zero(
        model_store: Path) -> None:
    result, _ = rehearse(model_store, "--stack", "dev")
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    out = result.stdout
    assert "RUNNING" in out
    row = next(line for line in out.splitlines() if "TileClassifier" in line)
    assert "gpu-nvidia-com-gpu-l4x" in row and "ok" in row, out
    assert_no_leftovers(result.stderr)


def test_prod_rehearsal_runs_every_app_at_the_plans_minimum(model_store: Path) -> None:
    result, _ = rehearse(model_store, "--stack", "prod")
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    assert "FAIL" not in result.stdout, result.stdout
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
