"""Image references and runtime_env archives: what counts as pinned."""

from __future__ import annotations

import pytest

from policies.rules.images import image_problem, parse_image, ray_version_of, remote_uri_problem


@pytest.mark.parametrize(
    ("reference", "repository", "tag", "digest"),
    [
        ("rayproject/ray:2.60.0-py311-cpu", "rayproject/ray", "2.60.0-py311-cpu", None),
        ("localhost:5000/servestack", "localhost:5000/servestack", None, None),
        ("localhost:5000/servestack:2.60.0", "localhost:5000/servestack", "2.60.0", None),
        ("repo/app@sha256:" + "a" * 64, "repo/app", None, "sha256:" + "a" * 64),
        ("repo/app:1.0@sha256:" + "b" * 64, "repo/app", "1.0", "sha256:" + "b" * 64),
    ],
)
def test_parse_image_splits_registry_port_tag_and_digest(
    reference: str, repository: str, tag: str | None, digest: str | None
) -> None:
    parsed = parse_image(reference)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repository, tag, digest)


@pytest.mark.parametrize(
    "reference",
    ["rayproject/ray:2.60.0-py311-gpu", "localhost:5000/app:2.60.0", "app@sha256:" + "c" * 64,
     "app:latest@sha256:" + "d" * 64],
)
def test_pinned_images_pass(reference: str) -> None:
    assert image_problem(reference) is None


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("rayproject/ray", "no tag"),
        ("localhost:5000/servestack", "no tag"),
        ("rayproject/ray:latest", "latest"),
        ("", "no image"),
        (None, "no image"),
        ("app@sha256:short", "malformed digest"),
        # `image.repository: .../app:latest` in a stack file: the derived tag is appended.
        ("registry/app:latest:2.60.0-py311-cpu", "malformed tag"),
    ],
)
def test_moving_or_missing_images_are_named(reference: str | None, words: str) -> None:
    problem = image_problem(reference)
    assert problem is not None and words in problem


def test_ray_version_comes_from_the_tag() -> None:
    assert ray_version_of("rayproject/ray:2.60.0-py311-cpu") == "2.60.0"
    assert ray_version_of("registry:5000/app:2.59.1") == "2.59.1"
    assert ray_version_of("rayproject/ray:nightly-py311") is None
    assert ray_version_of("app@sha256:" + "e" * 64) is None


@pytest.mark.parametrize(
    "uri",
    [
        "https://github.com/acme/models/archive/refs/heads/main.zip",
        "https://github.com/acme/models/archive/main.zip",
        "https://example.com/code/latest.zip",
        "s3://bucket/code.zip",
    ],
)
def test_moving_archives_are_rejected(uri: str) -> None:
    problem = remote_uri_problem(uri)
    assert problem is not None and "moving archive" in problem


@pytest.mark.parametrize(
    "uri",
    [
        "https://github.com/acme/models/archive/3f786850e387550fdab836ed7e6dc881de23001b.zip",
        "gcs://bucket/_ray_pkg_a1b2c3d4e5f60718.zip",
        "local:///home/ray/code",
        None,
    ],
)
def test_archives_named_by_hash_and_local_code_pass(uri: str | None) -> None:
    assert remote_uri_problem(uri) is None


@pytest.mark.parametrize("reference", [
    "r/app:2.60.0-latest-py311-cpu", "r/app:2.60.0-main-py311-gpu", "r/app:nightly",
    "r/app:2.60.0_Stable",
])
def test_a_moving_word_anywhere_in_a_tag_is_refused_unless_a_digest_pins_it(
    reference: str,
) -> None:
    problem = image_problem(reference)
    assert problem is not None and "moving tag" in problem and "image.release" in problem
    assert image_problem(f"{reference}@sha256:{'f' * 64}") is None


def test_a_release_tag_keeps_the_ray_version_readable() -> None:
    reference = "r/app:2.60.0-3f2a1b9c0d1e-py311-cpu@sha256:" + "0" * 64
    assert image_problem(reference) is None
    assert ray_version_of(reference) == "2.60.0"
