"""Apps from other packages: found through the `servestack.apps` entry point, loaded only
when a stack names them, and loaded without Ray.

The installed example (examples/team-app, `make install`) is the real thing; the broken
registrations are real too: a distribution's metadata written to a directory on sys.path,
which importlib.metadata reads exactly like an installed package's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.catalog import (
    CATALOG,
    ENTRY_POINT_GROUP,
    app_spec,
    known_apps,
    registered_entry_points,
    registration_snippet,
)
from apps.spec import SpecError
from infra.config import REPO_ROOT, StackConfigError, parse_stack_config
from infra.stack_file import read_stack_file

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "team-app.yaml"
EXAMPLE = "servestack-team-app"


def install_fake_distribution(root: Path, name: str, entry_points: dict[str, str],
                              modules: dict[str, str]) -> None:
    """What `pip install` leaves behind, minus the files pip itself needs."""
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    registered_entry_points.cache_clear()
    yield
    registered_entry_points.cache_clear()


def test_the_installed_example_app_is_registered_beside_the_shipped_ones() -> None:
    assert EXAMPLE in {point.dist.name for points in registered_entry_points().values()
                       for point in points if point.dist is not None}, (
        "examples/team-app is not installed: run `make install`")
    assert set(known_apps()) == {*CATALOG, "greeter"} | set(registered_entry_points())
    spec = app_spec("greeter")
    assert (spec.name, spec.import_path) == ("greeter", "team_app.app:app")


def test_a_stack_resolves_a_registered_app_without_importing_ray() -> None:
    """validate_stack resolves the apps through parse_stack_config: the spec module is
    imported, Ray (which the app module needs) is not."""
    code = textwrap.dedent(f"""
        import sys
        from infra.config import parse_stack_config
        from infra.stack_file import read_stack_file
        from pathlib import Path
        stack = parse_stack_config("team-app", read_stack_file(Path({str(FIXTURE)!r})))
        (app,) = stack.applications
        assert app.deployments[0].user_config.greeting == "welcome", app
        assert "team_app.spec" in sys.modules
        assert "team_app.app" not in sys.modules
        loaded = sorted(name for name in sys.modules if name == "ray" or name.startswith("ray."))
        assert not loaded, loaded
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_an_unknown_app_names_every_known_one_and_how_to_register_it() -> None:
    raw = read_stack_file(FIXTURE)
    raw["apps"] = {"greeter": {}, "translator": {}}
    with pytest.raises(StackConfigError) as error:
        parse_stack_config("team-app", raw)
    problems = dict(error.value.problems)
    assert list(problems) == ["apps.translator"]
    message = problems["apps.translator"]
    assert str(list(known_apps())) in message
    assert registration_snippet("translator") in message
    assert '[project.entry-points."servestack.apps"]' in message
    assert "docs/apps.md" in message


SPEC_MODULE = """
    from apps.embeddings.spec import EMBEDDINGS
    RENAMED = EMBEDDINGS.model_copy(update={"name": "other", "route_prefix": "/other"})
    NOT_A_SPEC = {"name": "dict-app"}
    raise_on_import = None
"""


@pytest.mark.parametrize(("name", "target", "words"), [
    ("dict-app", "fake_specs:NOT_A_SPEC", "is of type dict, not apps.spec.ApplicationSpec"),
    ("renamed", "fake_specs:RENAMED", "names its app 'other'"),
    ("broken", "fake_broken:SPEC", "does not load: ModuleNotFoundError"),
    ("embeddings", "fake_specs:RENAMED", "is a shipped app and is also registered by"),
])
def test_a_bad_registration_is_named_at_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None,
    name: str, target: str, words: str,
) -> None:
    install_fake_distribution(tmp_path, "fake-team", {name: target}, {
        "fake_specs": SPEC_MODULE, "fake_broken": "import team_that_does_not_exist\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SpecError) as error:
        app_spec(name)
    ((path, message),) = error.value.problems
    assert path == "<root>" and words in message


def test_an_app_registered_twice_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None,
) -> None:
    for dist in ("team-a", "team-b"):
        install_fake_distribution(tmp_path / dist, dist, {"twice": "fake_twice:SPEC"}, {})
        monkeypatch.syspath_prepend(str(tmp_path / dist))
    with pytest.raises(SpecError) as error:
        app_spec("twice")
    assert "registered more than once, by ['team-a', 'team-b']" in str(error.value)
