"""An app from a team's own package (examples/team-app, installed by `make install`) plans,
renders and passes `check` like a shipped one, and `check` refuses a spec whose code does
not import or build, before anything is deployed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from apps.catalog import app_spec
from infra.config import REPO_ROOT
from infra.stack_file import load_stack_config
from servestack.app_imports import import_path_problems
from servestack.cli import app
from servestack.render import render_stack_file
from tests.infra.kuberay_crd import validate_rayservice
from tests.infra.test_app_registry import FIXTURE, install_fake_distribution

STACK = "team-app"


def _cli() -> None:
    from servestack.cli import commands  # noqa: F401  (registers the commands on `app`)


@pytest.fixture
def stacks_dir(tmp_path: Path) -> Path:
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    shutil.copy(FIXTURE, stacks / f"Pulumi.{STACK}.yaml")
    return stacks


def test_plan_places_the_team_app(stacks_dir: Path) -> None:
    _cli()
    result = CliRunner().invoke(app, ["plan", "--stack", STACK, "--stacks-dir", str(stacks_dir)],
                                env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "greeter" in result.output and "Greeter" in result.output


def test_render_carries_the_team_app_into_serve_config_v2(tmp_path: Path) -> None:
    render_stack_file(FIXTURE, tmp_path, STACK)
    (path,) = (tmp_path / STACK / "kubernetes").glob("rayservice.*.yaml")
    rayservice = yaml.safe_load(path.read_text())
    validate_rayservice(rayservice)
    (entry,) = yaml.safe_load(rayservice["spec"]["serveConfigV2"])["applications"]
    assert (entry["name"], entry["import_path"], entry["route_prefix"]) == (
        "greeter", "team_app.app:app", "/greet")
    (deployment,) = entry["deployments"]
    assert deployment["name"] == "Greeter"
    assert deployment["user_config"]["settings"]["greeting"] == "welcome"


def test_the_team_apps_code_imports_and_builds_as_its_spec_says(stacks_dir: Path) -> None:
    stack = load_stack_config(STACK, stacks_dir)
    assert import_path_problems(stack.applications) == []


GREETER = app_spec("greeter")


@pytest.mark.parametrize(("import_path", "deployment", "field", "words"), [
    ("team_app.ap:app", "Greeter", "import_path", "module 'team_app.ap' does not import"),
    ("team_app.app:ap", "Greeter", "import_path", "has no attribute 'ap'"),
    ("team_app.spec:GREETER", "Greeter", "import_path", "is of type ApplicationSpec, not a Serve"),
    ("team_app.app:app", "Greeter2", "deployments", "binds ['Greeter'], not ['Greeter2']"),
])
def test_code_that_does_not_match_the_spec_is_named_at_its_field(
    import_path: str, deployment: str, field: str, words: str,
) -> None:
    renamed = GREETER.deployments[0].model_copy(update={"name": deployment})
    spec = GREETER.model_copy(update={"import_path": import_path, "deployments": (renamed,)})
    ((path, message),) = import_path_problems([spec])
    assert path == f"apps.greeter.{field}"
    assert words in message


def test_check_exits_2_on_a_registered_app_whose_import_path_has_a_typo(tmp_path: Path) -> None:
    """The whole way a team's package goes: installed (its metadata on the path), named in a
    stack, and `servestack check` run as CI runs it."""
    install_fake_distribution(tmp_path / "site", "typo-team", {"typo": "typo_spec:SPEC"}, {
        "typo_spec": """
            from team_app.spec import GREETER
            SPEC = GREETER.model_copy(update={"name": "typo", "route_prefix": "/typo",
                                              "import_path": "typo_spec:ap"})
        """})
    document = yaml.safe_load(FIXTURE.read_text())
    document["config"]["servestack:apps"] = {"typo": {}}
    stack = tmp_path / "Pulumi.typo.yaml"
    stack.write_text(yaml.safe_dump(document))
    env = {**os.environ, "COLUMNS": "200",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO_ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", "from servestack.cli import main; main()", "check",
         "--stack-file", str(stack)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "apps.typo.import_path: module 'typo_spec' has no attribute 'ap'" in (
        " ".join(result.stderr.split()))
