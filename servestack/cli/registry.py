"""Which module registers which command, so `main` imports only the one it runs.

Importing every command module costs seconds (check brings Pulumi's policy SDK, rehearse
brings Ray); `servestack plan` needs none of that. tests/servestack/test_cli_registry.py checks
that this table names exactly what each module registers.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

COMMAND_MODULES: dict[str, str] = {
    "check": "check",
    "diff": "diff",
    "image": "image",
    "serve": "local",
    "status": "local",
    "stop": "local",
    "model": "model",
    "plan": "plan",
    "rehearse": "rehearse",
    "render": "render",
}
"""Command (or command group) name → its module under servestack.cli."""


def register(modules: Sequence[str] = tuple(dict.fromkeys(COMMAND_MODULES.values()))) -> None:
    """Import these command modules; each registers itself on `servestack.cli.app`."""
    for module in modules:
        importlib.import_module(f"servestack.cli.{module}")


def modules_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The one module the command line names, or every module (for --help, a typo, none)."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command in COMMAND_MODULES:
        return (COMMAND_MODULES[command],)
    return tuple(dict.fromkeys(COMMAND_MODULES.values()))
