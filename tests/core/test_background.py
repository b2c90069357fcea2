"""Background loops stop when the server cancels them, even when a job swallows the cancellation, and back
off while they fail, saying so once when they start failing and once when they recover."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest
from structlog.testing import capture_logs

from tests.support.bull import until
from workermon_core.background import Every, Follower
from workermon_core.backoff import BACKOFF, Backoff
from workermon_core.server import _keep_running


async def test_every_stops_when_a_job_swallows_the_cancel() -> None:
    started = asyncio.Event()

    async def job() -> None:
        # What a Redis client's timeout does to a cancel landing inside it: an error the job handles.
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return

    task = asyncio.create_task(Every("swallowing", 0.05, job, first_at_once=True)())
    await started.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert done == {task} and task.cancelled()


# --- backing off ------------------------------------------------------------------------------------

FAST = Backoff(base=0.04, cap=0.16)


def test_backoff_doubles_to_its_cap_with_equal_jitter() -> None:
    assert [BACKOFF.ceiling(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert BACKOFF.ceiling(10**9) == 10.0
    rng = random.Random(3)
    delays = [BACKOFF.delay(4, rng) for _ in range(500)]
    assert 2.0 <= min(delays) < 2.2 and 3.8 < max(delays) <= 4.0
    with pytest.raises(ValueError):
        Backoff(base=2.0, cap=1.0)


def _gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_every_backs_off_while_its_job_fails_and_says_so_twice() -> None:
    calls: list[float] = []

    async def job() -> None:
        calls.append(time.monotonic())
        if len(calls) <= 5:
            raise ConnectionError("Redis is down")

    with capture_logs() as logs:
        task = asyncio.create_task(Every("probe", 0.001, job, first_at_once=True, backoff=FAST)())

        async def eight_runs() -> bool:
            return len(calls) >= 8

        await until(eight_runs, limit=10, what="8 runs")
        await _stop(task)
    # After the n-th failure in a row it waits at least half of the n-th ceiling (0.02, 0.04, 0.08 s...).
    for failures, gap in enumerate(_gaps(calls)[:5], start=1):
        assert gap >= FAST.ceiling(failures) / 2
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("probe_failing", "warning"),
        ("probe_recovered", "info"),
    ]
    assert logs[0]["error"] == "ConnectionError: Redis is down" and logs[1]["failed_tries"] == 5


async def test_a_crashing_background_job_is_restarted_with_backoff_and_one_traceback() -> None:
    calls: list[float] = []

    async def job() -> None:
        calls.append(time.monotonic())
        if len(calls) <= 4:
            raise KeyError("bug")
        await asyncio.Event().wait()  # the fifth run stays up

    with capture_logs() as logs:
        task = asyncio.create_task(_keep_running(job, FAST))

        async def recovered() -> bool:
            return any(e["event"] == "background_task_recovered" for e in logs)

        await until(recovered, limit=10, what="the recovery line")
        await _stop(task)
    assert len(calls) == 5
    for failures, gap in enumerate(_gaps(calls), start=1):
        assert gap >= FAST.ceiling(failures) / 2
    assert [e["event"] for e in logs] == ["background_task_failing", "background_task_recovered"]
    assert isinstance(logs[0]["exc_info"], KeyError)


async def test_a_follower_restarts_a_stream_that_fails_or_ends_and_settles_once_it_stays_open() -> None:
    calls: list[float] = []

    async def follow() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return  # the peer ended the stream
        if len(calls) <= 3:
            raise ConnectionError("peer unavailable")
        await asyncio.Event().wait()

    with capture_logs() as logs:
        task = asyncio.create_task(Follower("peer_events", follow, backoff=FAST, settle=0.05)())

        async def two_lines() -> bool:
            return len(logs) >= 2

        await until(two_lines, limit=10, what="two log lines")
        await _stop(task)
    assert len(calls) == 4
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("peer_events_failing", "info"),
        ("peer_events_recovered", "info"),
    ]
    assert logs[0]["error"] == "ConnectionError: the stream ended"
