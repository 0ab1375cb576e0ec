"""The policy pack, run offline: the program under mocks, every resource through the policies.

The same `ResourceValidationPolicy`/`StackValidationPolicy` objects the CrossGuard pack serves
get the same `ResourceValidationArgs`/`StackValidationArgs` the Pulumi engine would build, with
props behind CrossGuard's own read-only proxy. So `servestack check` agrees with
`pulumi preview --policy-pack policies` without a Pulumi CLI, backend or cloud credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from infra.config import STACKS_DIR
from infra.environment import Environment, environment_for
from infra.stack_file import stack_file, stack_name
from policies.enforcement import levels_for, stack_levels
from policies.rules import StackConfigSource, build_policies
from policies.stack_context import stack_config_from_pulumi
from servestack.offline import InvalidStackError, ProgramRun, run_stack_file

PACK = "servestack"


@dataclass(frozen=True)
class Subject:
    """One registered resource as a policy sees it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    parent_urn: str | None = None
    protect: bool = False
    ignore_changes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    description: str
    message: str
    urn: str | None
    resource_type: str | None
    resource_name: str | None

    @property
    def mandatory(self) -> bool:
        return self.level == EnforcementLevel.MANDATORY


@dataclass(frozen=True)
class CheckReport:
    stack: str
    environment: Environment
    levels: Mapping[str, EnforcementLevel]
    resources: int
    violations: tuple[Violation, ...] = field(default=())
    warnings: tuple[str, ...] = ()  # what the program warned about (pulumi.log.warn)
    absent_secrets: tuple[str, ...] = ()  # filled with placeholders: `pulumi up` needs them

    @property
    def mandatory(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.mandatory)

    @property
    def advisory(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if not v.mandatory)

    @property
    def passed(self) -> bool:
        return not self.mandatory

    def tripped(self) -> set[str]:
        """Names of the policies with at least one violation."""
        return {v.policy for v in self.violations}


def _options(subject: Subject) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        subject.protect, list(subject.ignore_changes), None, [],
        PolicyCustomTimeouts(0, 0, 0), [], subject.parent_urn,
    )


def _policy_resources(subjects: Sequence[Subject]) -> list[PolicyResource]:
    """PolicyResource objects wired to their parents and dependencies, as the engine does."""
    by_urn = {
        s.urn: PolicyResource(s.type, unknown_checking_proxy(dict(s.props)), s.urn, s.name,
                              _options(s), None, None, [], {})
        for s in subjects
    }
    for subject in subjects:
        resource = by_urn[subject.urn]
        if subject.parent_urn in by_urn:
            resource.parent = by_urn[subject.parent_urn]
        resource.dependencies.extend(by_urn[d] for d in subject.dependencies if d in by_urn)
    return [by_urn[s.urn] for s in subjects]


def evaluate(
    stack: str,
    subjects: Sequence[Subject],
    stack_config: StackConfigSource,
    environment: Environment | None = None,
    overrides: Mapping[str, EnforcementLevel] | None = None,
) -> CheckReport:
    """Run every enabled policy over the resources; violations come back in a stable order."""
    env = environment or environment_for(stack)
    levels = levels_for(env, overrides, _own_levels(stack_config))
    policies = build_policies(levels, stack_config)
    by_urn = {s.urn: s for s in subjects}
    found: list[Violation] = []

    def reporter(name: str, description: str, level: EnforcementLevel,
                 default_urn: str | None) -> Callable[[str, str | None], None]:
        def report_violation(message: str, urn: str | None = None) -> None:
            target = by_urn.get(urn or default_urn or "")
            found.append(Violation(
                policy=name, level=level, description=description, message=message,
                urn=urn or default_urn, resource_type=target.type if target else None,
                resource_name=target.name if target else None,
            ))

        return report_violation

    for policy in policies:
        level = levels[policy.name]
        if level == EnforcementLevel.DISABLED:
            continue
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY  # what the engine reports for remediations
        if isinstance(policy, ResourceValidationPolicy):
            for subject in subjects:
                args = ResourceValidationArgs(
                    subject.type, unknown_checking_proxy(dict(subject.props)), subject.urn,
                    subject.name, _options(subject), None,
                )
                policy.validate(args, reporter(policy.name, policy.description, level, subject.urn))
        elif isinstance(policy, StackValidationPolicy):
            stack_args = StackValidationArgs(_policy_resources(subjects))
            policy.validate(stack_args, reporter(policy.name, policy.description, level, None))
    order = {name: i for i, name in enumerate(levels)}
    found.sort(key=lambda v: (not v.mandatory, order.get(v.policy, 0), v.urn or "", v.message))
    return CheckReport(stack, env, levels, len(subjects), tuple(found))


def _own_levels(stack_config: StackConfigSource) -> dict[str, EnforcementLevel]:
    """The levels the stack sets itself; none when its config does not load (the stack
    rules then report that)."""
    try:
        return stack_levels(stack_config())
    except (ValueError, KeyError):
        return {}


def subjects_of(run: ProgramRun) -> list[Subject]:
    """Subjects from the offline harness's registrations, in registration order."""
    return [
        Subject(
            type=r.type, name=r.name, urn=r.urn, props=r.inputs, parent_urn=r.parent,
            protect=r.options.protect, ignore_changes=r.options.ignore_changes,
            dependencies=r.options.depends_on,
        )
        for r in run.resources
    ]


def check_stack_file(
    path: Path,
    stack: str | None = None,
    environment: Environment | None = None,
    overrides: Mapping[str, EnforcementLevel] | None = None,
    require_secrets: bool = False,
) -> CheckReport:
    """Run the program for a stack file under mocks and every policy over what it registered.

    Raises StackConfigError/CapacityError (via ProgramRun) when the stack itself is invalid:
    the program registers nothing then, and there is nothing to check. With
    `require_secrets`, a required secret the stack lacks makes it invalid, as for `pulumi up`.
    """
    name = stack or stack_name(path)
    run = run_stack_file(path, name, fill_secrets=not require_secrets)
    if run.error is not None:
        raise InvalidStackError(run.error) from run.error
    subjects = subjects_of(run)
    # Stack rules read the config exactly as the pack does: from the Pulumi config the
    # program just ran with.
    report = evaluate(name, subjects, stack_config_from_pulumi, environment, overrides)
    return replace(report, warnings=run.warnings, absent_secrets=run.absent_secrets)


def check_stack(
    stack: str,
    stacks_dir: Path = STACKS_DIR,
    environment: Environment | None = None,
    overrides: Mapping[str, EnforcementLevel] | None = None,
) -> CheckReport:
    return check_stack_file(stack_file(stack, stacks_dir), stack, environment, overrides)
