"""`pulumi up --stack local` on kind, a request through the Serve Service, `pulumi destroy`.

Needs a reachable Docker engine, kind, kubectl and the Pulumi CLI; skips (naming what is
missing) otherwise. The project is copied to a temporary directory first, because
`pulumi stack init` writes an encryption salt into the stack file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.config import RAY_VERSION, REPO_ROOT
from infra.stack_file import load_stack_config

pytestmark = pytest.mark.e2e
STACK = "local"
LOCAL_PORT = 18000


def missing_tool() -> str | None:
    for tool in ("docker", "kind", "kubectl", "pulumi"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False)
    if info.returncode != 0:
        return "the Docker engine is not reachable (`docker info` failed)"
    return None


def sh(*args: str, cwd: Path, env: dict[str, str], timeout: float = 1800) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_image(env: dict[str, str]) -> None:
    if not (REPO_ROOT / "models" / "tile-classifier-v1.pt").is_file():
        sh(str(Path(sys.executable).parent / "servestack"), "model", "build", cwd=REPO_ROOT,
           env=env)
    reference = load_stack_config(STACK).image.reference(gpu=False)
    sh("docker", "build", "--build-arg", f"RAY_VERSION={RAY_VERSION}", "--build-arg",
       "FLAVOUR=cpu", "-t", reference, ".", cwd=REPO_ROOT, env=env)


def project_copy(root: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", ".venv-tools", "*_cache", "__pycache__",
                                    "*.egg-info", "models")
    copy = root / "project"
    shutil.copytree(REPO_ROOT, copy, ignore=ignore)
    (copy / ".venv").symlink_to(REPO_ROOT / ".venv")
    return copy


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = missing_tool()
    if reason:
        pytest.skip(f"kind end-to-end test needs docker, kind, kubectl and pulumi: {reason}")
    root = tmp_path_factory.mktemp("kind-e2e")
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{root}",
           "PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_SKIP_UPDATE_CHECK": "true",
           "HF_HUB_OFFLINE": "1"}
    build_image(env)
    project = project_copy(root)
    sh("pulumi", "stack", "select", "--create", STACK, "--secrets-provider", "passphrase",
       cwd=project, env=env)
    try:
        sh("pulumi", "up", "--yes", "--skip-preview", "--stack", STACK, cwd=project, env=env,
           timeout=3600)
        outputs = json.loads(sh("pulumi", "stack", "output", "--json", "--show-secrets",
                                "--stack", STACK, cwd=project, env=env))
        kubeconfig = root / "kubeconfig"
        kubeconfig.write_text(outputs["kubeconfig"])
        forward = subprocess.Popen(
            ["kubectl", "--kubeconfig", str(kubeconfig), "-n", outputs["namespace"],
             "port-forward", f"svc/{outputs['serveService']}", f"{LOCAL_PORT}:8000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(LOCAL_PORT, time.monotonic() + 120)
            yield outputs
        finally:
            forward.terminate()
            forward.wait(timeout=30)
    finally:
        sh("pulumi", "destroy", "--yes", "--skip-preview", "--stack", STACK, cwd=project,
           env=env, timeout=1800)
        sh("pulumi", "stack", "rm", "--yes", "--force", STACK, cwd=project, env=env)


def test_embeddings_answer_through_the_serve_service(deployed: dict[str, Any]) -> None:
    response = requests.post(f"http://127.0.0.1:{LOCAL_PORT}/embed",
                             json={"texts": ["ray serve on kind"]}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dim"] == 384 and len(body["embeddings"][0]) == 384


def test_malformed_requests_get_a_4xx_json_answer(deployed: dict[str, Any]) -> None:
    response = requests.post(f"http://127.0.0.1:{LOCAL_PORT}/embed", data=b"{not json",
                             headers={"content-type": "application/json"}, timeout=60)
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")
