"""Imports every command module so each can register on the shared Typer app."""

from __future__ import annotations

# One import per command module; keep sorted.
from infra.cli import check  # noqa: F401
from infra.cli import diff  # noqa: F401
from infra.cli import local  # noqa: F401
from infra.cli import model  # noqa: F401
from infra.cli import plan  # noqa: F401
from infra.cli import render  # noqa: F401
