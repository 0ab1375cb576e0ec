"""Queue-driven batching, tuned live, and a record of the batch sizes a replica really ran.

`AdaptiveBatcher` forms the next batch only when the model is free, from everything that
queued while the previous pass ran (up to `max_batch_size`). An idle replica runs a lone
request at once (no fixed wait); a busy one runs full batches. Ray's `@serve.batch` forms
the next batch as soon as the previous one *starts*, from whatever is queued at that
instant, so under moderate load it alternates a batch of one with a fuller one, and only a
wait (`batch_wait_timeout_s`) fills it, which every idle request then pays. Measured in
docs/benchmarks.md ("Batching"). A `batch_wait_timeout_s` above 0 is still honoured.

The settings start from the deployment spec; `reconfigure` moves them through the same
setters `@serve.batch` has, so a stack override changes batching without a restart. The
log answers "does batching actually batch?" from the replica itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from apps.spec import Batching, DeploymentSpec


class TunableBatcher(Protocol):
    """The public setters `@serve.batch` attaches to the method it wraps."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...
    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...


def spec_batching(spec: DeploymentSpec) -> Batching:
    """The spec's batching, or the Batching defaults when it declares none."""
    return spec.batching or Batching()


Item = TypeVar("Item")
Result = TypeVar("Result")


class AdaptiveBatcher(Generic[Item, Result]):
    """One model, one pass at a time; each pass takes every queued item up to the limit."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[list[Result]]],
                 batching: Batching) -> None:
        self._run = run
        self._max_batch_size = batching.max_batch_size
        self._wait_s = batching.batch_wait_timeout_s
        self._queue: list[tuple[Item, asyncio.Future[Result]]] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    def set_max_batch_size(self, new_max_batch_size: int) -> None:
        self._max_batch_size = new_max_batch_size

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None:
        self._wait_s = new_batch_wait_timeout_s

    async def submit(self, item: Item) -> Result:
        """The item's result, computed in some batch; an error of its batch is raised here."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._serve_batches())
        return await future

    async def _serve_batches(self) -> None:
        while True:
            await self._arrived.wait()
            if self._wait_s > 0 and len(self._queue) < self._max_batch_size:
                await asyncio.sleep(self._wait_s)  # opted in: trade latency for fuller batches
            batch = [(item, future) for item, future in self._queue[:self._max_batch_size]
                     if not future.done()]  # a cancelled request (client gone) is dropped
            del self._queue[:self._max_batch_size]
            if not self._queue:
                self._arrived.clear()
            if not batch:
                continue
            try:
                results = await self._run([item for item, _ in batch])
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


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
