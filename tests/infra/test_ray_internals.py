"""The Ray internals behind infra.ray_internals still exist and still mean the same, and
nothing else in the repo reaches into Ray's privates.

A Ray upgrade that renames, removes or reshapes one fails here, naming the attribute, instead
of as a wrong capacity verdict, a dashboard without its filters or a rehearsal whose fake
nodes never start. No cluster runs: each check imports, inspects or calls a pure function.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import ray_internals
from infra.config import REPO_ROOT
from tests.internals import assert_pinned_as_documented, assert_takes, internal

DOOR = Path("infra/ray_internals.py")
DOOR_TEST = Path("tests/infra/test_ray_internals.py")
DOORS = (DOOR, DOOR_TEST)
"""The door, and this test, which names Ray's internals to check that each still exists."""
ROOMS = ("apps", "infra", "servestack", "policies", "benchmarks", "tests")
FAKE_PROVIDER = "ray.autoscaler._private.fake_multi_node.node_provider"
FACTORY = "ray.dashboard.modules.metrics.grafana_dashboard_factory"

# (module, attribute, the parameters the door passes, in order) for every callable.
CALLABLES = [
    ("ray.autoscaler._private.kuberay.autoscaling_config",
     "_derive_autoscaling_config_from_ray_cr", ["ray_cr"]),
    ("ray._common.utils", "resources_from_ray_options", ["options_dict"]),
    ("ray._common.utils", "get_ray_address_file", ["temp_dir"]),
    (FACTORY, "_generate_grafana_panels", ["config", "global_filters", "log_link_url"]),
    (FACTORY, "_clean_empty_filters", ["expr"]),
    ("ray.dashboard.modules.metrics.default_impl", "get_serve_dashboard_config", []),
    ("ray._private.node", "Node", ["ray_params", "head", "shutdown_at_exit", "spawn_reaper"]),
    ("ray.serve._private.build_app", "build_app", ["app", "name"]),
    ("ray.serve.context", "_get_global_client", []),
    ("ray.serve._private.application_state", "_get_shared_build_app_label_selector",
     ["config"]),
    ("ray.serve._private.haproxy", "get_haproxy_binary", []),
]
# (module, class, method, the parameters the door passes, in order) for every method.
METHODS = [
    ("ray.serve._private.client", "ServeControllerClient", "deploy_apps", ["self", "config"]),
]
RAY_PARAMS = ["min_worker_port", "max_worker_port", "dashboard_port",
              "dashboard_agent_listen_port", "num_cpus", "num_gpus", "memory",
              "object_store_memory", "resources", "labels", "redis_address", "gcs_address",
              "env_vars"]
"""The keywords the door's fake provider passes to ray._private.parameter.RayParams."""

# (our constant, Ray's module, Ray's attribute): a literal of ours that must equal Ray's.
COPIED_CONSTANTS = [
    ("HEAD_GROUP_NAME", "ray.autoscaler._private.kuberay.autoscaling_config",
     "_HEAD_GROUP_NAME"),
    ("AUTOSCALER_METRICS_PORT", "ray.autoscaler._private.constants", "AUTOSCALER_METRIC_PORT"),
    ("FAKE_HEAD_NODE_ID", FAKE_PROVIDER, "FAKE_HEAD_NODE_ID"),
    ("FAKE_HEAD_NODE_TYPE", FAKE_PROVIDER, "FAKE_HEAD_NODE_TYPE"),
]
# (module, attribute, type) for each constant the door reads from Ray when called.
READ_CONSTANTS = [
    ("ray._common.utils", "RESOURCE_CONSTRAINT_PREFIX", str),
    ("ray._private.ray_constants", "RESOURCES_ENVIRONMENT_VARIABLE", str),
    ("ray._private.ray_constants", "LABELS_ENVIRONMENT_VARIABLE", str),
    ("ray.serve._private.constants", "RAY_SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S", int | float),
    ("ray.serve._private.constants", "NO_ROUTES_MESSAGE", str),
    ("ray.serve._private.constants", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S",
     int | float),
]
FAKE_NODE_ENV = ["FAKE_CLUSTER_ENV", "CLOUD_INSTANCE_ID_ENV", "NODE_TYPE_NAME_ENV",
                 "OVERRIDE_NODE_ID_ENV"]
"""Environment variables the fake provider's nodes are told who they are by."""
RAY_DASHBOARD_GENERATORS = {
    "DEFAULT": "generate_default_grafana_dashboard",
    "SERVE": "generate_serve_grafana_dashboard",
    "SERVE_DEPLOYMENT": "generate_serve_deployment_grafana_dashboard",
}


attribute = functools.partial(internal, "ray")


@pytest.mark.parametrize("internal_callable", CALLABLES, ids=[f"{m}.{n}" for m, n, _ in CALLABLES])
def test_each_internal_callable_takes_what_we_pass(
    internal_callable: tuple[str, str, list[str]],
) -> None:
    assert_takes("ray", *internal_callable)


@pytest.mark.parametrize(("module", "owner", "name", "parameters"), METHODS,
                         ids=[f"{o}.{n}" for _, o, n, _ in METHODS])
def test_each_internal_method_takes_what_we_pass(
    module: str, owner: str, name: str, parameters: list[str],
) -> None:
    method = getattr(attribute(module, owner), name, None)
    assert callable(method), f"{module}.{owner}.{name} is gone"
    names = list(inspect.signature(method).parameters)
    assert names[: len(parameters)] == parameters, (
        f"{module}.{owner}.{name}{inspect.signature(method)}")


def test_an_actor_handle_still_tells_its_id() -> None:
    handle = attribute("ray.actor", "ActorHandle")
    assert isinstance(inspect.getattr_static(handle, "_actor_id", None), property), (
        "ray.actor.ActorHandle._actor_id is no longer a property")
    assert callable(getattr(attribute("ray", "ActorID"), "hex", None)), "ray.ActorID.hex"


def test_the_installed_ray_is_the_one_the_door_was_tested_on() -> None:
    assert_pinned_as_documented("ray", ray_internals.__doc__)


def test_ray_params_takes_every_keyword_the_fake_provider_passes() -> None:
    accepted = inspect.signature(attribute("ray._private.parameter", "RayParams")).parameters
    missing = [name for name in RAY_PARAMS if name not in accepted]
    assert not missing, f"ray._private.parameter.RayParams no longer takes {missing}"


@pytest.mark.parametrize(("ours", "module", "name"), COPIED_CONSTANTS,
                         ids=[o for o, _, _ in COPIED_CONSTANTS])
def test_each_copied_constant_equals_rays(ours: str, module: str, name: str) -> None:
    assert getattr(ray_internals, ours) == attribute(module, name), (
        f"infra.ray_internals.{ours} = {getattr(ray_internals, ours)!r}, but {module}.{name} = "
        f"{attribute(module, name)!r}")


@pytest.mark.parametrize(("module", "name", "kind"), READ_CONSTANTS,
                         ids=[n for _, n, _ in READ_CONSTANTS])
def test_each_constant_the_door_reads_is_still_there(module: str, name: str, kind: Any) -> None:
    value = attribute(module, name)
    assert isinstance(value, kind), f"{module}.{name} = {value!r}"


@pytest.mark.parametrize("ours", FAKE_NODE_ENV)
def test_each_fake_node_variable_is_one_the_fake_provider_uses(ours: str) -> None:
    source = inspect.getsource(importlib.import_module(FAKE_PROVIDER))
    assert f'"{getattr(ray_internals, ours)}"' in source, (
        f"{FAKE_PROVIDER} no longer mentions {getattr(ray_internals, ours)}")


def test_the_label_matcher_is_rays_and_matches() -> None:
    matcher = attribute("ray._raylet", "node_labels_match_selector")
    assert callable(matcher), "ray._raylet.node_labels_match_selector"
    assert ray_internals.node_labels_match_selector({"pool": "gpu"}, {"pool": "gpu"})
    assert not ray_internals.node_labels_match_selector({"pool": "cpu"}, {"pool": "gpu"})


def test_serves_demand_and_the_accelerator_resource_read_as_ray_schedules() -> None:
    demand = ray_internals.resources_from_ray_options({"num_cpus": 2, "accelerator_type": "L4"})
    assert demand["CPU"] == 2, demand
    assert demand[ray_internals.accelerator_type_resource("L4")] == pytest.approx(0.001), demand


def test_the_fake_provider_has_what_the_subclass_builds_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parent still creates each node through the method the subclass overrides, and an
    instance carries the members the override reads and writes."""
    parent = attribute(FAKE_PROVIDER, "FakeMultiNodeProvider")
    override = "_create_node_with_resources_and_labels"
    assert f"self.{override}(" in inspect.getsource(parent.create_node_with_resources_and_labels), (
        f"{FAKE_PROVIDER}.FakeMultiNodeProvider.create_node_with_resources_and_labels no "
        f"longer calls {override}")
    assert list(inspect.signature(getattr(parent, override)).parameters) == [
        "self", "node_config", "tags", "count", "resources", "labels"], (
        f"{FAKE_PROVIDER}.FakeMultiNodeProvider.{override}")
    monkeypatch.setenv(ray_internals.FAKE_CLUSTER_ENV, "1")
    provider_class = ray_internals.memory_aware_fake_provider(lambda: 1)
    assert issubclass(provider_class, parent)
    provider: Any = provider_class({"gcs_address": "127.0.0.1:1"}, "rehearsal")
    for member in ("lock", "_gcs_address", "_nodes", "_next_hex_node_id"):
        assert hasattr(provider, member), f"{FAKE_PROVIDER}.FakeMultiNodeProvider.{member}"
    assert provider._gcs_address == "127.0.0.1:1", "FakeMultiNodeProvider._gcs_address"
    assert isinstance(provider._nodes, dict), "FakeMultiNodeProvider._nodes"
    assert ray_internals.FAKE_HEAD_NODE_ID in provider._nodes, "FakeMultiNodeProvider._nodes"
    next_id = provider._next_hex_node_id()
    assert isinstance(next_id, str) and len(next_id) == len(ray_internals.FAKE_HEAD_NODE_ID), (
        f"FakeMultiNodeProvider._next_hex_node_id() = {next_id!r}")


def test_each_dashboard_config_has_what_the_door_reads() -> None:
    configs = ray_internals._dashboard_configs()
    assert sorted(configs) == sorted(ray_internals.GRAFANA_DASHBOARDS), sorted(configs)
    for name, config in configs.items():
        for field in ("name", "default_uid", "base_json_file_name"):
            assert getattr(config, field, None), f"DashboardConfig {name}.{field}"


@pytest.mark.parametrize("filters", [['namespace="serving"'], []], ids=["scoped", "unscoped"])
@pytest.mark.parametrize("name", sorted(RAY_DASHBOARD_GENERATORS))
def test_each_dashboard_is_byte_for_byte_the_one_rays_factory_writes(
    monkeypatch: pytest.MonkeyPatch, name: str, filters: list[str],
) -> None:
    """Ray's own generator, driven through the environment as it must be (a test may), against
    the door's, which takes the filters as an argument."""
    for override in ("UID", "LOG_LINK_URL"):
        monkeypatch.delenv(f"RAY_GRAFANA_{name}_DASHBOARD_{override}", raising=False)
        monkeypatch.delenv(f"RAY_GRAFANA_{name}_{override}", raising=False)
    monkeypatch.setenv(f"RAY_GRAFANA_{name}_DASHBOARD_GLOBAL_FILTERS", ",".join(filters))
    generate = attribute(FACTORY, RAY_DASHBOARD_GENERATORS[name])  # `import ray` sets an env
    before = dict(os.environ)
    ours = ray_internals.grafana_dashboard(name, filters)
    assert dict(os.environ) == before, "the door changed os.environ"
    expected = generate()
    assert ours == expected, (
        f"{FACTORY}._generate_grafana_dashboard changed: the door's copy of it differs")
    escaped = json.dumps(filters)[2:-2]  # as the filter sits inside the JSON's strings
    assert filters == [] or escaped in json.dumps(json.loads(expected[0])["panels"]), (
        "the filter reached no panel")


# --- the guard: no private Ray API outside the door ----------------------------------------


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "ray" and any(_is_private(part) for part in parts[1:])


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _ray_names(tree: ast.AST) -> set[str]:
    """Every name the file binds to something of Ray's (a module, a class, a function), or
    to what one of them gives (`handle = ray.get_actor(...)`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names
                         if alias.name.split(".")[0] == "ray")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
            names.update(alias.asname or alias.name for alias in node.names)
    assignments = [(target.id, node.value) for node in ast.walk(tree)
                   if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
                   for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                   if isinstance(target, ast.Name)]
    grown = True
    while grown:  # `a = ray.x(); b = a.y()`: b is Ray's too
        found = {name for name, value in assignments if _root(value) in names}
        grown = not found <= names
        names |= found
    return names


def _private_attribute(node: ast.AST, ray_names: set[str]) -> bool:
    """`ray._raylet.x`, `Schema._field`: a private attribute of something of Ray's."""
    return (isinstance(node, ast.Attribute) and _is_private(node.attr)
            and _root(node.value) in ray_names)


def _imports_private_by_name(node: ast.AST) -> bool:
    """`importlib.import_module("ray._private.x")` and the like."""
    return (isinstance(node, ast.Call) and bool(node.args)
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and _private_module(node.args[0].value))


def private_ray_uses(path: Path, relative: Path) -> Iterator[str]:
    """`file:line: what` for each private Ray import, attribute of something of Ray's, or
    private member of a subclass of a Ray class."""
    tree = ast.parse(path.read_text(), filename=str(path))
    ray_names = _ray_names(tree)
    for node in ast.walk(tree):
        where = f"{relative}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _private_module(alias.name):
                    yield f"{where}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
            for alias in node.names:
                if _private_module(f"{node.module}.{alias.name}"):
                    yield f"{where}: from {node.module} import {alias.name}"
        elif _private_attribute(node, ray_names) or _imports_private_by_name(node):
            yield f"{where}: {ast.unparse(node)}"
        elif isinstance(node, ast.ClassDef) and any(_root(base) in ray_names
                                                     for base in node.bases):
            for member in ast.walk(node):
                if isinstance(member, ast.FunctionDef) and _is_private(member.name):
                    yield f"{relative}:{member.lineno}: {node.name} overrides {member.name}"
                elif (isinstance(member, ast.Attribute) and _is_private(member.attr)
                      and _root(member.value) == "self"):
                    yield f"{relative}:{member.lineno}: {node.name} uses {ast.unparse(member)}"


def private_uses_outside_the_door(repo: Path) -> list[str]:
    return sorted(
        use
        for room in ROOMS for path in sorted((repo / room).rglob("*.py"))
        if path.relative_to(repo) not in DOORS
        for use in private_ray_uses(path, path.relative_to(repo))
    )


def test_no_private_ray_api_is_used_outside_the_door() -> None:
    assert private_uses_outside_the_door(REPO_ROOT) == [], (
        "reach Ray's privates through infra/ray_internals.py, tests too (and add the name to "
        "this test)")


def test_the_door_is_where_the_private_uses_are() -> None:
    """The guard sees the door's own uses, so an empty report above is not a blind one."""
    found = list(private_ray_uses(REPO_ROOT / DOOR, DOOR))
    assert any("ray._raylet" in use for use in found), found
    assert any("overrides _create_node_with_resources_and_labels" in use for use in found)


@pytest.mark.parametrize("source", [
    "import ray._private.node",
    "from ray._common.utils import get_ray_address_file",
    "def f():\n    from ray.serve._private.constants import X",
    "from ray.autoscaler import _private",
    "import ray\nray._raylet.node_labels_match_selector({}, {})",
    "from ray.serve.schema import ServeDeploySchema\nServeDeploySchema._private_field",
    "import importlib\nimportlib.import_module('ray._private.services')",
    "from ray.autoscaler.node_provider import NodeProvider\n"
    "class P(NodeProvider):\n    def f(self):\n        return self._nodes",
    "import ray\nhandle = ray.get_actor('x')\nhandle._actor_id.hex()",
])
@pytest.mark.parametrize("room", ["servestack", "tests/apps"])
def test_a_private_use_is_caught_wherever_it_hides(tmp_path: Path, source: str,
                                                   room: str) -> None:
    planted = tmp_path / room / "x.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(source + "\n")
    found = private_uses_outside_the_door(tmp_path)
    assert found and all(use.startswith(f"{room}/x.py:") for use in found), (source, found)


def test_only_the_door_and_its_test_may_name_rays_privates(tmp_path: Path) -> None:
    for allowed in DOORS:
        (tmp_path / allowed).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / allowed).write_text("import ray._private.services\n")
    assert private_uses_outside_the_door(tmp_path) == []


@pytest.mark.parametrize("source", [
    "import ray\nray.__version__",
    "from ray import serve\nserve.run",
    "from ray.serve.schema import ServeDeploySchema\nServeDeploySchema.model_validate({})",
    "from infra.ray_internals import FAKE_HEAD_NODE_ID",
    "class C:\n    def _mine(self):\n        return self._state",
    "import ray\nversion = ray.__version__\nrun = object()\nrun._mine",
])
def test_public_ray_and_our_own_privates_pass(tmp_path: Path, source: str) -> None:
    planted = tmp_path / "infra" / "x.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(source + "\n")
    assert private_uses_outside_the_door(tmp_path) == []


# --- nothing `pulumi up` runs changes the environment --------------------------------------

ENVIRON_WRITES = ("update", "pop", "setdefault", "clear", "popitem", "__setitem__",
                  "__delitem__")


def environ_writes(path: Path, relative: Path) -> Iterator[str]:
    """`file:line: what` for each call or assignment that changes the process environment."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (
                (node.attr in ENVIRON_WRITES and ast.unparse(node.value) == "os.environ")
                or (node.attr in ("putenv", "unsetenv") and ast.unparse(node.value) == "os")):
            yield f"{relative}:{node.lineno}: {ast.unparse(node)}"
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            for target in targets:
                if (isinstance(target, ast.Subscript)
                        and ast.unparse(target.value) == "os.environ"):
                    yield f"{relative}:{node.lineno}: {ast.unparse(target)} written"


def test_the_program_never_changes_the_environment() -> None:
    """infra/ is what `pulumi up` runs: a changed os.environ would leak between stacks and
    threads of one run."""
    found = sorted(use for path in sorted((REPO_ROOT / "infra").rglob("*.py"))
                   for use in environ_writes(path, path.relative_to(REPO_ROOT)))
    assert found == []


@pytest.mark.parametrize("source", ["import os\nos.environ['A'] = '1'",
                                    "import os\nos.environ.update(A='1')",
                                    "import os\ndel os.environ['A']",
                                    "import os\nos.putenv('A', '1')"])
def test_an_environment_write_is_caught(tmp_path: Path, source: str) -> None:
    planted = tmp_path / "x.py"
    planted.write_text(source + "\n")
    assert list(environ_writes(planted, Path("x.py"))), source


def test_the_upgrade_plans_capacity_rule_is_serves() -> None:
    """infra.upgrade_plan writes Serve's target_capacity rounding out (no Serve import in the
    program); it must give what Serve gives for every count and capacity KubeRay can send."""
    from infra.upgrade_plan import serve_replicas_at

    for replicas in range(0, 41):
        for percent in (*range(0, 101), 12.5, 33.3, 66.7):
            assert serve_replicas_at(replicas, percent) == (
                ray_internals.serve_capacity_adjusted_replicas(replicas, percent)), (
                replicas, percent)
