"""Imports every command module so each can register on the shared Typer app."""

from __future__ import annotations

# One module per command group; each registers itself on `servestack.cli.app` when imported.
from servestack.cli import check, diff, image, local, model, plan, rehearse, render  # noqa: F401
