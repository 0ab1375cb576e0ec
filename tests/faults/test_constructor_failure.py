"""A deployment whose constructor fails: `servestack serve` says why and exits 1; the
other apps of the stack keep serving.

Runs the real CLI against a stack file in tmp_path (`--stacks-dir`) on free ports, so its
Ray head is private to this test and `servestack stop` ends exactly that head.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from apps.catalog import CATALOG
from infra.config import STACKS_DIR
from infra.stack_file import read_stack_file
from servestack.local.free_ports import free_port
from tests.faults.conftest import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.faults, pytest.mark.timeout(480)]

MISSING = "/mnt/models/servestack-tile-classifier-missing.pt"  # allowed root, no file
ONE_REPLICA = {"autoscaling": {"min_replicas": 1, "max_replicas": 1},
               "resources": {"num_cpus": 0.5}}


def _stack_file(directory: Path) -> Path:
    """The local stack with two apps; the classifier points at a checkpoint that is not there."""
    raw = read_stack_file(STACKS_DIR / "Pulumi.local.yaml")
    raw["apps"] = {
        "embeddings": {"deployments": {"Embedder": ONE_REPLICA}},
        "classifier": {"deployments": {"TileClassifier": {
            **ONE_REPLICA, "user_config": {"checkpoint_uri": f"file://{MISSING}"},
        }}},
    }
    path = directory / "Pulumi.faults.yaml"
    document = {"config": {f"servestack:{key}": value for key, value in raw.items()}}
    path.write_text(yaml.safe_dump(document, sort_keys=True))
    return path


def _servestack(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    servestack = Path(sys.executable).with_name("servestack")  # the installed entry point
    return subprocess.run([str(servestack), *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.fixture(scope="module")
def ports() -> Iterator[dict[str, int]]:
    chosen = {"ray": free_port(), "dashboard": free_port(), "http": free_port(),
              "metrics": free_port()}
    yield chosen
    stopped = _servestack("stop", "--ray-port", str(chosen["ray"]),
                          "--dashboard-port", str(chosen["dashboard"]), timeout_s=120)
    assert stopped.returncode == 0, stopped.stderr


def test_failing_constructor_exits_nonzero_with_the_reason_and_other_apps_keep_serving(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    _stack_file(tmp_path)
    result = _servestack(
        "serve", "--stack", "faults", "--stacks-dir", str(tmp_path),
        "--ray-port", str(ports["ray"]), "--dashboard-port", str(ports["dashboard"]),
        "--http-port", str(ports["http"]), "--metrics-port", str(ports["metrics"]),
        "--timeout", "300", timeout_s=420,
    )
    output = result.stdout + result.stderr
    print(f"\nservestack serve exited {result.returncode}; last lines:\n"
          + "\n".join(output.strip().splitlines()[-8:]))
    assert result.returncode == 1
    assert "classifier" in output and "DEPLOY_FAILED" in output
    assert MISSING in output, "the constructor's own error (the missing path) is not shown"

    embed_url = f"http://127.0.0.1:{ports['http']}{CATALOG['embeddings'].route_prefix}"

    def embeddings_serves() -> bool:
        response = requests.post(embed_url, json={"texts": ["still here"]}, timeout=30)
        return response.status_code == 200 and len(response.json()["embeddings"][0]) == 384

    waited = wait_until(embeddings_serves, 120)
    print(f"embeddings answered 200 {waited:.1f} s after serve exited")

    status = _servestack("status", "--dashboard-port", str(ports["dashboard"]), timeout_s=60)
    assert status.returncode == 1, "status must report the failed app with a non-zero exit"
    assert "DEPLOY_FAILED" in status.stdout + status.stderr
