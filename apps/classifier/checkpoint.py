"""Tile-classifier checkpoints: one self-describing file, fetched by URI, verified before use.

A checkpoint is a `torch.save`d dict of plain types (loaded with `weights_only=True`, so a
file can never run code) carrying the network's architecture, tile size and a SHA-256 of
its weights. Where the bytes come from is a URI scheme: `file://` and `models://` are
built in, `s3://`, `gs://` and `mlflow://` come through the node's model cache
(apps/model_source), others plug in with `register_scheme`. Every failure raises
`CheckpointError` naming the URI, so a bad `checkpoint_uri` fails the replica loudly.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch
from pydantic import ValidationError

from apps.classifier.checkpoint_uri import CheckpointUriError, models_name
from apps.classifier.model import TileNet, TileNetArchitecture
from apps.classifier.model_store import MODEL_STORE_ENV, model_store
from apps.classifier.spec import TILE_SIZE
from apps.model_source.errors import ModelSourceError
from apps.model_source.uri import REMOTE_SCHEMES, file_path, is_within

CHECKPOINT_FORMAT = "servestack/tile-classifier"
FORMAT_VERSION = 1
_REQUIRED_KEYS = frozenset(
    {"format", "format_version", "version", "architecture", "tile_size", "training",
     "state_dict", "weights_sha256"}
)
DEFAULT_MAX_CHECKPOINT_BYTES = 256 * 1024**2


class CheckpointError(RuntimeError):
    """A checkpoint could not be fetched, parsed or matched to the network."""


@dataclass(frozen=True)
class ReadPolicy:
    """What a fetch may read: at most `max_bytes`, and for file:// only below `file_roots`
    (None: any absolute path, for library use; replicas pass their settings')."""

    max_bytes: int = DEFAULT_MAX_CHECKPOINT_BYTES
    file_roots: tuple[str, ...] | None = None


CheckpointSource = Callable[[str, ReadPolicy], bytes]
"""Fetches the raw bytes a URI names, at most `policy.max_bytes` of them; raise
CheckpointError (or OSError) when it cannot."""

_SOURCES: dict[str, CheckpointSource] = {}
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def register_scheme(scheme: str, source: CheckpointSource) -> None:
    """Teach the loader a new URI scheme, e.g. `register_scheme("s3", fetch_from_s3)`."""
    if not _SCHEME.fullmatch(scheme):
        raise ValueError(f"{scheme!r} is not a URI scheme (lower-case letters, digits, + - .)")
    _SOURCES[scheme] = source


def registered_schemes() -> tuple[str, ...]:
    return tuple(sorted(_SOURCES))


def _too_large(uri: str, limit: int) -> CheckpointError:
    return CheckpointError(
        f"{uri!r} is larger than {limit} bytes (settings.max_checkpoint_bytes); refusing to "
        "read it"
    )


def _read_file(path: Path, uri: str, policy: ReadPolicy, hint: str = "") -> bytes:
    """Read a regular file of at most `policy.max_bytes`: never a device, FIFO or directory
    (`file:///dev/zero` would otherwise be read until memory runs out)."""
    try:
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CheckpointError(f"{uri!r} names {path}, which is not a regular file")
            if info.st_size > policy.max_bytes:
                raise _too_large(uri, policy.max_bytes)
            data = handle.read(policy.max_bytes + 1)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path} (from {uri!r}){hint}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path} (from {uri!r}): {error}") from None
    if len(data) > policy.max_bytes:  # the file grew while we read it
        raise _too_large(uri, policy.max_bytes)
    return data


def _file_source(uri: str, policy: ReadPolicy) -> bytes:
    try:
        path = file_path(uri)
    except CheckpointUriError as error:
        raise CheckpointError(str(error)) from None
    if policy.file_roots is not None:
        # The config layer judged the path as written; a symlink may still lead elsewhere.
        resolved = os.path.realpath(path)
        if not is_within(resolved, policy.file_roots):
            raise CheckpointError(
                f"{uri!r} resolves to {resolved}, outside the allowed checkpoint directories "
                f"{list(policy.file_roots)} (settings.file_roots)"
            )
        path = resolved
    return _read_file(Path(path), uri, policy)


def _models_source(uri: str, policy: ReadPolicy) -> bytes:
    try:
        name = models_name(uri)
    except CheckpointUriError as error:
        raise CheckpointError(str(error)) from None
    hint = f"; build it with `servestack model build` or set {MODEL_STORE_ENV}"
    return _read_file(model_store() / name, uri, policy, hint)


def _fetch_remote(uri: str, policy: ReadPolicy) -> tuple[bytes, dict[str, Any]]:
    """The checkpoint's bytes from the node cache, and where the store resolved the URI."""
    from apps.model_source.resolve import fetch_remote_model, single_file

    try:
        fetched = fetch_remote_model(uri, policy.max_bytes)
        path = single_file(fetched, ".pt")
    except ModelSourceError as error:
        raise CheckpointError(str(error)) from None
    return _read_file(path, uri, policy), fetched.describe()


def _remote_source(uri: str, policy: ReadPolicy) -> bytes:
    return _fetch_remote(uri, policy)[0]


register_scheme("file", _file_source)
register_scheme("models", _models_source)
for _remote in REMOTE_SCHEMES:
    register_scheme(_remote, _remote_source)


def fetch_checkpoint_bytes(uri: str, policy: ReadPolicy = ReadPolicy()) -> bytes:
    scheme = urlsplit(uri).scheme
    source = _SOURCES.get(scheme)
    if source is None:
        raise CheckpointError(
            f"unknown checkpoint URI scheme {scheme!r} in {uri!r}; registered schemes: "
            f"{', '.join(registered_schemes())} (add one with register_scheme)"
        )
    try:
        data = source(uri, policy)
    except CheckpointError:
        raise
    except OSError as error:
        raise CheckpointError(f"cannot fetch checkpoint {uri!r}: {error}") from None
    if len(data) > policy.max_bytes:  # a plugged-in source that ignored the cap
        raise _too_large(uri, policy.max_bytes)
    return data


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Digest of names, dtypes, shapes and values: independent of the file's zip layout."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A verified network in eval mode plus what it says about itself."""

    uri: str
    model: TileNet
    version: str
    weights_sha256: str
    training: Mapping[str, Any]
    source: Mapping[str, Any] | None = None
    """For s3/gs/mlflow: what the store resolved the URI to (e.g. `models:/name/2`)."""

    def describe(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "training": dict(sorted(self.training.items())),
            "source": dict(self.source) if self.source else None,
        }


def checkpoint_document(
    model: TileNet, *, version: str, training: Mapping[str, Any]
) -> dict[str, Any]:
    state_dict = {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "version": version,
        "architecture": model.architecture.model_dump(mode="json"),
        "tile_size": TILE_SIZE,
        "training": dict(sorted(training.items())),
        "state_dict": state_dict,
        "weights_sha256": weights_sha256(state_dict),
    }


def save_checkpoint(
    model: TileNet, path: Path, *, version: str, training: Mapping[str, Any]
) -> str:
    """Write atomically (temp file + rename) so a reader never sees half a file; returns sha."""
    document = checkpoint_document(model, version=version, training=training)
    buffer = io.BytesIO()
    torch.save(document, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(buffer.getvalue())
    staged = Path(tmp.name)
    staged.chmod(0o644)  # temp files are 0600; a replica may run as another user
    staged.replace(path)
    return str(document["weights_sha256"])


def load_checkpoint(uri: str, policy: ReadPolicy = ReadPolicy()) -> LoadedCheckpoint:
    """Fetch, parse, verify and build the network a URI names; raises CheckpointError."""
    source: dict[str, Any] | None = None
    if _SOURCES.get(urlsplit(uri).scheme) is _remote_source:
        raw, source = _fetch_remote(uri, policy)
    else:
        raw = fetch_checkpoint_bytes(uri, policy)
    try:
        document = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for bad bytes; all mean "corrupt"
        raise CheckpointError(
            f"{uri!r} is not a readable torch checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'})"
        ) from None
    return _build(uri, document, source)


def _build(uri: str, document: object, source: Mapping[str, Any] | None) -> LoadedCheckpoint:
    if not isinstance(document, Mapping):
        found = type(document).__name__
        raise CheckpointError(f"{uri!r}: expected a checkpoint dict, found {found}")
    missing = sorted(_REQUIRED_KEYS - set(document))
    if missing:
        raise CheckpointError(
            f"{uri!r}: not a {CHECKPOINT_FORMAT} checkpoint, missing keys {missing}; "
            "rebuild it with `servestack model build`"
        )
    if document["format"] != CHECKPOINT_FORMAT or document["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{uri!r}: format {document['format']!r} v{document['format_version']!r} is not "
            f"{CHECKPOINT_FORMAT!r} v{FORMAT_VERSION}"
        )
    if document["tile_size"] != TILE_SIZE:
        raise CheckpointError(
            f"{uri!r}: trained on {document['tile_size']}px tiles, this app serves {TILE_SIZE}px"
        )
    try:
        architecture = TileNetArchitecture.model_validate(document["architecture"])
    except ValidationError as error:
        raise CheckpointError(f"{uri!r}: invalid architecture: {error}") from None
    state_dict = document["state_dict"]
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state_dict.values()
    ):
        raise CheckpointError(f"{uri!r}: state_dict must map parameter names to tensors")
    actual = weights_sha256(state_dict)
    if actual != document["weights_sha256"]:
        raise CheckpointError(
            f"{uri!r}: weights checksum mismatch (recorded {document['weights_sha256']}, "
            f"computed {actual}); the file is corrupt or was modified"
        )
    model = TileNet(architecture)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise CheckpointError(f"{uri!r}: weights do not fit {architecture}: {detail}") from None
    model.eval()
    training = document["training"] if isinstance(document["training"], Mapping) else {}
    return LoadedCheckpoint(
        uri=uri,
        model=model,
        version=str(document["version"]),
        weights_sha256=actual,
        training=training,
        source=source,
    )
