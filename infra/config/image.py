"""The stack's `image`: the app image every Ray container runs, tagged from the Ray pin."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from apps.spec import SpecModel
from infra.config.project import RAY_VERSION


class ImageConfig(SpecModel):
    """The app image (built FROM rayproject/ray); its tag is derived from the pinned Ray version."""

    repository: str = Field(
        pattern=r"^[a-z0-9.\-/:]+$",
        description="Registry path; the tag is `<Ray version>-<variant>-<cpu|gpu>`.",
    )
    variant: str = Field(
        "py311", pattern=r"^[a-z0-9.\-]+$", description="Python variant part of the tag."
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
                "and image.variant"
            )
        return value

    def reference(self, gpu: bool) -> str:
        flavour = "gpu" if gpu else "cpu"
        return f"{self.repository}:{RAY_VERSION}-{self.variant}-{flavour}"
