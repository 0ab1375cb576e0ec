"""An app from a team's own package serves locally through `servestack serve`, exactly as a
user runs it: examples/team-app installed in the venv (`make install`), registered by its
entry point, named in a stack file, deployed on a private head, answering over HTTP."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.infra.test_app_registry import FIXTURE
from tests.servestack.local.private_cli import PrivateCli, private_cli

pytestmark = pytest.mark.ray

STACK = "team-app"


@pytest.fixture(scope="module")
def served() -> Iterator[PrivateCli]:
    with private_cli("sst-team-") as cli:
        stacks = cli.workdir / "stacks"
        stacks.mkdir()
        shutil.copy(FIXTURE, stacks / f"Pulumi.{STACK}.yaml")
        result = cli.servestack("serve", "--stack", STACK, "--stacks-dir", str(stacks),
                                "--timeout", "300", timeout=420)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "/greet" in result.stdout
        yield cli


def post(cli: PrivateCli, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{cli.ports.http}/greet", data=body, method="POST",
        headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_team_app_answers_with_the_stacks_settings(served: PrivateCli) -> None:
    status, body = post(served, json.dumps({"names": ["Ada", "Grace"]}).encode())
    assert status == 200, body
    assert body == {"greetings": ["welcome, Ada", "welcome, Grace"]}


def test_the_team_app_keeps_the_error_contract(served: PrivateCli) -> None:
    status, body = post(served, b'{"names": [')
    assert status == 400 and body["error"]["code"] == "bad_json", body  # type: ignore[index]
    status, body = post(served, json.dumps({"names": []}).encode())
    assert status == 422 and body["error"]["code"] == "invalid_request", body  # type: ignore[index]


def test_status_lists_the_team_app_running(served: PrivateCli) -> None:
    result = served.servestack("status")
    assert result.returncode == 0, result.stderr
    assert "greeter" in result.stdout and "RUNNING" in result.stdout

