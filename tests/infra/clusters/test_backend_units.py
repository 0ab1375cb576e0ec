"""Each cluster backend is one unit: an SDK-free spec beside its provision module."""

from __future__ import annotations

import importlib
import sys
import tomllib

from infra.clusters.base import ClusterBackend
from infra.clusters.spec import ClusterSpec, backend_name, cluster_specs, spec_for
from infra.config import REPO_ROOT, StackConfig

SHIPPED = ("kind", "gke", "eks", "existing")
"""The backends servestack ships with; a new one joins them by its two files alone."""


def test_the_cluster_union_is_exactly_the_spec_modules_found() -> None:
    specs = cluster_specs()
    names = [backend_name(spec) for spec in specs]
    assert set(SHIPPED) <= set(names)
    assert len(set(names)) == len(names)
    orders = [spec.listing_order for spec in specs]
    assert orders == sorted(set(orders)), "listing_order: one place per backend, in order"
    assert (names[0], names[-1]) == ("kind", "existing")
    files = sorted(path.stem for path in (REPO_ROOT / "infra" / "clusters").glob("*_spec.py"))
    assert sorted(f"{backend_name(spec)}_spec" for spec in specs) == files
    union = StackConfig.model_fields["cluster"].annotation
    assert set(union.__args__) == set(specs)  # type: ignore[union-attr]


def test_every_spec_has_its_provision_module_exporting_a_backend_class() -> None:
    for spec in cluster_specs():
        name = backend_name(spec)
        backend = importlib.import_module(f"infra.clusters.{name}").BACKEND
        assert isinstance(backend, ClusterBackend), name
        assert spec_for(name) is spec


def test_each_extra_a_spec_names_installs_its_sdk() -> None:
    """...and the `backends` extra (what CI, `make install` and `pulumi install` put in)
    names each of them, so every provision module imports where the tests run."""
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    (aggregate,) = extras["backends"]
    assert aggregate.startswith("servestack[") and aggregate.endswith("]"), aggregate
    aggregated = set(aggregate.removeprefix("servestack[").removesuffix("]").split(","))
    for spec in cluster_specs():
        if spec.extra is not None:
            assert spec.extra in extras, f"{spec.__name__}.extra {spec.extra!r} is not an extra"
            assert spec.extra in aggregated, f"add {spec.extra!r} to the backends extra"
    assert aggregated <= set(extras), aggregated - set(extras)


def test_the_specs_import_no_sdk() -> None:
    """The policy pack and the offline tools read the specs; no cloud SDK may come along
    (Pulumi's and every provider's: `pulumi`, `pulumi_<provider>`)."""
    code = ("import sys; import infra.clusters.spec as s; s.cluster_specs(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('pulumi')))")
    import subprocess
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert found == "[]", found


def test_the_platforms_pool_label_comes_from_the_backend() -> None:
    from infra.stack_file import load_stack_config
    for stack in ("dev", "staging", "local"):
        config = load_stack_config(stack)
        pool = config.pools[0]
        label = type(config.cluster).node_pool_label
        labels = config.cluster.node_labels(pool)
        assert labels.items() >= pool.labels.items()
        if label is None:
            assert labels == pool.labels
        else:
            assert labels[label] == pool.name
    assert issubclass(spec_for("gke"), ClusterSpec)
