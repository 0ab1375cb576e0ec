"""Ray token authentication on every RayService, with a token only Pulumi and a Secret hold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infra.pod_preview import RAYSERVICE_TYPE
from infra.rayservice import AUTH_TOKEN_KEY, AUTH_TOKEN_LENGTH, RAYSERVICE_COMPONENT
from infra.stack_file import available_stacks, stack_file
from servestack.offline import ProgramRun, run_stack_file

STACKS = available_stacks()
SECRET = "kubernetes:core/v1:Secret"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"

Runs = Callable[[str], ProgramRun]


@pytest.mark.parametrize("stack", STACKS)
def test_the_rayservice_turns_on_token_auth_with_our_secret(
    stack: str, checked_stack_run: Runs,
) -> None:
    run = checked_stack_run(stack)
    rayservice = run.one(RAYSERVICE_TYPE)
    auth = rayservice.inputs["spec"]["rayClusterConfig"]["authOptions"]
    name = rayservice.inputs["metadata"]["name"]
    assert auth == {"mode": "token", "secretName": f"{name}-ray-auth"}
    (secret,) = [s for s in run.of_type(SECRET)
                 if s.inputs["metadata"]["name"] == auth["secretName"]]
    assert secret.inputs["metadata"]["namespace"] == rayservice.inputs["metadata"]["namespace"]
    assert list(secret.inputs["stringData"]) == [AUTH_TOKEN_KEY]  # the key KubeRay reads
    assert "stringData" in secret.secret_inputs
    assert secret.urn in rayservice.options.depends_on  # the Secret exists before the cluster


@pytest.mark.parametrize("stack", STACKS)
def test_the_token_is_generated_by_pulumi_inside_the_rayservice_component(
    stack: str, checked_stack_run: Runs
) -> None:
    run = checked_stack_run(stack)
    component = run.one(RAYSERVICE_COMPONENT)
    (token,) = [r for r in run.of_type(RANDOM_PASSWORD) if r.parent == component.urn]
    assert token.inputs["length"] == AUTH_TOKEN_LENGTH
    assert token.inputs["special"] is False  # survives env vars and HTTP headers unquoted


def test_turning_auth_off_removes_the_token_and_the_options(tmp_path: Path) -> None:
    document = yaml.safe_load(stack_file("local").read_text())
    document["config"]["servestack:security"] = {"ray_token_auth": False}
    path = tmp_path / "Pulumi.local.yaml"
    path.write_text(yaml.safe_dump(document))
    run = run_stack_file(path).check()
    assert "authOptions" not in run.one(RAYSERVICE_TYPE).inputs["spec"]["rayClusterConfig"]
    assert run.of_type(RANDOM_PASSWORD) == []
    assert [s for s in run.of_type(SECRET) if s.name.endswith("ray-auth")] == []
