"""Which environment a stack is: the one fact both the program and the policy pack grade by.

The program refuses a plain-text secret in staging and prod and only warns elsewhere; the pack
picks its enforcement levels by the same mapping. An unknown stack name means the strictest
environment, so a new stack is strict until someone decides otherwise.
"""

from __future__ import annotations

from typing import Final, Literal

Environment = Literal["local", "dev", "staging", "prod"]
ENVIRONMENTS: Final[tuple[Environment, ...]] = ("local", "dev", "staging", "prod")
STRICTEST: Final[Environment] = "prod"
GUARDED: Final[frozenset[Environment]] = frozenset({"staging", "prod"})
"""Environments real users reach: what is a warning elsewhere is an error here."""


def environment_for(stack: str | None) -> Environment:
    """`prod`, `acme/servestack/prod` and `acme/prod` all mean prod; unknown means strictest."""
    name = (stack or "").rsplit("/", 1)[-1]
    for environment in ENVIRONMENTS:
        if name == environment:
            return environment
    return STRICTEST
