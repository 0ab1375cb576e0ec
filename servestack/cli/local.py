"""`servestack serve / status / stop`: a stack on an embedded local Ray.

Exit codes: 0 done; 1 Ray or Serve trouble (not running, failed start, failed or slow
rollout); 2 the stack is invalid, nothing was started; 130 interrupted.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from infra.config import STACKS_DIR, HttpOptions, StackConfig, StackConfigError
from infra.ingress_environment import ingress_environment
from infra.ray_internals import serve_direct_ingress_shutdown_buffer_s
from infra.stack_file import StackFileError, load_stack
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID
from servestack.local.auth import ensure_token, read_token
from servestack.local.dashboard import (
    DashboardAuthError,
    DashboardClient,
    DashboardError,
    DashboardUnreachableError,
)
from servestack.local.examples import example_requests
from servestack.local.haproxy import (
    local_haproxy_dir,
    private_haproxy_environment,
    record_drain,
    recorded_drain_s,
)
from servestack.local.head import (
    DEFAULT_DASHBOARD_PORT,
    DEFAULT_GCS_PORT,
    DEFAULT_METRICS_PORT,
    LOOPBACK,
    HeadError,
    LocalPorts,
    embedded_node_labels,
    head_environment,
    required_cpus,
    start_head,
)
from servestack.local.loopback import LoopbackError, start_serve_on_loopback
from servestack.local.probe import AppProbe, probe_apps, proxy_problem
from servestack.local.processes import (
    RESTART_ADVICE,
    forget_cluster_address,
    head_remains,
    stop_cluster,
)
from servestack.local.rollout import DeployFailedError, RolloutTimeoutError, wait_for_rollout
from servestack.local.serve_status import Rollout, ServeSnapshot

SERVE_SHUTDOWN_TIMEOUT_S = 15.0
"""A healthy Serve drains in seconds; `stop` must finish even when it does not."""


def serve_shutdown_timeout_s(ray_port: int) -> float:
    """Under serve.haproxy Ray holds each ingress replica open for the drain its head was
    started with (the stack's `serve.ingress_drain_s`), plus Ray's fixed buffer, so HAProxy
    drops it first; `stop` waits that long too."""
    drain_s = recorded_drain_s(local_haproxy_dir(ray_port))
    if drain_s is None:
        return SERVE_SHUTDOWN_TIMEOUT_S
    return SERVE_SHUTDOWN_TIMEOUT_S + drain_s + serve_direct_ingress_shutdown_buffer_s()


STACK_OPTION = typer.Option(
    "local", "--stack", "-s", help="Stack name: stacks/Pulumi.<stack>.yaml."
)
STACKS_DIR_OPTION = typer.Option(
    STACKS_DIR, "--stacks-dir", envvar="SERVESTACK_STACKS_DIR", file_okay=False,
    help="Directory holding the Pulumi.<stack>.yaml files.",
)
RAY_PORT_OPTION = typer.Option(
    DEFAULT_GCS_PORT, "--ray-port", envvar="SERVESTACK_RAY_PORT", min=1, max=65535,
    help="Ray GCS port of the head.",
)
DASHBOARD_PORT_OPTION = typer.Option(
    DEFAULT_DASHBOARD_PORT, "--dashboard-port", envvar="SERVESTACK_DASHBOARD_PORT", min=1,
    max=65535,
    help="Ray dashboard port (REST deploys and status go through it).",
)

err = Console(stderr=True)


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err.print(Text(message, style="red"), soft_wrap=True)
    return typer.Exit(code)


def _load(stack: str, stacks_dir: Path) -> tuple[StackConfig, dict[str, Any]]:
    try:
        valid = load_stack(stack, stacks_dir)
    except (FileNotFoundError, StackFileError, StackConfigError) as error:
        raise _fail(str(error), EXIT_INVALID) from None
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] != "ray":
            raise
        raise _fail("Ray is not installed in this environment: run `make install` "
                    "(or `pip install -e .`)") from None
    for warning in valid.warnings:
        err.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
    return valid.stack, valid.serve_config


@app.command("serve")
def serve(
    stack: str = STACK_OPTION,
    stacks_dir: Path = STACKS_DIR_OPTION,
    timeout: float = typer.Option(
        600.0, "--timeout", min=1, help="Seconds to wait for every app to be RUNNING "
        "(the first start loads models)."
    ),
    ray_port: int = RAY_PORT_OPTION,
    dashboard_port: int = DASHBOARD_PORT_OPTION,
    http_port: int | None = typer.Option(
        None, "--http-port", envvar="SERVESTACK_HTTP_PORT",
        min=1, max=65535,
        help="Serve HTTP port on 127.0.0.1 (default: the stack's serve.http.port).",
    ),
    metrics_port: int = typer.Option(
        DEFAULT_METRICS_PORT, "--metrics-port", envvar="SERVESTACK_METRICS_PORT", min=1, max=65535,
        help="Port of Ray's Prometheus metrics (Serve's included).",
    ),
) -> None:
    """Run a stack on a local Ray and print its endpoints with ready-to-paste curls.

    Starts (or reuses) a token-auth Ray head, deploys the stack's Serve config through the
    dashboard REST API and waits until every app is RUNNING. Exits 1 when an app fails
    (printing Ray's message) or the timeout passes, 2 when the stack file is invalid."""
    config, serve_config = _load(stack, stacks_dir)
    ports = LocalPorts(http=http_port or config.serve.http.port, gcs=ray_port,
                       dashboard=dashboard_port, metrics=metrics_port)
    env = _head_environment(config, ports)
    client = DashboardClient(ports.dashboard_url, ensure_token(env))
    with _exit_on_failure(ports):
        snapshot = _deploy(client, config, serve_config, ports, env, timeout)
        refused = _refused_updates(config, snapshot, ports)
    if refused:
        _report_refused(refused)
        raise typer.Exit(EXIT_FAILED)
    _print_endpoints(config, snapshot, ports)


def _head_environment(config: StackConfig, ports: LocalPorts) -> dict[str, str]:
    """What a head started for this stack runs with: the stack's ingress settings, and under
    HAProxy its files private to this head."""
    env = head_environment({**os.environ,
                            **ingress_environment(config.applications, config.serve)})
    try:
        env.update(private_haproxy_environment(env, local_haproxy_dir(ports.gcs)))
    except HeadError as error:
        raise _fail(str(error)) from None
    return env


def _deploy(client: DashboardClient, config: StackConfig, serve_config: dict[str, Any],
            ports: LocalPorts, env: dict[str, str], timeout: float) -> ServeSnapshot:
    """A head (reused or started), Serve on loopback, the Serve config through the dashboard,
    then the rollout watched until every app is RUNNING."""
    expected = [entry["name"] for entry in serve_config["applications"]]
    with err.status("Starting Ray…") as status:
        _ensure_head(client, config, ports, env, embedded_node_labels(serve_config))
        status.update(f"Starting Serve on {LOOPBACK}…")
        _ensure_serve(client, config, ports, env)
        status.update(f"Deploying {len(expected)} app(s) via {ports.dashboard_url}…")
        client.deploy(serve_config)
    return _watch_rollout(client, expected, timeout)


def _refused_updates(config: StackConfig, snapshot: ServeSnapshot, ports: LocalPorts
                     ) -> list[AppProbe]:
    """Apps Ray calls RUNNING whose replicas refused the update (and kept their old model)."""
    return [probe for probe in probe_apps(
        ((app.name, app.route_prefix) for app in config.applications),
        _serving_url(snapshot, ports.http))
        if probe.rollout is not None and probe.rollout.failed]


@contextmanager
def _exit_on_failure(ports: LocalPorts) -> Iterator[None]:
    """Each way a start or deploy fails, as its message and exit code."""
    try:
        yield
    except DashboardError as error:
        remains = head_remains(ports.gcs)  # a head that crashed under the deploy
        advice = f" {remains.describe()}: {RESTART_ADVICE}." if remains.crashed else ""
        raise _fail(f"{error}.{advice}") from None
    except (HeadError, LoopbackError, RolloutTimeoutError) as error:
        raise _fail(str(error)) from None
    except DeployFailedError as failure:
        _report_failure(failure.rollout)
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise _fail("Interrupted. Whatever Ray had started keeps running (a deploy finishes "
                    "on its own): `servestack status` to look, `servestack stop` to end it.",
                    EXIT_INTERRUPTED) from None


def _serving_url(snapshot: ServeSnapshot, default_port: int) -> str:
    """Where Serve's HTTP answers: the port the running Serve is bound to, else ours."""
    return f"http://{LOOPBACK}:{snapshot.http_options.port or default_port}"


def _report_refused(refused: list[AppProbe]) -> None:
    """Ray says RUNNING; the replicas refused the update and kept their old model."""
    for probe in refused:
        assert probe.rollout is not None
        err.print(Text(f"application {probe.name!r}: {probe.rollout.summary()}",
                       style="bold red"), soft_wrap=True)
    err.print("The old model keeps answering. Fix the URI in the stack file and run "
              "`servestack serve` again; `servestack status` shows what serves meanwhile.")


def _ensure_head(client: DashboardClient, config: StackConfig, ports: LocalPorts,
                 env: dict[str, str], labels: dict[str, str]) -> None:
    """Reuse a whole head, start one where none runs; refuse the remains of a crashed one,
    which can neither serve nor be started over (its processes hold the ports)."""
    remains = head_remains(ports.gcs)
    if remains.crashed:
        raise HeadError(f"{remains.describe()}: {RESTART_ADVICE}.")
    try:
        client.version()
    except DashboardAuthError:
        raise
    except DashboardError:
        if remains.processes:
            raise HeadError(f"{len(remains.processes)} process(es) of the Ray on port "
                            f"{ports.gcs} run, but its dashboard does not answer (a crashed "
                            f"head): {RESTART_ADVICE}.") from None
        start_head(ports, required_cpus(config.applications), env, client, labels=labels)
        record_drain(local_haproxy_dir(ports.gcs), env)  # what `stop` will wait for
        return
    if labels and not any(labels.items() <= node.items() for node in client.alive_node_labels()):
        shown = ", ".join(f"{key}={value}" for key, value in labels.items())
        raise HeadError(
            f"the Ray running at {ports.dashboard_url} has no node labelled {shown}, which "
            "this stack's deployments select (a head started by an older servestack?), so no "
            "replica could be scheduled; `servestack stop` it and run `servestack serve` again")
    err.print(f"Reusing the Ray already running at {ports.dashboard_url}")


def _ensure_serve(client: DashboardClient, config: StackConfig, ports: LocalPorts,
                  env: dict[str, str]) -> None:
    snapshot = client.snapshot()
    if not snapshot.serve_running:
        start_serve_on_loopback(config.serve, ports, env)
        return
    bound = snapshot.http_options
    if (bound.host, bound.port) != (LOOPBACK, ports.http):
        err.print(Text(
            f"Serve is already running with HTTP on {bound.host}:{bound.port}; a running Serve "
            "keeps its binding. `servestack stop` first to bind it to "
            f"{LOOPBACK}:{ports.http}.", style="yellow"))


def _watch_rollout(client: DashboardClient, expected: list[str], timeout: float) -> ServeSnapshot:
    started = time.monotonic()
    with Live(Text("Waiting for Serve…"), console=err, transient=True) as live:
        def show(snapshot: ServeSnapshot, rollout: Rollout) -> None:
            elapsed = Text(f"{time.monotonic() - started:.0f} s / {timeout:.0f} s", style="dim")
            live.update(Group(serve_status_table(snapshot, expected), elapsed))

        snapshot = wait_for_rollout(client, expected, timeout, on_poll=show)
    err.print(serve_status_table(snapshot, expected))
    return snapshot


def serve_status_table(snapshot: ServeSnapshot, names: list[str] | None = None) -> Table:
    """One row per deployment: app and deployment status, replicas running / target."""
    # No rules between columns and short headers: six columns fit 80 characters unfolded.
    table = Table(title="Serve applications", box=box.SIMPLE_HEAD, show_edge=False,
                  collapse_padding=True)
    for column in ("app", "route", "app status", "deployment", "status", "replicas"):
        table.add_column(column, justify="right" if column == "replicas" else "left",
                         overflow="fold")
    for name in sorted(names if names is not None else snapshot.applications):
        application = snapshot.applications.get(name)
        if application is None:
            table.add_row(name, "", _status_text("NOT_STARTED"), "", "", "")
            continue
        deployments = [application.deployments[d] for d in sorted(application.deployments)]
        if not deployments:
            table.add_row(name, application.route_prefix or "", _status_text(application.status),
                          "", "", "")
        for index, dep in enumerate(deployments):
            first = index == 0
            table.add_row(
                name if first else "", (application.route_prefix or "") if first else "",
                _status_text(application.status) if first else Text(""), dep.name,
                _status_text(dep.status),
                f"{dep.running_replicas}/{_or_unknown(dep.target_num_replicas)}",
            )
    return table


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)


def _status_text(status: str) -> Text:
    colour = {"RUNNING": "green", "HEALTHY": "green", "DEPLOY_FAILED": "red",
              "UNHEALTHY": "red"}.get(status, "yellow")
    return Text(status, style=colour)


def _report_failure(rollout: Rollout) -> None:
    """Ray's full messages first, then one line per app saying what broke."""
    for application in rollout.failed:
        err.rule(f"{application.name}: what Ray reported", style="red")
        for message in application.failure_messages() or ["(Ray gave no message)"]:
            err.print(Text(message), soft_wrap=True)
    err.rule(style="red")
    for application in rollout.failed:
        for line in application.failure_summary() or [""]:
            err.print(Text(f"application {application.name!r} is {application.status}: {line}",
                           style="bold red"), soft_wrap=True)
    err.print("Ray is left running so you can inspect the failure in the dashboard; "
              "`servestack stop` ends it.")


def _print_endpoints(config: StackConfig, snapshot: ServeSnapshot, ports: LocalPorts) -> None:
    out = Console()
    base_url = _serving_url(snapshot, ports.http)
    table = Table(title=f"Stack {config.stack!r} is serving")
    table.add_column("application")
    table.add_column("endpoint")
    for application in config.applications:
        table.add_row(application.name, base_url + application.route_prefix)
    table.add_row("Ray dashboard", ports.dashboard_url)
    table.add_row("Ray metrics (Prometheus)", ports.metrics_url)
    out.print(table)
    out.print("Try it:", style="bold")
    for application in config.applications:
        for example in example_requests(application, base_url):
            out.print(f"# {example.description}", style="dim", soft_wrap=True)
            out.print(example.curl(), soft_wrap=True, markup=False, highlight=False)
    out.print("The dashboard asks for the token in "
              "`ray get-auth-token` (~/.ray/auth_token); `servestack stop` ends everything.",
              style="dim")


@app.command("status")
def status(ray_port: int = RAY_PORT_OPTION, dashboard_port: int = DASHBOARD_PORT_OPTION) -> None:
    """Show the local Serve applications, what each serves, and whether HTTP answers.

    Exits 1 when no Ray answers on the dashboard port, Serve's HTTP proxy does not answer,
    an application has failed, or a replica refused the last model update."""
    client = DashboardClient(f"http://{LOOPBACK}:{dashboard_port}", read_token() or "")
    remains = head_remains(ray_port)
    if remains.crashed:
        raise _fail(f"{remains.describe()}: {RESTART_ADVICE}.")
    try:
        snapshot = client.snapshot()
    except DashboardError as error:
        raise _fail(f"{error}. {_advice_without_dashboard(len(remains.processes), ray_port)}"
                    ) from None
    out = Console()
    if not snapshot.serve_running:
        out.print(f"Ray is running at {client.url}, but Serve is not. "
                  "`servestack serve` deploys the stack.")
        return
    out.print(serve_status_table(snapshot))
    failed = False
    for application in snapshot.applications.values():
        for line in application.failure_summary() if application.failed else []:
            out.print(Text(f"{application.name}: {line}", style="red"), soft_wrap=True)
            failed = True
    base_url = _serving_url(snapshot, HttpOptions().port)  # Serve's default, as the stack's
    problem = proxy_problem(base_url)
    if problem:
        out.print(Text(f"{problem}. Ray restarts a dead proxy within about 30 s; if it stays "
                       "down, `servestack stop` and then `servestack serve`.", style="red"),
                  soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    routes = [(app.name, app.route_prefix) for app in snapshot.applications.values()
              if app.route_prefix and not app.failed]
    for probe in probe_apps(routes, base_url):
        if probe.problem:
            out.print(Text(f"{probe.name}: {probe.problem}", style="red"), soft_wrap=True)
            failed = True
        elif probe.rollout is not None:
            style = "red" if probe.rollout.failed else "green"
            out.print(Text(f"{probe.name}: {probe.rollout.summary()}", style=style),
                      soft_wrap=True)
            failed = failed or probe.rollout.failed
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _advice_without_dashboard(leftovers: int, ray_port: int) -> str:
    """What works after a crash: leftovers of a Ray on our port block a new `serve`."""
    if leftovers:
        return (f"{leftovers} process(es) of the Ray on port {ray_port} are still running "
                f"without a working dashboard (a crashed head): {RESTART_ADVICE}")
    return "No local Ray is running. Start one with `servestack serve`"


@app.command("stop")
def stop(ray_port: int = RAY_PORT_OPTION, dashboard_port: int = DASHBOARD_PORT_OPTION) -> None:
    """Shut Serve down and stop the local Ray head on --ray-port.

    Serve is shut down through the REST API (replicas drain for the serve.ingress_drain_s
    the head was started with), then only that cluster's processes are stopped; other Ray
    clusters keep running. Exits 0 when nothing runs."""
    client = DashboardClient(f"http://{LOOPBACK}:{dashboard_port}", read_token() or "")
    remains = head_remains(ray_port)
    try:
        if remains.crashed:
            # Nothing answers a shutdown without a raylet; waiting for it made `stop` take 126 s.
            err.print(Text(f"{remains.describe()}: skipping Serve's graceful shutdown.",
                           style="yellow"), soft_wrap=True)
        elif client.gcs_healthy():
            with err.status("Shutting down Serve (replicas drain first)…"):
                client.shutdown_serve(timeout_s=serve_shutdown_timeout_s(ray_port))
        else:
            client.version()  # DashboardUnreachableError when nothing answers at all
            err.print(Text("The head's GCS does not answer (a crashed Ray): skipping Serve's "
                           "graceful shutdown.", style="yellow"))
    except DashboardUnreachableError:
        pass  # no dashboard: nothing to shut down gracefully, the processes may still linger
    except DashboardError as error:
        err.print(Text(f"Serve shutdown failed, stopping Ray anyway: {error}", style="yellow"))
    with err.status(f"Stopping the Ray cluster on port {ray_port}…"):
        count = stop_cluster(ray_port)
        forget_cluster_address(ray_port)
        shutil.rmtree(local_haproxy_dir(ray_port), ignore_errors=True)
    if count:
        err.print(f"Stopped {count} Ray process(es) of the cluster on port {ray_port}.")
    else:
        err.print(f"No Ray cluster is running on port {ray_port}; nothing to stop.")
