"""Images per release: the tag CI gives (`image.release`), digests, and what stays refused."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import RAY_VERSION, ImageConfig, StackConfigError
from infra.config.image import MOVING_TAGS
from infra.stack_file import read_stack_file, stack_file
from infra.validation import StackSource, validate_stack

DIGEST = "sha256:" + "ab" * 32


def prod_with(**values: Any) -> StackSource:
    return StackSource("prod", {**read_stack_file(stack_file("prod")), **values},
                       frozenset({"redisPassword"}))


def test_a_release_sits_after_the_ray_version_so_the_tag_still_names_it() -> None:
    image = ImageConfig(repository="ghcr.io/acme/app", release="3f2a1b9c0d1e")
    assert image.reference(gpu=False) == f"ghcr.io/acme/app:{RAY_VERSION}-3f2a1b9c0d1e-py311-cpu"
    assert image.reference(gpu=True) == f"ghcr.io/acme/app:{RAY_VERSION}-3f2a1b9c0d1e-py311-gpu"


def test_without_a_release_the_tag_is_the_one_shipped_stacks_always_had() -> None:
    image = ImageConfig(repository="localhost/servestack")
    assert image.reference(gpu=False) == f"localhost/servestack:{RAY_VERSION}-py311-cpu"


def test_a_digest_pins_its_flavour_with_tag_and_digest() -> None:
    image = ImageConfig(repository="r/app", release="v1.4.0", gpu_digest=DIGEST)
    assert image.reference(gpu=True) == f"r/app:{RAY_VERSION}-v1.4.0-py311-gpu@{DIGEST}"
    assert "@" not in image.reference(gpu=False)


@pytest.mark.parametrize("release", sorted(MOVING_TAGS | {"Latest"}))
def test_prod_refuses_a_moving_release_at_its_field_path(release: str) -> None:
    source = prod_with(image={**read_stack_file(stack_file("prod"))["image"], "release": release})
    with pytest.raises(StackConfigError) as raised:
        validate_stack(source)
    ((path, message),) = raised.value.problems
    assert path == "image.release"
    assert "moving name" in message and "git SHA" in message


@pytest.mark.parametrize(("field", "value"), [
    ("release", "has space"), ("release", "-leading-dash"), ("cpu_digest", "sha256:short"),
    ("gpu_digest", "md5:" + "0" * 32),
])
def test_malformed_releases_and_digests_are_refused_at_their_path(field: str, value: str) -> None:
    source = prod_with(**{f"image.{field}": value})
    with pytest.raises(StackConfigError) as raised:
        validate_stack(source)
    assert [path for path, _ in raised.value.problems] == [f"image.{field}"]


def test_a_flat_image_key_as_pulumi_config_set_writes_it_sets_that_field() -> None:
    """`pulumi config set servestack:image.release X` (no --path) and CI's config write a key
    named `image.release`; it sets the field, over the stack file's value."""
    image = read_stack_file(stack_file("prod"))["image"]
    source = prod_with(image={**image, "release": "old"}, **{"image.release": "3f2a1b9c0d1e",
                                                             "image.cpu_digest": DIGEST})
    stack = validate_stack(source).stack
    assert (stack.image.release, stack.image.cpu_digest) == ("3f2a1b9c0d1e", DIGEST)
    assert stack.image.repository == image["repository"]


def test_an_unknown_flat_image_key_is_refused_by_the_image_section() -> None:
    with pytest.raises(StackConfigError) as raised:
        validate_stack(prod_with(**{"image.tag": "v1"}))
    assert [path for path, _ in raised.value.problems] == ["image.tag"]
