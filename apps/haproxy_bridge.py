"""Keep a node's ingress answering between the death of its HAProxy and Ray's new proxy.

Ray 2.60 notices a dead HAProxy only through its proxy health check (`show info` on the admin
socket, failing three periods in a row), then replaces the whole proxy actor: a new worker
process, a fresh HAProxy with an empty route table, then the routes. Measured on two busy
cores that was 25-40 s with the port refusing connections, then seconds of 404s for apps that
exist.

So every HAProxy the config wrapper starts gets a guardian: a small process that waits for
that HAProxy to exit. When it exits while Ray's proxy actor lives and no successor answers the
admin socket (a crash or a kill, not a reload and not Ray's own stop), the guardian starts a
*bridge*: the same HAProxy on the same config, the one Ray last loaded, routes and all, but
with its admin socket moved aside. The listeners are back in well under a second, and Ray
still sees the admin socket dead, so it replaces its proxy as before. The next HAProxy Ray
starts takes the bridge over with `-sf` (the wrapper adds the bridge's pid): HAProxy's own
handover, listeners passed on, requests in flight finished. That first HAProxy of Ray's new
proxy has no route table yet; while a bridge serves, it starts on the bridge's (the node's
last loaded one) instead, until Ray sends its own a moment later.

Stdlib only: it forks from the wrapper at every HAProxy (re)load.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BRIDGE_CONFIG = "servestack-bridge.cfg"
RESUMED_CONFIG = "servestack-resumed.cfg"
BRIDGE_SOCKET = "b.sock"
"""The bridge's admin socket, beside Ray's. HAProxy caps a socket path near 100 bytes and
servestack sizes its dirs to just fit Ray's `admin.sock`: a name no longer than Ray's fits
wherever Ray's does."""
BRIDGE_PID = "servestack-bridge.pid"
STOP_GRACE_S = 0.3
"""Ray's own stop kills HAProxy, then the proxy actor within moments: a death the actor
outlives by this long is not Ray's doing."""
BRIDGE_MAX_S = 120.0
"""Ray replaces an unhealthy proxy within its health-check periods plus an actor start; a
bridge nobody took over by then is stopped, so a lost cluster leaves nothing listening."""
ORPHAN_S = 15.0
"""A bridge on a node with no Ray proxy actor (`ray::HAProxyManager`) for this long serves
nobody's Serve any more (Serve shut down): it stops then, not at BRIDGE_MAX_S."""
WATCH_PERIOD_S = 0.5
MANAGER_TITLE = b"ray::HAProxyManager"
"""The process title Ray gives the proxy actor's worker under HAProxy."""
SOCKET_TIMEOUT_S = 1.0
_STATS_SOCKET = re.compile(r"^(\s*stats socket )(\S+)(.*)$", re.MULTILINE)


def admin_socket(config: str) -> str | None:
    """The admin socket Ray's health check and reloads talk to (`stats socket` in global)."""
    match = _STATS_SOCKET.search(config)
    return match.group(2) if match else None


def answering_pid(socket_path: str) -> int | None:
    """Pid of the HAProxy answering `show info` on `socket_path`, None if nothing answers."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(SOCKET_TIMEOUT_S)
            conn.connect(socket_path)
            conn.sendall(b"show info\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
    except OSError:
        return None
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("Pid:"):
            with contextlib.suppress(ValueError):
                return int(line.split(":", 1)[1])
    return None


def bridge_socket(ray_socket: str) -> str:
    """Beside Ray's admin socket, and never a longer path than it."""
    ray_path = Path(ray_socket)
    name = BRIDGE_SOCKET if len(BRIDGE_SOCKET) <= len(ray_path.name) else "b"
    return str(ray_path.with_name(name))


def bridge_config(config: str) -> str:
    """The loaded config with its admin socket moved aside, so Ray's health check keeps
    failing and Ray still replaces its proxy."""
    ray_socket = admin_socket(config)
    return config if ray_socket is None else with_socket(config, bridge_socket(ray_socket))


def live_bridge(workdir: Path) -> int | None:
    """The pid of this node's bridge, if one is serving (its pid file may be stale)."""
    try:
        pid = int((workdir / BRIDGE_PID).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(workdir / BRIDGE_CONFIG).encode() in cmdline else None


def with_socket(config: str, socket_path: str) -> str:
    return _STATS_SOCKET.sub(lambda m: f"{m.group(1)}{socket_path}{m.group(3)}", config, count=1)


def with_takeover(args: Sequence[str], config_at: int, routes_loaded: bool) -> list[str]:
    """HAProxy's argv, told to take over the bridge's listeners (`-sf`) if one is serving;
    without routes of its own, on the bridge's config with Ray's admin socket."""
    out = list(args)
    config_path = Path(out[config_at])
    workdir = config_path.parent
    bridge = live_bridge(workdir)
    if bridge is None:
        return out
    ray_socket = admin_socket(config_path.read_text())
    if not routes_loaded and ray_socket is not None:
        resumed = workdir / RESUMED_CONFIG
        resumed.write_text(with_socket((workdir / BRIDGE_CONFIG).read_text(), ray_socket))
        out[config_at] = str(resumed)
    if "-sf" in out:
        out.insert(out.index("-sf") + 1, str(bridge))
    else:
        out += ["-sf", str(bridge)]
    return out


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] not in {"Z", "X"}


def parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def _proxy_actor_running() -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().startswith(MANAGER_TITLE):
                    return True
    return False


def _watch(bridge: subprocess.Popen[bytes], raylet_pid: int | None) -> bool:
    """Wait while the bridge serves; True once it exited (taken over), False when it must
    stop: its Ray node is gone, no proxy actor came back, or BRIDGE_MAX_S passed."""
    started = last_manager = time.monotonic()
    while bridge.poll() is None:
        now = time.monotonic()
        if raylet_pid is not None and not _alive(raylet_pid):
            return False
        if _proxy_actor_running():
            last_manager = now
        if now - last_manager > ORPHAN_S or now - started > BRIDGE_MAX_S:
            return False
        time.sleep(WATCH_PERIOD_S)
    return True


def _wait_for_exit(pid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        select.select([pidfd], [], [])
        return
    while _alive(pid):
        time.sleep(0.05)


def guard(haproxy_pid: int, pidfd: int | None, actor_pid: int, binary: str,
          config_path: Path, dash_r: bool) -> None:
    """Wait for `haproxy_pid` to exit; bridge the gap if it died under a live proxy actor."""
    _wait_for_exit(haproxy_pid, pidfd)
    config = config_path.read_text()
    ray_socket = admin_socket(config)
    if ray_socket is None or answering_pid(ray_socket) is not None:
        return  # a reload: the successor owns the socket
    raylet_pid = parent_of(actor_pid)
    time.sleep(STOP_GRACE_S)
    if not _alive(actor_pid) or answering_pid(ray_socket) is not None:
        return  # Ray stopped its proxy, or already started the next HAProxy
    workdir = config_path.parent
    bridged = workdir / BRIDGE_CONFIG
    bridged.write_text(bridge_config(config))
    argv = [binary, "-db", "-f", str(bridged), *(["-dR"] if dash_r else [])]
    print(f"servestack-haproxy: HAProxy {haproxy_pid} died under a live proxy; bridging "
          f"with the last loaded config until Ray's next HAProxy takes over", file=sys.stderr,
          flush=True)
    # `servestack stop` SIGTERMs every process of the cluster: the bridge goes with its guardian.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    bridge = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    (workdir / BRIDGE_PID).write_text(str(bridge.pid))
    try:
        if not _watch(bridge, raylet_pid):
            bridge.send_signal(signal.SIGUSR1)  # soft stop: finish what is in flight
            with contextlib.suppress(subprocess.TimeoutExpired):
                bridge.wait(timeout=30)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        with contextlib.suppress(OSError):
            if live_bridge(workdir) in (None, bridge.pid):
                (workdir / BRIDGE_PID).unlink()


def start_guardian(binary: str, config_path: Path, args: Sequence[str]) -> None:
    """Fork a guardian for the HAProxy this process is about to exec into.

    Double fork, so the guardian is nobody's child to reap and outlives HAProxy; the pidfd
    is opened before the exec, so the guardian waits on this very process, never on a
    recycled pid."""
    haproxy_pid, actor_pid = os.getpid(), os.getppid()
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child:
        os.close(ready_w)
        os.read(ready_r, 1)  # the guardian holds its pidfd (or gave up)
        os.close(ready_r)
        os.waitpid(child, 0)
        return
    try:
        os.close(ready_r)
        os.setsid()
        if os.fork():
            os._exit(0)
        try:
            pidfd: int | None = os.pidfd_open(haproxy_pid)
        except (AttributeError, OSError):
            pidfd = None
        os.write(ready_w, b"1")
        os.close(ready_w)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        keep = {0, 1, 2, pidfd} if pidfd is not None else {0, 1, 2}
        for fd in range(3, 1024):
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)
        guard(haproxy_pid, pidfd, actor_pid, binary, config_path, "-dR" in args)
    except Exception as error:  # a guardian must never take HAProxy down
        print(f"servestack-haproxy: guardian stopped: {error!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(0)
