"""Concurrent calls that share one round trip: items submitted together go to the store in one batch."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A result per item, in order: an exception in the list fails only its own item.
Flush = Callable[[list[Item]], Awaitable[Sequence[Result | Exception]]]

# A turn of the event loop shorter than this ran little besides the caller: no other request is being
# worked on, so nobody is about to join and waiting longer would only add latency.
QUIET_TURN_SECONDS = 50e-6


class Coalescer(Generic[Item, Result]):
    """Hands `flush` the items submitted together, in submission order, so they share one round trip.

    A caller finding a free slot (fewer than `max_in_flight` flushes out) leads: while the event loop is
    busy with other work (other requests on their way here), it lets the callers that arrive join, for
    at most `gather_seconds`; as soon as a turn of the loop is quiet it flushes. Alone, it flushes its
    own item in its own task, as if there were no coalescing; with company, the batch runs in a task of
    its own, so that no caller's cancellation cancels the others' items. Callers arriving while every
    slot is taken wait, and leave together (up to `max_batch`) as soon as one frees.
    """

    def __init__(
        self,
        flush: Flush[Item, Result],
        *,
        max_batch: int = 64,
        max_in_flight: int = 1,
        gather_seconds: float = 0.002,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._gather_seconds = gather_seconds
        self._busy = 0
        self._gathering = False
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._scheduled = False
        # Batches mix callers, so none of them runs in one caller's context (its request id, say).
        self._context = contextvars.Context()

    async def submit(self, item: Item) -> Result:
        """The result `flush` gave for `item`, or the exception it raised (for the batch, or for it)."""
        if self._gathering or self._busy >= self._max_in_flight:
            future = self._enqueue(item)
            self._schedule()
            return await future
        self._busy += 1
        self._gathering = True
        try:
            await self._gather()
        except BaseException:
            self._gathering = False
            self._busy -= 1
            self._schedule()
            raise
        self._gathering = False
        if self._pending:
            self._busy -= 1
            future = self._enqueue(item, first=True)
            self._start()
            return await future
        try:
            (result,) = await self._flush([item])
        finally:
            self._busy -= 1
            self._schedule()
        if isinstance(result, Exception):
            raise result
        return result

    async def _gather(self) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._gather_seconds
        while len(self._pending) + 1 < self._max_batch:
            began = loop.time()
            await asyncio.sleep(0)
            now = loop.time()
            if now - began < QUIET_TURN_SECONDS or now >= give_up:
                return

    def _enqueue(self, item: Item, first: bool = False) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.insert(0 if first else len(self._pending), (item, future))
        return future

    def _schedule(self) -> None:
        if not (self._scheduled or self._gathering) and self._pending and self._busy < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start, context=self._context)

    def _start(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        while self._pending and self._busy < self._max_in_flight:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            # Callers cancelled while waiting are left out; nothing would read their results.
            batch = [(item, future) for item, future in batch if not future.done()]
            if batch:
                self._busy += 1
                task = loop.create_task(self._run(batch), context=self._context)
                self._tasks.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._busy -= 1
        self._schedule()

    async def _run(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # the loop is closing: the waiters are cancelled with it
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
