"""Stopping one local Ray cluster, and only that one.

`ray stop` ends every Ray process of the user on the machine, including a notebook's or
another project's cluster. This finds the processes of the cluster whose GCS listens on
our port — those that name that address or the head's private --temp-dir (its session dir
lives below) on their command line, plus their children (workers, agents) — and stops them
in `ray stop`'s order: raylet first, GCS last. The temp dir finds orphans too: after the GCS
or raylet dies, the dashboard and agents are reparented but still name it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import psutil

from servestack.local.head import cluster_temp_dir

GRACE_PERIOD_S = 10.0


def _is_ray_program(cmdline: list[str]) -> bool:
    return any("/ray/" in part or part.startswith("ray.") for part in cmdline)


def _names_cluster(cmdline: list[str], gcs_port: int) -> bool:
    for part in cmdline:
        if part == f"--gcs_server_port={gcs_port}":
            return True
        if part.startswith(("--gcs-address=", "--address=")) and part.endswith(f":{gcs_port}"):
            return True
    return False


def _names_temp_dir(cmdline: list[str], temp_dir: str) -> bool:
    return any(temp_dir in part for part in cmdline)


def cluster_processes(gcs_port: int) -> list[psutil.Process]:
    """This user's Ray processes of the cluster at `gcs_port`, children included."""
    temp_dir = str(cluster_temp_dir(gcs_port))
    uid = os.getuid()
    own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if proc.info["uids"].real != uid or proc.pid in own:
                continue
            if _is_ray_program(cmdline) and (_names_cluster(cmdline, gcs_port)
                                             or _names_temp_dir(cmdline, temp_dir)):
                found[proc.pid] = proc
                found.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    return sorted(found.values(), key=lambda p: p.pid)


def _stage(proc: psutil.Process) -> int:
    """0: raylet and its workers, 1: everything else, 2: the GCS, which others report to."""
    try:
        name = proc.name()
    except psutil.Error:
        return 1
    return {"raylet": 0, "gcs_server": 2}.get(name, 1)


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
    from ray._common.utils import get_ray_address_file  # Ray's own idea of where it lives

    path = Path(str(get_ray_address_file(None)))
    try:
        if path.read_text().strip().endswith(f":{gcs_port}"):
            path.unlink()
    except FileNotFoundError:
        return
