"""Live `@serve.batch` tuning and a record of the batch sizes a replica really ran.

The decorator's arguments come from the deployment spec; `reconfigure` later moves them
through the batcher's public setters, so a stack override changes batching without a
restart. Ray exposes no public getters, so the settings in force are tracked here. The
log answers "does batching actually batch?" from the replica itself.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

from apps.spec import Batching, DeploymentSpec


class TunableBatcher(Protocol):
    """The public setters `@serve.batch` attaches to the method it wraps."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...
    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...


def spec_batching(spec: DeploymentSpec) -> Batching:
    """The spec's batching, or the Batching defaults when it declares none."""
    return spec.batching or Batching()


def batch_options(spec: DeploymentSpec) -> dict[str, Any]:
    """`@serve.batch` keyword arguments from a spec."""
    return spec_batching(spec).model_dump()


class BatchRecorder:
    """Applies batching changes to a live batcher and counts the batches it runs, by size."""

    def __init__(self, initial: Batching) -> None:
        self.settings = initial
        self._sizes: Counter[int] = Counter()

    def apply(self, batcher: Any, batching: Batching | None) -> None:
        """Move the batcher to new settings; None (no batching in user_config) keeps them."""
        if batching is None:
            return
        tunable: TunableBatcher = batcher
        tunable.set_max_batch_size(batching.max_batch_size)
        tunable.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)
        self.settings = batching

    def record(self, size: int) -> None:
        self._sizes[size] += 1

    def snapshot(self) -> dict[str, Any]:
        """Settings in force plus `observed_batch_sizes` ({size: number of batches})."""
        return {
            **self.settings.model_dump(),
            "observed_batch_sizes": {str(size): self._sizes[size] for size in sorted(self._sizes)},
        }
