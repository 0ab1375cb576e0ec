"""Exit codes of every servestack command, spelled once so the README's promise holds for all."""

from __future__ import annotations

from typing import Final

EXIT_FAILED: Final = 1
"""Something ran and failed: a Ray or Serve problem, a file that could not be written."""
EXIT_VIOLATIONS: Final = 1
"""`check`: a mandatory policy is violated."""
EXIT_INVALID: Final = 2
"""Invalid input, so nothing ran: a stack file, its config or capacity plan, an unknown stack."""
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C, as shells report SIGINT."""
