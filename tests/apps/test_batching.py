"""Queue-driven batching without Ray: no wait when idle, full batches when busy."""

from __future__ import annotations

import asyncio
import time

import pytest

from apps.batching import AdaptiveBatcher
from apps.spec import Batching

PASS_S = 0.05  # one model pass, whatever the batch size (as on a CPU at small batches)


class Model:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def run(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await asyncio.sleep(PASS_S)
        return [item * 10 for item in items]


def test_a_lone_request_runs_at_once_without_a_batch_wait() -> None:
    async def scenario() -> float:
        model = Model()
        batcher = AdaptiveBatcher(model.run, Batching(max_batch_size=8, batch_wait_timeout_s=0))
        start = time.perf_counter()
        assert await batcher.submit(3) == 30
        assert model.batches == [[3]]
        return time.perf_counter() - start

    assert asyncio.run(scenario()) < PASS_S + 0.02


def test_requests_queued_during_a_pass_fill_the_next_batch() -> None:
    """Ray's @serve.batch (wait 0) would form batch 2 from the one item queued when batch 1
    started; here the 19 items that arrive during pass 1 make batches of 8, 8 and 3."""

    async def scenario() -> list[list[int]]:
        model = Model()
        batcher = AdaptiveBatcher(model.run, Batching(max_batch_size=8, batch_wait_timeout_s=0))
        first = asyncio.create_task(batcher.submit(0))
        await asyncio.sleep(PASS_S / 5)  # pass 1 is running with one item
        rest = []
        for item in range(1, 20):
            rest.append(asyncio.create_task(batcher.submit(item)))
            await asyncio.sleep(0)
        results = await asyncio.gather(first, *rest)
        assert results == [item * 10 for item in range(20)]
        return model.batches

    assert [len(batch) for batch in asyncio.run(scenario())] == [1, 8, 8, 3]


def test_live_settings_and_a_failing_pass_reach_only_its_own_requests() -> None:
    async def scenario() -> None:
        model = Model()
        batcher = AdaptiveBatcher(model.run, Batching(max_batch_size=8, batch_wait_timeout_s=0))
        batcher.set_max_batch_size(2)
        batcher.set_batch_wait_timeout_s(0.02)
        assert await asyncio.gather(*(batcher.submit(i) for i in range(3))) == [0, 10, 20]
        assert [len(batch) for batch in model.batches] == [2, 1]

        async def broken(items: list[int]) -> list[int]:
            raise ValueError("bad batch")

        failing = AdaptiveBatcher(broken, Batching(max_batch_size=4))
        with pytest.raises(ValueError, match="bad batch"):
            await failing.submit(1)
        assert await batcher.submit(5) == 50  # the other batcher is untouched

    asyncio.run(scenario())
