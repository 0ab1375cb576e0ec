"""Imports every command module so each registers on the shared Typer app (tests, --help)."""

from __future__ import annotations

from servestack.cli.registry import register

register()
