"""How strictly each policy is enforced, per environment.

Correctness rules (what Ray and Kubernetes must agree on) are mandatory everywhere; the
operational ones (fault tolerance, warm GPUs, hardening) tighten from local to prod. A stack
maps to its environment by name (infra.environment); an unknown stack gets prod's levels, so
a new stack is strict until someone decides otherwise. A stack's `budget.enforcement` sets
the level of its budget policy. The pack config of `pulumi preview --policy-pack-config` (and
`servestack check --policy-config`) overrides single policies, over both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel

from infra.config import StackConfig
from infra.environment import Environment

M = EnforcementLevel.MANDATORY
A = EnforcementLevel.ADVISORY
D = EnforcementLevel.DISABLED


def _levels(
    local: EnforcementLevel,
    dev: EnforcementLevel,
    staging: EnforcementLevel,
    prod: EnforcementLevel,
) -> dict[Environment, EnforcementLevel]:
    return {"local": local, "dev": dev, "staging": staging, "prod": prod}


LEVELS: Mapping[str, Mapping[Environment, EnforcementLevel]] = {
    # What Ray and Kubernetes must agree on: wrong anywhere means broken everywhere.
    "images-pinned": _levels(M, M, M, M),
    "ray-version-matches-image": _levels(M, M, M, M),
    "containers-have-resources": _levels(M, M, M, M),
    "head-runs-no-replicas": _levels(M, M, M, M),
    "ray-gpus-match-pod-limits": _levels(M, M, M, M),
    "gpu-workers-target-their-pool": _levels(M, M, M, M),
    "serve-config-valid": _levels(M, M, M, M),
    "capacity-plan-fits": _levels(M, M, M, M),
    "upgrade-steps-fit": _levels(M, M, M, M),
    "httproute-covers-app-routes": _levels(M, M, M, M),
    # Hygiene and hardening: advisory while iterating, mandatory before users see it.
    "no-deprecated-rayservice-fields": _levels(A, A, M, M),
    "explicit-upgrade-strategy": _levels(A, A, M, M),
    "pods-hardened": _levels(A, M, M, M),
    "namespaces-enforce-pod-security": _levels(A, M, M, M),
    "ray-namespaces-restricted": _levels(A, M, M, M),
    "ray-token-auth": _levels(A, M, M, M),
    "network-policies-isolate-ray": _levels(A, M, M, M),
    "tls-on-internet-facing-listeners": _levels(A, M, M, M),
    # A secret in plain text is leaked the moment it is applied, on a laptop too.
    "no-plain-secrets": _levels(M, M, M, M),
    # Availability: pointless on a laptop, a warning in dev and staging, a gate in prod.
    "gcs-fault-tolerance": _levels(D, A, A, M),
    "gpu-deployments-stay-warm": _levels(D, A, A, M),
    # Cost: a stack's `budget.enforcement` sets it (stack_levels); these when it does not.
    "stack-within-budget": _levels(A, A, A, M),
}


class PolicyConfigError(ValueError):
    """A policy pack config file names an unknown policy or level."""


def stack_levels(stack: StackConfig) -> dict[str, EnforcementLevel]:
    """The levels a stack sets itself: its budget's enforcement."""
    budget = stack.budget
    if budget is None or budget.enforcement is None:
        return {}
    return {"stack-within-budget": EnforcementLevel(budget.enforcement)}


def levels_for(
    environment: Environment, overrides: Mapping[str, EnforcementLevel] | None = None,
    stack: Mapping[str, EnforcementLevel] | None = None,
) -> dict[str, EnforcementLevel]:
    """Each policy's level in an environment, then the stack's own (`stack_levels`), then
    pack-config overrides on top."""
    levels = {name: by_env[environment] for name, by_env in sorted(LEVELS.items())}
    levels.update(stack or {})
    for name, level in (overrides or {}).items():
        if name == "all":
            levels = dict.fromkeys(levels, level)
    for name, level in (overrides or {}).items():
        if name != "all":
            levels[name] = level
    return levels


def parse_policy_config(document: Mapping[str, Any]) -> dict[str, EnforcementLevel]:
    """Enforcement overrides from a `--policy-pack-config` document.

    Same shape Pulumi reads: `{"all": "advisory", "<policy>": "mandatory" |
    {"enforcementLevel": "disabled", ...}}`.
    """
    overrides: dict[str, EnforcementLevel] = {}
    known = {"all", *LEVELS}
    for name, value in document.items():
        if name not in known:
            raise PolicyConfigError(
                f"policy config names unknown policy {name!r}; known: {', '.join(sorted(known))}"
            )
        level = value.get("enforcementLevel") if isinstance(value, Mapping) else value
        if level is None:
            continue
        try:
            overrides[name] = EnforcementLevel(level)
        except ValueError:
            allowed = ", ".join(level.value for level in EnforcementLevel)
            raise PolicyConfigError(
                f"policy config {name}: {level!r} is not an enforcement level ({allowed})"
            ) from None
    return overrides


def read_policy_config(path: Path) -> dict[str, EnforcementLevel]:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PolicyConfigError(f"cannot read policy config {path}: {error}") from None
    if not isinstance(document, Mapping):
        raise PolicyConfigError(f"policy config {path} must be a JSON object")
    return parse_policy_config(document)
