"""Any remote model URI → a verified local copy in this node's cache (what the apps call)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.model_source.cache import ModelCache
from apps.model_source.environment import cache_location
from apps.model_source.fetch import describe


@dataclass(frozen=True)
class FetchedModel:
    """A verified local copy, and where it came from (shown by the apps' `GET /`)."""

    uri: str
    path: Path
    resolved: str
    digest: str
    fetched: bool
    """True when this call downloaded it; False when the node cache already had it."""

    def describe(self) -> dict[str, Any]:
        return {"uri": self.uri, "resolved": self.resolved, "sha256": self.digest,
                "downloaded": self.fetched}


def fetch_remote_model(uri: str, max_bytes: int) -> FetchedModel:
    """Resolve at the store, then reuse or download into the node cache; ModelSourceError
    (naming `uri`) when the store cannot be reached, has no such model or sent bad bytes."""
    location = cache_location()
    artifact = describe(uri)
    cached = ModelCache(location.root, location.max_bytes).get(artifact, max_bytes)
    return FetchedModel(uri=uri, path=cached.path, resolved=artifact.resolved,
                        digest=cached.digest, fetched=cached.fetched)


def single_file(model: FetchedModel, suffix: str) -> Path:
    """The one `*suffix` file of an artifact (a single object, or a directory holding one)."""
    from apps.model_source.errors import ModelSourceError

    files = sorted(p for p in model.path.rglob("*") if p.is_file())
    matching = [p for p in files if p.name.endswith(suffix)]
    if len(files) == 1:
        return files[0]
    if len(matching) == 1:
        return matching[0]
    found = [p.relative_to(model.path).as_posix() for p in files][:10]
    raise ModelSourceError(
        f"{model.uri!r}: expected one {suffix} file, the artifact ({model.resolved}) holds "
        f"{found}"
    )
