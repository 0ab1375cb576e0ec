"""Ray's pure answers are read back per Ray version; what Ray rejects is always asked again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra import ray_answers
from infra.ray_answers import CACHE_DIR_ENV, NO_CACHE_ENV, remembered
from infra.serve_config import ServeConfigError, validate_serve_config


@pytest.fixture(autouse=True)
def _private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    return tmp_path


calls: list[object] = []


@remembered
def _double(values: dict[str, int], *, pair: bool = False) -> object:
    calls.append(values)
    if values.get("bad"):
        raise ValueError("refused")
    doubled = {key: 2 * value for key, value in values.items()}
    return (doubled, "pair") if pair else doubled


def test_an_answer_is_read_back_and_a_refusal_is_asked_again() -> None:
    calls.clear()
    assert _double({"a": 1}) == {"a": 2}
    assert _double({"a": 1}) == {"a": 2}
    assert _double({"a": 1}, pair=True) == ({"a": 2}, "pair")
    assert _double({"a": 1}, pair=True) == ({"a": 2}, "pair")
    assert len(calls) == 2
    for _ in range(2):
        with pytest.raises(ValueError, match="refused"):
            _double({"bad": 1})
    assert len(calls) == 4


def test_answers_are_kept_per_ray_and_pydantic_version(_private_store: Path) -> None:
    _double({"b": 1})
    store = ray_answers.store()
    assert store is not None and store.parent == _private_store / "ray-answers"
    assert "ray-2." in store.name and "pydantic-2." in store.name
    assert list(store.glob("*/*.json"))


def test_the_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    calls.clear()
    _double({"c": 1})
    _double({"c": 1})
    assert len(calls) == 2 and ray_answers.store() is None


def test_serve_schema_rejection_is_never_remembered() -> None:
    app = {"name": "x", "import_path": "a:b", "route_prefix": "/a"}
    document = {"applications": [app, {**app, "route_prefix": "/b"}]}
    for _ in range(2):
        with pytest.raises(ServeConfigError, match="multiple configs"):
            validate_serve_config(document)


def test_a_remembered_plan_does_not_import_ray(_private_store: Path) -> None:
    """The second `plan` of a stack answers Ray's questions from the store."""
    script = ("import sys; from servestack.cli import main\n"
              "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print('ray' in sys.modules, file=sys.stderr)")
    runs = [subprocess.run([sys.executable, "-c", script, "plan", "--stack", "prod"],
                           check=True, capture_output=True, text=True) for _ in range(2)]
    assert [run.stderr.strip().splitlines()[-1] for run in runs] == ["True", "False"]
    assert runs[0].stdout == runs[1].stdout
