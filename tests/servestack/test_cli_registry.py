"""The command table `main` uses to import one command module names what each registers."""

from __future__ import annotations

import subprocess
import sys

import typer.main

import servestack.cli.commands  # noqa: F401  (registers every command on `app`)
from servestack.cli import app
from servestack.cli.registry import COMMAND_MODULES, modules_for


def _registered() -> dict[str, str]:
    """Command or group name → the module whose callback registered it."""
    names = {}
    for info in app.registered_commands:
        assert info.callback is not None
        names[str(info.name)] = info.callback.__module__
    for group in app.registered_groups:
        assert group.typer_instance is not None
        modules = {info.callback.__module__ for info in group.typer_instance.registered_commands
                   if info.callback is not None}
        assert len(modules) == 1, modules
        names[str(group.name)] = modules.pop()
    return names


def test_the_table_names_every_command_and_its_module() -> None:
    expected = {name: f"servestack.cli.{module}" for name, module in COMMAND_MODULES.items()}
    assert _registered() == expected
    assert set(typer.main.get_group(app).commands) == set(COMMAND_MODULES)


def test_a_command_imports_its_module_only_and_help_imports_all() -> None:
    assert modules_for(["plan", "--stack", "prod"]) == ("plan",)
    assert modules_for(["status"]) == ("local",)
    assert set(modules_for(["--help"])) == set(COMMAND_MODULES.values())
    assert set(modules_for(["nonsense"])) == set(COMMAND_MODULES.values())


def test_plan_does_not_import_the_other_commands() -> None:
    script = ("import sys; from servestack.cli import main\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in sys.modules if m.startswith('servestack.cli.')))")
    out = subprocess.run([sys.executable, "-c", script, "plan", "--help"], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "['servestack.cli.exit_codes', " \
        "'servestack.cli.plan', 'servestack.cli.registry', 'servestack.cli.tables', " \
        "'servestack.cli.upgrade_view']"  # plan's own table modules, no other command
