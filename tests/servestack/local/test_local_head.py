"""The head's size, command line and environment derive from the stack; taken ports fail early."""

from __future__ import annotations

import math
import os
import socket
import stat
from pathlib import Path

import pytest

from infra.config import REPO_ROOT, ServeOptions
from infra.serve_config import build_serve_config, serve_config_for, worker_group_selectors
from infra.stack_file import load_stack_config
from servestack.local.dashboard import DashboardClient, DashboardUnreachableError
from servestack.local.head import (
    HeadError,
    LocalPorts,
    check_ports_free,
    embedded_node_labels,
    ensure_private_temp_root,
    head_environment,
    ray_start_argv,
    required_cpus,
    wait_for_dashboard,
)


def test_head_cpus_hold_every_deployment_at_max_replicas() -> None:
    apps = load_stack_config("local").applications
    worst_case = sum(d.max_replicas * d.resources.num_cpus for a in apps for d in a.deployments)
    assert required_cpus(apps, host_cpus=1) == math.ceil(worst_case)


def test_head_cpus_are_never_fewer_than_the_machine_has() -> None:
    apps = load_stack_config("local").applications
    assert required_cpus(apps, host_cpus=64) == 64
    assert required_cpus(apps) >= (os.cpu_count() or 1)


def test_ray_start_binds_dashboard_to_loopback_on_the_chosen_ports() -> None:
    argv = ray_start_argv(LocalPorts(http=18000, gcs=16379, dashboard=18265, metrics=18080), 3)
    assert argv[1:3] == ["start", "--head"]
    for flag in ("--dashboard-host=127.0.0.1", "--node-ip-address=127.0.0.1", "--port=16379",
                 "--dashboard-port=18265", "--metrics-export-port=18080", "--num-cpus=3"):
        assert flag in argv


def test_the_local_node_carries_the_worker_group_label_the_local_stack_selects() -> None:
    """Every local deployment selects the `cpu` group's label, so the one node must carry it
    or no replica could be scheduled."""
    labels = embedded_node_labels(serve_config_for(load_stack_config("local")))
    assert labels == {"servestack.io/worker-group": "cpu"}
    argv = ray_start_argv(LocalPorts(http=18000), 3, labels)
    assert "--labels=servestack.io/worker-group=cpu" in argv


def test_a_stack_whose_deployments_select_several_groups_cannot_run_on_the_one_local_node(
) -> None:
    """Two GPU groups: every deployment selects its own group, and one node has one value."""
    apps = {app.name: app for app in load_stack_config("dev").applications}
    mig = {"resources": {"num_cpus": 1, "num_gpus": 1,
                         "accelerator_resource": "nvidia.com/mig-1g.10gb"}}
    apps["embeddings"] = apps["embeddings"].with_overrides({"deployments": {"Embedder": mig}})
    document = build_serve_config(apps.values(), ServeOptions(),
                                  worker_group_selectors(apps.values()))
    with pytest.raises(HeadError, match="servestack rehearse"):
        embedded_node_labels(document)


def test_head_environment_enables_token_auth_offline_and_imports_the_repo() -> None:
    env = head_environment({"PYTHONPATH": "/elsewhere", "HOME": "/home/x"})
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"  # a single node, on loopback
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO_ROOT), "/elsewhere"]
    assert env["HOME"] == "/home/x"


def test_head_environment_does_not_repeat_the_repo_on_pythonpath(tmp_path: Path) -> None:
    env = head_environment({"PYTHONPATH": str(tmp_path)}, repo_root=tmp_path)
    assert env["PYTHONPATH"] == str(tmp_path)


def test_a_taken_port_is_reported_with_the_option_that_moves_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(HeadError, match=rf"{taken} \(--dashboard-port\)"):
            check_ports_free(LocalPorts(http=1, gcs=1, dashboard=taken, metrics=1))


def test_a_dashboard_that_never_comes_up_fails_the_start_with_the_last_error() -> None:
    url = LocalPorts.free().dashboard_url
    with pytest.raises(HeadError, match=r"dashboard at .* did not come up within 1 s: no Ray "
                                        r"dashboard answers"):
        wait_for_dashboard(DashboardClient(url, "token", timeout_s=1), 0.6)
    waited = DashboardClient(url, "token", timeout_s=1).wait_until_up(0.1)
    assert isinstance(waited, DashboardUnreachableError)


def test_every_heads_temp_dir_lives_in_an_owner_only_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray makes a --temp-dir 0777 and its logs 0644; the parent keeps other users out."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    shared = tmp_path / f"ss-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o755)
    assert ensure_private_temp_root() == shared == LocalPorts(http=1, gcs=6379).temp_dir.parent
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700


def test_a_temp_root_that_is_a_symlink_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"ss-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(HeadError, match="not a directory of yours"):
        ensure_private_temp_root()
