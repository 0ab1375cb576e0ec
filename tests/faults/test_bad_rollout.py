"""A bad model rollout never removes a working model; the CLI says so; crashes are survivable.

Runs the real CLI (`servestack serve/status/stop`) on private ports against a stack file in
tmp_path, with the classifier alone. Every bad URI is rolled out while a client keeps
classifying: each of its requests must be answered by the old model. URIs the config can
judge never reach Ray (exit 2 with the field path). The same head then has its listening
sockets audited against docs/local.md, and the module ends with the crashes the CLI must
tell the truth about: a dead HTTP proxy, a dead raylet, then a dead GCS under `stop`.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import yaml

from apps.classifier.synthetic_tiles import synthetic_tiles
from infra.config import REPO_ROOT, STACKS_DIR
from infra.stack_file import read_stack_file
from servestack.local.free_ports import free_port
from servestack.local.head import cluster_temp_dir
from tests.faults.conftest import build_classifier_checkpoint, wait_until

pytestmark = [pytest.mark.ray, pytest.mark.faults, pytest.mark.timeout(600)]

ONE_REPLICA = {"autoscaling": {"min_replicas": 1, "max_replicas": 1},
               "resources": {"num_cpus": 0.5}}
FIELD = "apps.classifier.deployments.TileClassifier.user_config.checkpoint_uri"
TILE = synthetic_tiles(1, seed=3)[0][0]
BODY = {"tiles": [{"array": TILE.tolist()}]}


def _servestack(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "HF_HUB_OFFLINE": "1", "COLUMNS": "300"}
    servestack = Path(sys.executable).with_name("servestack")
    return subprocess.run([str(servestack), *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


class Stack:
    """The local stack file with the classifier only, rewritten per rollout."""

    def __init__(self, directory: Path, ports: dict[str, int]) -> None:
        self.directory, self.ports = directory, ports

    def write(self, settings: dict[str, Any]) -> None:
        raw = read_stack_file(STACKS_DIR / "Pulumi.local.yaml")
        raw["apps"] = {"classifier": {"deployments": {"TileClassifier": {
            **ONE_REPLICA, "user_config": settings}}}}
        document = {"config": {f"servestack:{key}": value for key, value in raw.items()}}
        (self.directory / "Pulumi.rollout.yaml").write_text(yaml.safe_dump(document))

    def serve(self, settings: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        self.write(settings)
        return _servestack(
            "serve", "--stack", "rollout", "--stacks-dir", str(self.directory),
            "--ray-port", str(self.ports["ray"]), "--dashboard-port", str(self.ports["dashboard"]),
            "--http-port", str(self.ports["http"]), "--metrics-port", str(self.ports["metrics"]),
            "--timeout", "300", timeout_s=420)

    def status(self) -> subprocess.CompletedProcess[str]:
        return _servestack("status", "--ray-port", str(self.ports["ray"]),
                           "--dashboard-port", str(self.ports["dashboard"]), timeout_s=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}/classify"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    build_classifier_checkpoint()
    ports = {"ray": free_port(), "dashboard": free_port(), "http": free_port(),
             "metrics": free_port()}
    served = Stack(tmp_path_factory.mktemp("rollout"), ports)
    started = served.serve({})
    assert started.returncode == 0, started.stdout + started.stderr
    yield served
    _servestack("stop", "--ray-port", str(ports["ray"]), "--dashboard-port",
                str(ports["dashboard"]), timeout_s=120)


class Classifying:
    """One client classifying back to back; keeps each answer's status and checkpoint sha."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    response = session.post(self.url, json=BODY, timeout=30)
                    sha = response.json().get("checkpoint", {}).get("weights_sha256", "")
                    self.answers.append((response.status_code, sha))
                except (requests.RequestException, ValueError) as error:
                    self.answers.append((0, type(error).__name__))

    def __enter__(self) -> Classifying:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=40)


def _tampered(path: Path) -> None:
    """A real checkpoint with one weight changed and the recorded checksum kept."""
    import torch

    from apps.classifier.model_store import default_checkpoint_path

    document = torch.load(default_checkpoint_path(), weights_only=True)
    document["state_dict"]["head.bias"] = document["state_dict"]["head.bias"] + 1.0
    buffer = io.BytesIO()
    torch.save(document, buffer)
    path.write_bytes(buffer.getvalue())


def _serving_sha(stack: Stack) -> str:
    response = requests.post(stack.url, json=BODY, timeout=30)
    assert response.status_code == 200, response.text
    sha: str = response.json()["checkpoint"]["weights_sha256"]
    return sha


@pytest.mark.parametrize("case", ["missing", "random bytes", "checksum mismatch", "too large",
                                  "symlink out of the roots"])
def test_a_failed_rollout_keeps_the_old_model_answering_and_serve_exits_1(
    stack: Stack, tmp_path: Path, case: str
) -> None:
    roots = [str(tmp_path)]
    settings: dict[str, Any] = {"file_roots": roots}
    target = tmp_path / "candidate.pt"
    if case == "missing":
        settings["checkpoint_uri"], reason = "models://no-such-checkpoint.pt", "no checkpoint at"
    elif case == "random bytes":
        target.write_bytes(os.urandom(4096))
        reason = "is not a readable torch checkpoint"
    elif case == "checksum mismatch":
        _tampered(target)
        reason = "weights checksum mismatch"
    elif case == "too large":
        target.write_bytes(os.urandom(4096))
        settings["max_checkpoint_bytes"], reason = 2048, "is larger than 2048 bytes"
    else:
        target.symlink_to("/etc/passwd")
        reason = "outside the allowed checkpoint directories"
    settings.setdefault("checkpoint_uri", target.as_uri())
    before = _serving_sha(stack)
    with Classifying(stack.url) as client:
        time.sleep(1)
        result = stack.serve(settings)
        time.sleep(1)
    output = result.stdout + result.stderr
    print(f"\n{case}: serve exited {result.returncode}; {len(client.answers)} requests during "
          f"the rollout; last lines:\n" + "\n".join(output.strip().splitlines()[-4:]))
    assert result.returncode == 1, output
    assert settings["checkpoint_uri"] in output and reason in output
    assert client.answers and all(answer == (200, before) for answer in client.answers), \
        sorted(set(client.answers))
    assert _serving_sha(stack) == before
    status = stack.status()
    shown = status.stdout + status.stderr
    assert status.returncode == 1, shown
    assert "FAILED" in shown and "still serving" in shown and reason in shown
    # Rolling back to the good URI clears the failure.
    assert stack.serve({}).returncode == 0
    assert stack.status().returncode == 0


@pytest.mark.parametrize(("uri", "fragment"), [
    ("file:///etc/passwd", "outside the allowed checkpoint directories"),
    ("file:///dev/zero", "outside the allowed checkpoint directories"),
    ("file:///mnt/models/../../etc/passwd", "outside the allowed checkpoint directories"),
    ("models://../x", "names a file inside the model store"),
    ("ftp://example.com/model.pt", "unknown checkpoint URI scheme 'ftp'"),
])
def test_uris_the_config_can_judge_never_reach_ray(stack: Stack, uri: str, fragment: str) -> None:
    before = _serving_sha(stack)
    result = stack.serve({"checkpoint_uri": uri})
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert FIELD in output and fragment in output
    assert _serving_sha(stack) == before


def _cluster_pids(stack: Stack) -> list[psutil.Process]:
    """Processes naming the head's temp dir, and their children (workers retitle themselves
    `ray::ProxyActor` and so on, dropping the temp dir from their command line)."""
    temp_dir = str(cluster_temp_dir(stack.ports["ray"]))
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(temp_dir in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
                found.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    return list(found.values())


@dataclass(frozen=True)
class DocumentedListener:
    """One row of docs/local.md's port table."""

    process: str  # a piece of the process's name or command line
    ports: str  # `--http-port`, 44217, 10002-19999 or random
    loopback: bool

    def describes(self, cmdline: str, port: int, loopback: bool, ports: dict[str, int]) -> bool:
        if self.process not in cmdline or self.loopback != loopback:
            return False
        option = re.fullmatch(r"`--(\w+)-port`", self.ports)
        if option:
            return port == ports[option.group(1)]
        if self.ports == "random":
            return True
        low, _, high = self.ports.partition("-")
        return int(low) <= port <= int(high or low)


def _documented_listeners() -> list[DocumentedListener]:
    text = (REPO_ROOT / "docs" / "local.md").read_text()
    table = text.split("### Ports and what listens where", 1)[1].split("\n###", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0]]
    listeners = []
    for cells in rows[1:]:
        row = dict(zip(header, (cell.strip() for cell in cells), strict=True))
        address = row["address"]
        assert address in ("127.0.0.1", "all interfaces"), row
        listeners.append(DocumentedListener(row["process"].strip("`"), row["port"],
                                            address == "127.0.0.1"))
    return listeners


def test_every_listening_port_is_loopback_or_listed(stack: Stack) -> None:
    """Each TCP socket a process of the head listens on is described by a row of
    docs/local.md's table, address included; with Ray's defaults, 44217 and 44227 (no
    auth) listened on 0.0.0.0 and the GCS, raylet and agents on the machine's address."""
    documented = _documented_listeners()
    seen, undocumented = [], []
    for proc in _cluster_pids(stack):
        try:
            cmdline = f"{proc.name()} {' '.join(proc.cmdline())}"
            sockets = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for sock in sockets:
            if sock.status != psutil.CONN_LISTEN:
                continue
            address = ipaddress.ip_address(sock.laddr.ip)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            entry = f"{cmdline.split()[0]} {sock.laddr.ip}:{sock.laddr.port}"
            seen.append(entry)
            if not any(row.describes(cmdline, sock.laddr.port, address.is_loopback,
                                     stack.ports) for row in documented):
                undocumented.append(entry)
    print("\nlistening: " + ", ".join(sorted(seen)))
    assert any(f":{stack.ports['ray']}" in entry for entry in seen), "the GCS was not found"
    assert not undocumented, f"not described by docs/local.md: {undocumented}"


def test_the_heads_logs_are_out_of_other_users_reach(stack: Stack) -> None:
    """Ray makes the --temp-dir 0777 and the logs in it 0644; its parent is owner-only."""
    temp_dir = cluster_temp_dir(stack.ports["ray"])
    assert any(temp_dir.glob("session_*/logs/serve/*.log")), "no Serve log where expected"
    parent = temp_dir.parent.stat()
    assert (stat.S_IMODE(parent.st_mode), parent.st_uid) == (0o700, os.getuid())


def _http_ingress(stack: Stack) -> list[psutil.Process]:
    """What answers Serve's HTTP port: under serve.haproxy (the default) Ray's
    `ray::HAProxyManager` and the `haproxy` it runs, else the `ray::ProxyActor`s."""
    found = []
    for proc in _cluster_pids(stack):
        line = " ".join(proc.cmdline())
        if "HAProxyManager" in line or ("ProxyActor" in line and "HAProxy" not in line):
            found += [proc, *proc.children(recursive=True)]
    return found


def test_status_fails_while_the_http_proxy_is_dead(stack: Stack) -> None:
    proxies = _http_ingress(stack)
    assert proxies, "no proxy process of this cluster found"
    for proxy in proxies:
        with contextlib.suppress(psutil.NoSuchProcess):
            proxy.send_signal(signal.SIGKILL)
    result = stack.status()
    output = result.stdout + result.stderr
    print(f"\nstatus with the proxy killed exited {result.returncode}:\n{output[-400:]}")
    assert result.returncode == 1
    assert "does not answer" in output
    waited = wait_until(lambda: stack.status().returncode == 0, 120, interval_s=2)
    print(f"status healthy again {waited:.0f} s later (Ray restarted the proxy)")


@pytest.mark.parametrize("core", ["raylet", "gcs_server"])
def test_after_a_head_process_died_status_and_serve_advise_what_works_and_stop_is_quick(
    stack: Stack, core: str
) -> None:
    """Before: after the raylet died both advised `servestack serve` (which failed) and
    `stop` blocked 126 s; after the GCS died `stop` left the dashboard and agents running."""
    victims = [p for p in _cluster_pids(stack) if p.name() == core]
    assert victims, f"no {core} of this cluster found"
    for victim in victims:
        victim.send_signal(signal.SIGKILL)
    advice = "run `servestack stop`, then `servestack serve`"
    status = stack.status()
    served = stack.serve({})
    for command, result in (("status", status), ("serve", served)):
        output = result.stdout + result.stderr
        print(f"\n{command} with the {core} killed exited {result.returncode}: {output[-300:]}")
        assert result.returncode == 1, output
        assert core in output and advice in output, output
    started = time.monotonic()
    stopped = _servestack("stop", "--ray-port", str(stack.ports["ray"]), "--dashboard-port",
                          str(stack.ports["dashboard"]), timeout_s=120)
    took = time.monotonic() - started
    print(f"stop after the {core} died took {took:.1f} s: {stopped.stderr.strip()[-300:]}")
    assert stopped.returncode == 0, stopped.stderr
    assert took < 30
    assert not [(p.pid, p.name()) for p in _cluster_pids(stack) if p.is_running()]
    assert "Start one with `servestack serve`" in stack.status().stderr
    again = stack.serve({})  # the advice, followed
    assert again.returncode == 0, again.stdout + again.stderr
    assert _serving_sha(stack)
