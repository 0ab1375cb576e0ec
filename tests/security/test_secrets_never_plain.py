"""No secret value ever appears in plain text: not in a rendered file, not in a stack output,
not in a resource input Pulumi would store unencrypted.

Known sentinel values go in through the harness's secret config (the Redis password, the
existing cluster's kubeconfig, the MLflow token of model sources); generated secrets (Ray's
auth token, Grafana's admin password) come back from the offline provider with a known
prefix. Then everything the program produced is searched for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from infra.stack_file import available_stacks, stack_file
from servestack.offline import RANDOM_PLACEHOLDER, ProgramRun, run_stack_file
from servestack.render import render_documents, write_documents

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REDIS_PASSWORD = "sentinel-redis-password-7f3a9c"
KUBE_TOKEN = "sentinel-kube-token-41d2e8"
KUBECONFIG = json.dumps({
    "apiVersion": "v1", "kind": "Config", "current-context": "onprem-admin",
    "clusters": [{"name": "onprem", "cluster": {"server": "https://10.1.2.3:6443"}}],
    "contexts": [{"name": "onprem-admin", "context": {"cluster": "onprem", "user": "admin"}}],
    "users": [{"name": "admin", "user": {"token": KUBE_TOKEN}}],
})
MLFLOW_TOKEN = "sentinel-mlflow-token-93be1d"
SECRETS = {"redisPassword": REDIS_PASSWORD, "kubeconfig": KUBECONFIG}
STACK_SECRETS = {"models-gke": {"mlflowToken": MLFLOW_TOKEN}}
"""Secrets only some stacks read (a stack refuses a secret key it does not know)."""
SENTINELS = (REDIS_PASSWORD, KUBE_TOKEN, MLFLOW_TOKEN, RANDOM_PLACEHOLDER)
STACK_FILES = {**{s: stack_file(s) for s in available_stacks()},
               "onprem-mig": FIXTURES / "onprem-mig.yaml",
               "models-gke": FIXTURES / "models-gke.yaml"}


def leaks(value: Any) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return [sentinel for sentinel in SENTINELS if sentinel in text]


@pytest.fixture(scope="module", params=sorted(STACK_FILES))
def run(request: pytest.FixtureRequest) -> ProgramRun:
    secrets = {**SECRETS, **STACK_SECRETS.get(request.param, {})}
    return run_stack_file(STACK_FILES[request.param], request.param, secrets=secrets).check()


def test_the_program_really_received_the_sentinels(run: ProgramRun) -> None:
    """Otherwise the searches below would pass vacuously."""
    found = {s for r in run.resources for s in leaks(r.inputs)}
    expected = {RANDOM_PLACEHOLDER}  # Ray's auth token, in every stack
    if run.stack in ("prod", "shared"):
        expected.add(REDIS_PASSWORD)  # GCS fault tolerance
    if run.stack in ("onprem-mig", "shared"):
        expected.add(KUBE_TOKEN)  # backend: existing, kubeconfig from the secret
    if run.stack == "models-gke":
        expected.add(MLFLOW_TOKEN)  # model_sources.mlflow_token_secret_key
    assert found == expected


def test_no_rendered_file_holds_a_secret(run: ProgramRun, tmp_path: Path) -> None:
    written = write_documents(render_documents(run), tmp_path / run.stack)
    assert written
    for path in written:
        assert leaks(path.read_text()) == [], path


def test_no_plain_stack_output_holds_a_secret(run: ProgramRun) -> None:
    for key, value in run.outputs.items():
        if leaks(value):
            assert key in run.secret_outputs, key


def test_every_input_holding_a_secret_is_marked_secret(run: ProgramRun) -> None:
    """Pulumi encrypts exactly the values marked secret in its state; nothing else may hold
    one (a plain copy would defeat the encryption)."""
    for resource in run.resources:
        inputs: Mapping[str, Any] = resource.inputs
        for key, value in inputs.items():
            if leaks(value):
                assert key in resource.secret_inputs, f"{resource.type} {resource.name}: {key}"


def test_secrets_reach_kubernetes_only_as_secret_objects(run: ProgramRun) -> None:
    for resource in run.resources:
        if resource.type.startswith("kubernetes:") and leaks(resource.inputs):
            assert resource.type == "kubernetes:core/v1:Secret", resource.name
