"""The stack's `image`: the app image every Ray container runs, tagged from the Ray pin.

A tag is `<Ray version>-[<release>-]<variant>-<cpu|gpu>`: the release (what CI builds per
commit) sits after the Ray version, so the Ray version stays readable from every tag the
Dockerfile and CI write, and the policy pack checks it against `rayVersion`. A digest per
flavour pins the exact image (`repo:tag@sha256:…`, the reference with both tag and digest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, Field, field_validator

from apps.spec import SpecModel
from infra.config.project import RAY_VERSION

MOVING_TAGS: Final = frozenset(
    {"latest", "stable", "edge", "nightly", "main", "master", "trunk", "develop", "head"})
"""Names that registries and CI systems move to each new build: never a release."""

RAY_VERSION_LABEL: Final = "io.servestack.ray-version"
"""The image label (OCI config) the Dockerfile writes with the Ray version it installed."""
_FLAT_PREFIX: Final = "image."


def _not_moving(value: str) -> str:
    if value.lower() in MOVING_TAGS:
        raise ValueError(
            f"{value!r} is a moving name: nodes that cached the old image keep running "
            "it, and two pods of one group can run different code. Give the commit or "
            "version the image was built from (CI: the git SHA)"
        )
    return value


Release = Annotated[str, AfterValidator(_not_moving)]


class ImageConfig(SpecModel):
    """The app image (built FROM rayproject/ray); its tag is derived from the pinned Ray version."""

    repository: str = Field(
        pattern=r"^[a-z0-9.\-/:]+$",
        description="Registry path; the tag is `<Ray version>-[<release>-]<variant>-<cpu|gpu>`.",
    )
    variant: str = Field(
        "py311", pattern=r"^[a-z0-9.\-]+$", description="Python variant part of the tag."
    )
    release: Release | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Per-release part of the tag (CI: the commit that last changed the "
        "image's inputs); a new value rolls out a new Ray cluster. Moving names (`latest`, "
        "`main`, …) are refused. CI sets it as `servestack:image.release`.",
    )
    cpu_digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Digest of the CPU image (`sha256:…`), appended to its reference; "
        "recommended in prod.",
    )
    gpu_digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Digest of the GPU image (`sha256:…`), appended to its reference; "
        "recommended in prod.",
    )
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent",
        description="imagePullPolicy of every Ray container (`Never` for kind-loaded).",
    )

    @field_validator("repository", mode="before")
    @classmethod
    def _untagged(cls, value: Any) -> Any:
        """Before the pattern check, so a digest (`@`) gets this message rather than a regex."""
        if not isinstance(value, str):
            return value
        repository = value.split("@", 1)[0]
        registry, _, name = repository.rpartition("/")  # localhost:5000/app: a port, no tag
        if ":" in name:
            repository = f"{registry}/{name.split(':', 1)[0]}" if registry else name.split(":")[0]
        if repository != value:
            raise ValueError(
                f"{value!r} carries a tag or digest ({value.removeprefix(repository)!r}); give "
                f"the repository only ({repository!r}): servestack tags the image itself, "
                f"{repository}:{RAY_VERSION}-<variant>-cpu|gpu, from the pinned Ray version "
                "and image.variant; a per-release tag goes in image.release "
                f"({RAY_VERSION}-<release>-<variant>-cpu|gpu), a digest in image.cpu_digest "
                "and image.gpu_digest"
            )
        return value

    def tag(self, gpu: bool) -> str:
        release = f"{self.release}-" if self.release else ""
        return f"{RAY_VERSION}-{release}{self.variant}-{'gpu' if gpu else 'cpu'}"

    def reference(self, gpu: bool) -> str:
        digest = self.gpu_digest if gpu else self.cpu_digest
        return f"{self.repository}:{self.tag(gpu)}" + (f"@{digest}" if digest else "")


def fold_flat_image_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """`image.<field>` keys, as `pulumi config set servestack:image.release X` (no --path) and
    CI's config write them, set that field of `image`, over the stack file's value."""
    flat = {key: value for key, value in values.items() if key.startswith(_FLAT_PREFIX)}
    if not flat:
        return dict(values)
    folded = {key: value for key, value in values.items() if key not in flat}
    image = folded.get("image")
    merged = dict(image) if isinstance(image, Mapping) else {}
    merged.update({key.removeprefix(_FLAT_PREFIX): value for key, value in flat.items()})
    folded["image"] = merged if image is None or isinstance(image, Mapping) else image
    return folded
