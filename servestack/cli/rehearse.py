"""`servestack rehearse`: a stack's RayService on a local fake multi-node Ray, scaled by Ray's
own autoscaler, with the stack's Serve config deployed as KubeRay deploys it.

Exit codes: 0 every app RUNNING and every replica where it belongs; 1 the rehearsal failed
(an infeasible deployment, a replica in the wrong group, an app not RUNNING in time);
2 the stack or the RayService file is invalid, nothing was started; 130 interrupted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TypeVar

import typer
from rich.console import Console
from rich.text import Text

from infra.config import STACKS_DIR, StackConfigError
from infra.stack_file import StackFileError, load_stack, stack_file
from infra.validation import ValidStack
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID
from servestack.rehearse.cluster import ClusterError
from servestack.rehearse.report import print_report
from servestack.rehearse.run import (
    RehearsalFailedError,
    RehearsalOptions,
    RehearsalResult,
    rehearse,
)
from servestack.rehearse.translation import (
    RayServiceError,
    RehearsalTarget,
    file_target,
    rendered_target,
)

T = TypeVar("T")


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (CI cancelling, `timeout`) cleans up exactly as Ctrl-C does."""
    raise KeyboardInterrupt


@app.command("rehearse")
def rehearse_command(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name: stacks/Pulumi.<stack>.yaml."),
    stacks_dir: Path = typer.Option(
        STACKS_DIR, "--stacks-dir", envvar="SERVESTACK_STACKS_DIR", file_okay=False,
        help="Directory holding the Pulumi.<stack>.yaml files.",
    ),
    rayservice: Path | None = typer.Option(
        None, "--rayservice", dir_okay=False,
        help="Rehearse this RayService manifest instead of the stack's render (e.g. one "
        "applied by hand, or an old render); the stack still gives the plan and the apps.",
    ),
    load_step: bool = typer.Option(
        False, "--load-step", help="After RUNNING, drive a bounded loopback load so Serve and "
        "the autoscaler scale up to the plan's max, then watch them scale back down.",
    ),
    timeout: float = typer.Option(
        600.0, "--timeout", min=10, help="Seconds for every app to be RUNNING with replicas."
    ),
    load_seconds: float = typer.Option(120.0, "--load-seconds", min=5,
                                       help="Longest the load step sends load."),
    keep_logs: bool = typer.Option(
        False, "--keep-logs", help="Keep the fake cluster's temp dir (Ray's logs) afterwards."),
    settle_seconds: float = typer.Option(
        240.0, "--settle-seconds", min=5,
        help="Longest to wait, after the load, for the groups to return to their minimum."),
    upgrade: bool = typer.Option(
        False, "--upgrade", help="Instead, run the stack's incremental upgrade step by step "
        "as `servestack plan` predicts it (both generations in one Ray, under steady load) "
        "and compare the peak nodes per group with the plan's (docs/upgrades.md)."),
) -> None:
    """Rehearse a stack: its RayService on a local multi-node Ray driven by Ray's autoscaler.

    Renders the RayService as `pulumi up` would, translates its groups with Ray's KubeRay
    code, starts a private fake multi-node Ray (head with num-cpus 0, worker nodes launched
    and removed by autoscaler v2), deploys serveConfigV2 through the dashboard REST API with
    the stack's ingress (HAProxy on the head, unless serve.haproxy is off), sends example
    requests and reports where every replica landed and which ones HAProxy served.

    Exit codes: 0 every app RUNNING, every replica where it belongs; 1 the rehearsal failed;
    2 invalid stack or RayService file, nothing started; 130 interrupted."""
    out, err = Console(), Console(stderr=True)
    started = time.monotonic()
    valid, target = _stack_and_target(stack, stacks_dir, rayservice, err)

    def progress(message: str) -> None:
        err.print(Text(f"[{time.monotonic() - started:5.0f} s] {message}", style="dim"),
                  soft_wrap=True)

    if upgrade:
        _rehearse_upgrade(target, valid, timeout, keep_logs, progress, out, err)
        return
    options = RehearsalOptions(timeout_s=timeout, load_step=load_step, load_s=load_seconds,
                               settle_s=settle_seconds, keep_logs=keep_logs)
    result = _run(target, valid, options, progress, err)
    print_report(result, out)
    if result.problems:
        err.print(Text("rehearsal failed:\n  " + "\n  ".join(result.problems), style="red"),
                  soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)


def _rehearse_upgrade(target: RehearsalTarget, valid: ValidStack, timeout: float,
                      keep_logs: bool, progress: Callable[[str], None], out: Console,
                      err: Console) -> None:
    """Exit 2 for a strategy without steps, 1 when a request failed or a peak differs."""
    from infra.upgrade_plan import upgrade_plan
    from servestack.rehearse.upgrade import NotIncrementalError, phases, rehearse_upgrade
    from servestack.rehearse.upgrade_report import print_upgrade_report

    config = valid.stack
    plan = upgrade_plan(config, valid.plan)
    try:
        phases(plan)
    except NotIncrementalError as error:
        err.print(Text(str(error), style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    result = _guarded(f"upgrade rehearsal of {target.source}", err, lambda: rehearse_upgrade(
        target, valid.plan, plan, config.applications, config.serve, timeout, progress,
        keep_logs))
    print_upgrade_report(result, out)
    if result.problems:
        err.print(Text("upgrade rehearsal failed:\n  " + "\n  ".join(result.problems),
                       style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)


def _stack_and_target(stack: str, stacks_dir: Path, rayservice: Path | None, err: Console
                      ) -> tuple[ValidStack, RehearsalTarget]:
    """The validated stack and the RayService to rehearse; exit 2 when either is invalid."""
    try:
        valid = load_stack(stack, stacks_dir)
        with err.status("Rendering the RayService (the program under Pulumi mocks)…"):
            target = (file_target(rayservice) if rayservice is not None
                      else rendered_target(stack_file(stack, stacks_dir), stack))
    except (FileNotFoundError, StackFileError, StackConfigError, RayServiceError) as error:
        err.print(Text(str(error), style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    return valid, target


def _run(target: RehearsalTarget, valid: ValidStack, options: RehearsalOptions,
         progress: Callable[[str], None], err: Console) -> RehearsalResult:
    config = valid.stack
    return _guarded(f"rehearsal of {target.source}", err, lambda: rehearse(
        target, valid.plan, config.applications, config.serve, options, progress))


def _guarded(what: str, err: Console, run: Callable[[], T]) -> T:
    """`run`, SIGTERM handled as Ctrl-C; exit 1 when it fails, 130 when interrupted."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run()
    except RehearsalFailedError as failure:
        err.print(Text(f"{what} failed:\n{failure}", style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    except ClusterError as error:
        err.print(Text(str(error), style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        err.print(Text("Interrupted: the fake cluster was stopped.", style="red"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
