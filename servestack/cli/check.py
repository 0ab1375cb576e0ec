"""`servestack check`: the CrossGuard pack against stacks, offline, printed like a preview,
then each app's `import_path` imported and built (servestack/app_imports.py).

Exit codes: 0 when no mandatory policy is violated (advisories are printed), 1 when one is,
2 when a stack (or the policy config) is invalid and the program never ran, or an app's code
does not import or build as its spec says.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import typer
from pulumi_policy import EnforcementLevel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from apps.spec import ApplicationSpec
from infra.config import STACKS_DIR, StackConfigError, resolve_applications
from infra.environment import ENVIRONMENTS, Environment
from infra.stack_file import StackFileError, available_stacks, source_from_stack_file, stack_file
from policies.enforcement import PolicyConfigError, read_policy_config
from servestack.app_imports import import_path_problems
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_INVALID, EXIT_VIOLATIONS
from servestack.offline import InvalidStackError
from servestack.policy_check import PACK, CheckReport, check_stack_file

PACK_VERSION = "0.1.0"  # policies/PulumiPolicy.yaml


def print_report(report: CheckReport, console: Console) -> None:
    """The `Policies:` block `pulumi preview --policy-pack` prints, then a summary table."""
    mark = Text("✅", style="green") if report.passed else Text("❌", style="red")
    header = Text("    ").append(mark).append(
        f" {PACK}@v{PACK_VERSION} (local: policies) — stack {report.stack}, "
        f"{report.environment} levels, {report.resources} resources"
    )
    console.print(Text("Policies:", style="bold"))
    console.print(header)
    for v in report.violations:
        style = "red" if v.mandatory else "yellow"
        where = f"{v.resource_type}: {v.resource_name}" if v.resource_type else "stack"
        line = Text("        - ").append(f"[{v.level.value}]", style=style)
        line.append(f"  {v.policy}  ({where})")
        console.print(line)
        console.print(Text(f"          {v.description}"))
        for message_line in v.message.splitlines():
            console.print(Text(f"          {message_line}"))
    table = Table(title=f"Policy summary: stack {report.stack!r}")
    for column in ("policy", "level", "violations"):
        table.add_column(column, justify="right" if column == "violations" else "left")
    counts = {name: 0 for name in report.levels}
    for v in report.violations:
        counts[v.policy] += 1
    for name, level in report.levels.items():
        count = counts[name]
        style = ("red" if level.value == "mandatory" else "yellow") if count else "green"
        table.add_row(name, level.value, Text(str(count), style=style))
    console.print(table)
    console.print(Text(
        f"{len(report.mandatory)} mandatory, {len(report.advisory)} advisory violation(s)",
        style="red" if report.mandatory else "green",
    ))


def load_applications(path: Path, name: str | None) -> tuple[ApplicationSpec, ...]:
    """The apps of a stack the program accepted, resolved as it resolved them."""
    return resolve_applications(source_from_stack_file(path, name).values["apps"])


@app.command("check")
def check(
    stacks: list[str] = typer.Option(
        [], "--stack", "-s", help="Stack to check (repeatable); default: every stack in stacks/."
    ),
    stack_files: list[Path] = typer.Option(
        [], "--stack-file", help="Check a stack file outside stacks/ (e.g. a test fixture).",
        dir_okay=False,
    ),
    stacks_dir: Path = typer.Option(
        STACKS_DIR, "--stacks-dir", help="Directory holding the Pulumi.<stack>.yaml files.",
        file_okay=False,
    ),
    environment: str | None = typer.Option(
        None, "--environment", "-e",
        help=f"Enforcement levels of this environment ({', '.join(ENVIRONMENTS)}); "
        "default: the stack's own (unknown stacks get prod's).",
    ),
    policy_config: Path | None = typer.Option(
        None, "--policy-config",
        help="Pack config JSON, as for `pulumi preview --policy-pack-config`.", dir_okay=False,
    ),
    require_secrets: bool = typer.Option(
        False, "--require-secrets",
        help="Refuse a stack that lacks a secret `pulumi up` needs (exit 2), as CI on the "
        "real stacks should; without it, the secret is named and a placeholder used.",
    ),
) -> None:
    """Run the policy pack offline: the program under mocks, every resource through the policies.

    Prints violations the way `pulumi preview --policy-pack policies` does, then imports and
    builds each app's `import_path`. Exits 1 on a mandatory violation, 2 when a stack, the
    policy config or an app's code is invalid.
    """
    errors = Console(stderr=True, soft_wrap=True)
    env = _chosen_environment(environment, errors)
    overrides = _policy_overrides(policy_config, errors)
    out = Console(soft_wrap=True)
    outcomes = [_check_one(path, name, env, overrides, require_secrets, stacks_dir, out, errors)
                for path, name in _targets(stacks, stack_files, stacks_dir)]
    if "invalid" in outcomes:
        raise typer.Exit(EXIT_INVALID)
    if "violations" in outcomes:
        raise typer.Exit(EXIT_VIOLATIONS)


Outcome = Literal["passed", "violations", "invalid"]
Overrides = Mapping[str, EnforcementLevel]
"""The enforcement levels a `--policy-config` sets, by policy name."""


def _chosen_environment(environment: str | None, errors: Console) -> Environment | None:
    """`--environment` as an Environment; exit 2 for one that is not."""
    if environment is not None and environment not in ENVIRONMENTS:
        errors.print(Text(f"--environment {environment!r}: choose one of {', '.join(ENVIRONMENTS)}",
                          style="red"))
        raise typer.Exit(EXIT_INVALID)
    return next((e for e in ENVIRONMENTS if e == environment), None)


def _policy_overrides(policy_config: Path | None, errors: Console) -> Overrides | None:
    """The `--policy-config` file read; exit 2 when it is invalid."""
    try:
        return read_policy_config(policy_config) if policy_config else None
    except PolicyConfigError as error:
        errors.print(Text(str(error), style="red"))
        raise typer.Exit(EXIT_INVALID) from None


def _targets(stacks: list[str], stack_files: list[Path], stacks_dir: Path
             ) -> list[tuple[Path, str | None]]:
    """(file, stack name) to check: the named stacks and files, else every stack in stacks/."""
    targets: list[tuple[Path, str | None]] = [(stack_file(n, stacks_dir), n) for n in stacks]
    targets += [(path, None) for path in stack_files]
    if not targets:
        targets = [(stack_file(name, stacks_dir), name) for name in available_stacks(stacks_dir)]
    return targets


def _check_one(path: Path, name: str | None, env: Environment | None,
               overrides: Overrides | None, require_secrets: bool, stacks_dir: Path,
               out: Console, errors: Console) -> Outcome:
    """One stack through the pack, its report printed, or why it could not run."""
    label = name or str(path)
    if not path.is_file():
        errors.print(Text(f"no stack file at {path} (stacks: "
                          f"{', '.join(available_stacks(stacks_dir)) or 'none'})", style="red"))
        return "invalid"
    try:
        with errors.status(f"running stack {label} under mocks and checking policies…"):
            report = check_stack_file(path, name, env, overrides, require_secrets)
    except StackFileError as error:
        errors.print(Text(str(error), style="red"))
        return "invalid"
    except (StackConfigError, InvalidStackError) as error:
        errors.print(Text(f"{path}: {error}", style="red"))
        return "invalid"
    for warning in (*report.absent_secrets, *report.warnings):
        errors.print(Text(f"warning: {warning}", style="yellow"))
    print_report(report, out)
    with errors.status(f"importing and building the apps of stack {label}…"):
        problems = import_path_problems(load_applications(path, name))
    for where, message in problems:
        errors.print(Text(f"{path}: {where}: {message}", style="red"))
    if problems:
        return "invalid"
    return "passed" if report.passed else "violations"
