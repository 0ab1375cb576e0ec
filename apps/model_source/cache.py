"""The per-node model cache: content-addressed, shared by replicas, verified, bounded.

Layout under the cache root (a volume every replica on the node mounts):
  blobs/<sha256>/data/...   the artifact (one file, or a tree); <sha256> is its tree digest
  blobs/<sha256>/used       touched on every use: its mtime orders LRU eviction
  refs/<key>                the digest the store's current answer (`identity`) resolved to
  locks/<key>.lock          held while one replica fetches; the others wait, then reuse
  staging/                  downloads land here and are renamed into blobs/ only when whole
A blob's digest is recomputed before every use, so neither a partial download nor a file
changed on disk is ever loaded: a bad blob is dropped and fetched again.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from apps.model_source.errors import ModelSourceError
from apps.model_source.fetch import RemoteArtifact

logger = logging.getLogger("ray.serve")

LOCK_TIMEOUT_S = 900


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@dataclass(frozen=True)
class CachedModel:
    """A verified artifact on local disk. `fetched`: this call downloaded it."""

    path: Path
    digest: str
    fetched: bool


class ModelCache:
    """One node's cache directory; safe to share between processes (file locks)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _dirs(self) -> tuple[Path, Path, Path, Path]:
        dirs = tuple(self.root / name for name in ("blobs", "refs", "locks", "staging"))
        for directory in dirs:
            directory.mkdir(parents=True, exist_ok=True)
        return dirs[0], dirs[1], dirs[2], dirs[3]

    def get(self, artifact: RemoteArtifact, max_bytes: int) -> CachedModel:
        """The artifact's local copy, downloading it at most once per node; verified."""
        if artifact.size is not None and artifact.size > max_bytes:
            raise ModelSourceError(
                f"{artifact.uri!r} is {artifact.size} bytes, more than the {max_bytes} allowed"
            )
        blobs, refs, locks, staging = self._dirs()
        key = hashlib.sha256(artifact.identity.encode()).hexdigest()
        try:
            with FileLock(str(locks / f"{key}.lock"), timeout=LOCK_TIMEOUT_S):
                cached = self._verified(blobs, refs / key)
                if cached is not None:
                    return cached
                fetched = self._download(artifact, blobs, staging, max_bytes)
                (refs / key).write_text(fetched.digest)
        except Timeout:
            raise ModelSourceError(
                f"{artifact.uri!r}: another replica has held the download lock for "
                f"{LOCK_TIMEOUT_S}s"
            ) from None
        self._evict(keep=fetched.digest)
        return fetched

    def _verified(self, blobs: Path, ref: Path) -> CachedModel | None:
        """The blob `ref` names, if present and its digest still matches; else drop it."""
        if not ref.exists():
            return None
        digest = ref.read_text().strip()
        blob = blobs / digest
        data = blob / "data"
        if data.is_dir() and tree_digest(data) == digest:
            (blob / "used").touch()
            return CachedModel(path=data, digest=digest, fetched=False)
        logger.warning("model cache: blob %s is missing or corrupt; fetching again", digest)
        ref.unlink(missing_ok=True)
        self._remove(blob)
        return None

    def _download(self, artifact: RemoteArtifact, blobs: Path, staging: Path,
                  max_bytes: int) -> CachedModel:
        work = Path(tempfile.mkdtemp(prefix="fetch-", dir=staging))
        try:
            artifact.download(work)
            if _tree_bytes(work) > max_bytes:
                raise ModelSourceError(
                    f"{artifact.uri!r} is {_tree_bytes(work)} bytes, more than the "
                    f"{max_bytes} allowed"
                )
            digest = tree_digest(work)
            blob = blobs / digest
            if not (blob / "data").is_dir():  # same content under another URI: reuse it
                assembled = Path(tempfile.mkdtemp(prefix="blob-", dir=staging))
                work.replace(assembled / "data")
                (assembled / "used").touch()
                assembled.chmod(0o755)
                try:
                    assembled.replace(blob)  # atomic: a blob is whole or absent
                except OSError:  # another URI with the same content won the race
                    shutil.rmtree(assembled, ignore_errors=True)
                    if not (blob / "data").is_dir():
                        raise
            else:
                (blob / "used").touch()
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        shutil.rmtree(work, ignore_errors=True)
        return CachedModel(path=blob / "data", digest=digest, fetched=True)

    def _remove(self, blob: Path) -> None:
        """Rename first, so no reader ever sees half a blob, then delete."""
        if not blob.exists():
            return
        _, _, _, staging = self._dirs()
        doomed = staging / f"evict-{blob.name}-{time.monotonic_ns()}"
        try:
            blob.replace(doomed)
        except FileNotFoundError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    def _evict(self, keep: str) -> None:
        """Drop least recently used blobs until the cache fits `max_bytes` (never `keep`)."""
        blobs, _, locks, _ = self._dirs()
        with FileLock(str(locks / "evict.lock"), timeout=LOCK_TIMEOUT_S):
            entries = []
            for blob in blobs.iterdir():
                used = blob / "used"
                if not used.exists():
                    continue
                entries.append((used.stat().st_mtime, blob, _tree_bytes(blob / "data")))
            total = sum(size for _, _, size in entries)
            for _, blob, size in sorted(entries, key=lambda entry: entry[0]):
                if total <= self.max_bytes:
                    break
                if blob.name == keep:
                    continue
                logger.info("model cache: evicting %s (%d bytes)", blob.name, size)
                self._remove(blob)
                total -= size
