"""Coalescer: callers submitted together share one flush, each keeps its own result or error."""

from __future__ import annotations

import asyncio

import pytest

from workermon_core.coalesce import Coalescer


class Store:
    """Records each flush; a flush waits for `release` so callers can pile up behind it."""

    def __init__(self) -> None:
        self.flushes: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def flush(self, items: list[int]) -> list[int | Exception]:
        self.flushes.append(items)
        self.started.set()
        await self.release.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def test_a_lone_caller_flushes_its_own_item() -> None:
    store = Store()
    coalescer = Coalescer(store.flush)
    assert await coalescer.submit(1) == 10
    assert await coalescer.submit(2) == 20
    assert store.flushes == [[1], [2]]


async def _held(
    later: tuple[int, ...],
) -> tuple[Store, asyncio.Task[int], list[asyncio.Task[int]]]:
    """Item 1 flushing and held there; `later` submitted behind it."""
    store = Store()
    store.release.clear()
    coalescer = Coalescer(store.flush)
    first = asyncio.create_task(coalescer.submit(1))
    await store.started.wait()
    return store, first, [asyncio.create_task(coalescer.submit(n)) for n in later]


async def test_callers_arriving_during_a_flush_share_the_next_in_order() -> None:
    store, first, later = await _held((2, 3, 4))
    await asyncio.sleep(0)
    store.release.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
    assert store.flushes == [[1], [2, 3, 4]]


async def test_an_error_for_one_item_fails_only_that_caller() -> None:
    store = Store()
    coalescer = Coalescer(store.flush)
    results = await asyncio.gather(*(coalescer.submit(n) for n in (1, -2, 3)), return_exceptions=True)
    assert len(store.flushes) == 1
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError) and str(results[1]) == "bad -2"


async def test_a_cancelled_waiter_leaves_the_batch_and_the_others_are_answered() -> None:
    store, first, (gone, kept) = await _held((2, 3))
    await asyncio.sleep(0)
    gone.cancel()
    store.release.set()
    assert [await first, await kept] == [10, 30]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert store.flushes == [[1], [3]]


async def test_a_failed_flush_fails_every_caller_of_the_batch_and_the_next_one_runs() -> None:
    down = True

    async def flaky(items: list[int]) -> list[int | Exception]:
        if down:
            raise ConnectionError("store unreachable")
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(flaky)
    results = await asyncio.gather(*(coalescer.submit(n) for n in (1, 2)), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    down = False
    assert await coalescer.submit(3) == 3
