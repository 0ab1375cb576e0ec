"""Finding, judging and stopping one local Ray cluster, and only that one.

`ray stop` ends every Ray process of the user on the machine, including a notebook's or
another project's cluster. This finds the processes of the cluster whose GCS listens on
our port: those that name that address or the head's private --temp-dir (its session dir
lives below) on their command line, those writing their logs into it, and their children.
The temp dir finds orphans too: after the GCS or raylet dies, the dashboard is reparented
but still names it, and workers (retitled `ray::ServeReplica…`, their command line no
longer naming anything) still write their stdout into the session's `logs/`.
HAProxy (serve.haproxy) is not a Ray program and outlives the proxy actor that started it,
holding the HTTP port: it is found by the cluster's private HAProxy dir on its command line.

They stop in `ray stop`'s order: raylet first, GCS last. A cluster whose GCS or raylet
is gone is a crashed head: nothing in it can be shut down gracefully, and only
`servestack stop` clears what is left of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from infra.ray_internals import ray_address_file
from servestack.local.haproxy import local_haproxy_dir
from servestack.local.head import cluster_temp_dir

GRACE_PERIOD_S = 10.0
HEAD_CORE = ("gcs_server", "raylet")
"""The head's executables (Ray's own names for them); without either the head is crashed."""
RESTART_ADVICE = "run `servestack stop`, then `servestack serve`"
"""What works after any crash of the local head: `serve` alone cannot reuse or replace it."""


def _is_ray_program(cmdline: list[str]) -> bool:
    # Workers and agents retitle themselves `ray::<Class>`; dashboard modules `ray-dashboard-…`.
    return any("/ray/" in part or part.startswith(("ray.", "ray::", "ray-dashboard-"))
               for part in cmdline)


def _names_cluster(cmdline: list[str], gcs_port: int) -> bool:
    for part in cmdline:
        if part == f"--gcs_server_port={gcs_port}":
            return True
        if part.startswith(("--gcs-address=", "--address=")) and part.endswith(f":{gcs_port}"):
            return True
    return False


def _mentions(text: str, temp_dir: str) -> bool:
    """`temp_dir` itself or a path below it, not a sibling sharing its prefix (port 6379 in
    `ss-0/63790`)."""
    start = text.find(temp_dir)
    while start != -1:
        end = start + len(temp_dir)
        if end == len(text) or text[end] in (os.sep, " ", ","):
            return True
        start = text.find(temp_dir, end)
    return False


def _names_temp_dir(cmdline: list[str], temp_dir: str) -> bool:
    return any(_mentions(part, temp_dir) for part in cmdline)


def _writes_into(proc: psutil.Process, temp_dir: str) -> bool:
    """Whether a process has a file below the temp dir open: a worker's own log files."""
    try:
        return any(_mentions(f.path, temp_dir) for f in proc.open_files())
    except psutil.Error:
        return False


def cluster_processes(gcs_port: int) -> list[psutil.Process]:
    """This user's Ray processes of the cluster at `gcs_port`, children and orphans included."""
    temp_dir = str(cluster_temp_dir(gcs_port))
    haproxy_dir = str(local_haproxy_dir(gcs_port))
    uid = os.getuid()
    own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["uids"].real != uid or proc.pid in own:
                continue
            ray_of_ours = _is_ray_program(cmdline) and (_names_cluster(cmdline, gcs_port)
                                                        or _names_temp_dir(cmdline, temp_dir)
                                                        or _writes_into(proc, temp_dir))
            if ray_of_ours or _names_temp_dir(cmdline, haproxy_dir):
                found[proc.pid] = proc
                found.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    return sorted(found.values(), key=lambda p: p.pid)


@dataclass(frozen=True)
class HeadRemains:
    """What runs of the cluster at a port: its processes and which core ones are gone."""

    gcs_port: int
    processes: tuple[psutil.Process, ...]
    missing: tuple[str, ...]

    @property
    def crashed(self) -> bool:
        """Processes of the cluster run, but its GCS or raylet does not."""
        return bool(self.processes) and bool(self.missing)

    def describe(self) -> str:
        return (f"The {' and '.join(self.missing)} of the Ray on port {self.gcs_port} "
                f"{'is' if len(self.missing) == 1 else 'are'} dead and "
                f"{len(self.processes)} of its processes are left (a crashed head)")


def head_remains(gcs_port: int) -> HeadRemains:
    processes = cluster_processes(gcs_port)
    running = {_name(proc) for proc in processes if _alive(proc)}
    missing = tuple(core for core in HEAD_CORE if core not in running)
    return HeadRemains(gcs_port, tuple(processes), missing)


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return ""


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stage(proc: psutil.Process) -> int:
    """0: raylet and its workers, 1: everything else, 2: the GCS, which others report to."""
    return {"raylet": 0, "gcs_server": 2}.get(_name(proc), 1)


def stop_cluster(gcs_port: int, grace_period_s: float = GRACE_PERIOD_S) -> int:
    """SIGTERM the cluster in stages, SIGKILL what outlives the grace period; returns the count."""
    processes = cluster_processes(gcs_port)
    stages: list[list[psutil.Process]] = [[], [], []]
    raylet_children: set[int] = set()
    for proc in processes:
        if _stage(proc) == 0:
            raylet_children.update(child.pid for child in _children(proc))
    for proc in processes:
        stage = 0 if proc.pid in raylet_children else _stage(proc)
        stages[stage].append(proc)
    for group in stages:
        _terminate(group, grace_period_s / len(stages))
    return len(processes)


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _terminate(processes: Iterable[psutil.Process], grace_period_s: float) -> None:
    alive = []
    for proc in processes:
        try:
            proc.terminate()
            alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    _, survivors = psutil.wait_procs(alive, timeout=grace_period_s)
    for proc in survivors:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(survivors, timeout=2)


def forget_cluster_address(gcs_port: int) -> None:
    """Drop Ray's "latest cluster" file if it names ours, as `ray stop` does, so a later
    `ray.init()` starts a fresh Ray instead of dialling a dead one."""
    path = ray_address_file()  # Ray's own idea of where it lives
    try:
        if path.read_text().strip().endswith(f":{gcs_port}"):
            path.unlink()
    except FileNotFoundError:
        return
