"""The once-a-minute schedule on taskiq: a scheduler sends, a receiver runs, both on the suite's Redis.

Several schedulers may run (one per replica): each sends its own task every minute, and the cycles
they trigger all target the same minute by the clock, so the unique (queue, minute) rows make the
extra cycles no-ops. taskiq's cron fires within the minute, not at second 0, which is why the minute
comes from the clock and not from the firing time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from taskiq import Context, TaskiqDepends, TaskiqScheduler
from taskiq.api import run_receiver_task, run_scheduler_task
from taskiq.schedule_sources import LabelScheduleSource

from workermon_core.redis_store import key_prefix
from workermon_core.task_queue import TaskQueueBroker

from .collector import Collector

log = structlog.get_logger("workermon.collector.schedule")

COLLECT_TASK = "workermon.collector.collect_minute"
MAINTAIN_TASK = "workermon.collector.maintain"


async def collect_minute(context: Context = TaskiqDepends()) -> None:  # noqa: B008 - taskiq's injection idiom
    """Collect the last full minute of every queue."""
    collector: Collector = context.state.collector
    await collector.collect()


async def maintain(context: Context = TaskiqDepends()) -> None:  # noqa: B008
    """Hourly rollups and retention."""
    maintenance = context.state.maintenance
    await maintenance()


@dataclass
class Schedule:
    """The broker, scheduler and their running tasks."""

    broker: TaskQueueBroker
    scheduler: TaskiqScheduler
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Run the receiver and the scheduler inside this process."""
        await self.broker.startup()
        self.tasks = [
            asyncio.create_task(run_receiver_task(self.broker, run_startup=False, max_async_tasks=4)),
            asyncio.create_task(run_scheduler_task(self.scheduler)),
        ]

    async def stop(self) -> None:
        """Stop both and close the broker."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.broker.shutdown()


def build_schedule(redis_url: str, prefix: str, collector: Collector, maintenance: object) -> Schedule:
    """A broker on the suite's Redis with the minute and hourly tasks registered."""
    broker = TaskQueueBroker(redis_url, key_prefix(prefix) + ":taskiq:collector")
    broker.state.collector = collector
    broker.state.maintenance = maintenance
    broker.register_task(collect_minute, task_name=COLLECT_TASK, schedule=[{"cron": "* * * * *"}])
    broker.register_task(maintain, task_name=MAINTAIN_TASK, schedule=[{"cron": "7 * * * *"}])
    scheduler = TaskiqScheduler(broker, sources=[LabelScheduleSource(broker)])
    return Schedule(broker=broker, scheduler=scheduler)
