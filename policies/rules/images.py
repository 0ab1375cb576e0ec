"""Images and code must not move under a running cluster: tags pinned, Ray versions agreeing.

A moving tag (`latest`, none at all) or a branch archive as `working_dir` means two pods of
the same group can run different code, and a KubeRay restart silently upgrades the cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from infra.config.image import MOVING_TAGS
from infra.pod_preview import RAYSERVICE_TYPE, as_list, as_mapping, ray_cluster_spec
from policies.rules.workloads import containers

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_RAY_VERSION_IN_TAG = re.compile(r"^(\d+\.\d+\.\d+)(?:$|[-_.])")
_TAG_WORD = re.compile(r"[-_.]")
# An immutable archive names a commit or content hash; branch archives move with every push.
_IMMUTABLE_ID = re.compile(r"[0-9a-f]{16,64}")
_MOVING_REF = re.compile(
    r"refs/heads/|/(?:main|master|trunk|develop|head|latest)(?:\.zip|\.tar\.gz|/|$)", re.I
)


@dataclass(frozen=True)
class ImageReference:
    repository: str
    tag: str | None
    digest: str | None


def parse_image(reference: str) -> ImageReference:
    """`registry/path[:tag][@sha256:...]`, split the way container runtimes split it."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.find(":", slash + 1)  # a second colon leaves a malformed tag, not a valid one
    if colon != -1:
        return ImageReference(name[:colon], name[colon + 1 :], digest or None)
    return ImageReference(name, None, digest or None)


def image_problem(reference: Any) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if not isinstance(reference, str) or not reference.strip():
        return "has no image; set an image pinned to a version tag"
    image = parse_image(reference)
    if image.digest is not None and not _DIGEST.match(image.digest):
        return f"image {reference!r} has a malformed digest; use @sha256:<64 hex digits>"
    if image.tag is not None and not _TAG.match(image.tag):
        return f"image {reference!r} has a malformed tag {image.tag!r}"
    if image.digest is None and image.tag is None:
        return f"image {reference!r} has no tag, so it means :latest; pin a version tag or digest"
    moving = moving_word(image.tag)
    if moving is not None and image.digest is None:
        return (f"image {reference!r} uses the moving tag {moving!r}; pin a release tag "
                "(image.release, e.g. the commit SHA) or a digest (image.cpu_digest, "
                "image.gpu_digest)")
    return None


def moving_word(tag: str | None) -> str | None:
    """A word of the tag (`2.60.0-latest-py311-cpu` has `latest`) that registries move."""
    words = _TAG_WORD.split((tag or "").lower())
    return next((word for word in words if word in MOVING_TAGS), None)


def ray_version_of(reference: str) -> str | None:
    """The Ray version an image tag names (rayproject convention: 2.60.0-py311-cpu)."""
    tag = parse_image(reference).tag
    match = _RAY_VERSION_IN_TAG.match(tag or "")
    return match.group(1) if match else None


def remote_uri_problem(uri: Any) -> str | None:
    """Why a runtime_env archive URI can move under the cluster, or None when it cannot."""
    if not isinstance(uri, str):
        return None
    if "://" not in uri or uri.startswith("local://"):
        return None  # local:// and plain paths are baked into the image
    if _MOVING_REF.search(uri) or not _IMMUTABLE_ID.search(uri):
        return (
            f"{uri!r} is a moving archive (a branch or unversioned URL); every new pod may "
            "fetch different code. Bake the code into the image, or point at an archive named "
            "by a commit SHA or content hash"
        )
    return None


def serve_config_document(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    raw = as_mapping(props.get("spec")).get("serveConfigV2")
    if not isinstance(raw, str):
        return None
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError:
        return None
    return document if isinstance(document, Mapping) else None


def _runtime_envs(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for app in as_list(document.get("applications")):
        app = as_mapping(app)
        name = app.get("name", "?")
        yield f"applications[{name}].runtime_env", as_mapping(app.get("runtime_env"))
        for dep in as_list(app.get("deployments")):
            dep = as_mapping(dep)
            options = as_mapping(dep.get("ray_actor_options"))
            path = f"applications[{name}].deployments[{dep.get('name', '?')}].ray_actor_options"
            yield f"{path}.runtime_env", as_mapping(options.get("runtime_env"))


def check_images_pinned(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    for container in containers(resource_type, props):
        problem = image_problem(container.body.get("image"))
        if problem:
            yield f"{container.path}: {problem}"
    if resource_type != RAYSERVICE_TYPE:
        return
    document = serve_config_document(props)
    for path, runtime_env in _runtime_envs(document or {}):
        uris = [("working_dir", runtime_env.get("working_dir"))]
        uris += [
            (f"py_modules[{i}]", uri)
            for i, uri in enumerate(as_list(runtime_env.get("py_modules")))
        ]
        for field, uri in uris:
            problem = remote_uri_problem(uri)
            if problem:
                yield f"spec.serveConfigV2 {path}.{field}: {problem}"


def check_ray_version_matches_image(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    located = ray_cluster_spec(resource_type, props)
    if located is None:
        return
    cluster_path, cluster = located
    field = f"{cluster_path}.rayVersion"
    ray_version = cluster.get("rayVersion")
    if not ray_version:
        yield f"{field} is not set; set it to the images' Ray version (infra.config.RAY_VERSION)"
        return
    for container in containers(resource_type, props):
        if not container.runs_ray:
            continue
        image = container.body.get("image")
        if not isinstance(image, str) or image_problem(image):
            continue  # images-pinned reports missing, moving and malformed images
        found = ray_version_of(image)
        if found is None:
            yield (
                f"{container.path}: cannot tell which Ray version image {image!r} runs; tag "
                f"it with the Ray version first (e.g. :{ray_version}-py311-cpu) so {field} "
                "can be checked"
            )
        elif found != str(ray_version):
            yield (
                f"{container.path}: image {image!r} runs Ray {found} but {field} is "
                f"{ray_version}; KubeRay and the autoscaler assume they agree. Derive both "
                "from infra.config.RAY_VERSION"
            )
