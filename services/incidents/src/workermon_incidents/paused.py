"""Which queues are paused now, from the flag BullMQ keeps in each queue's `meta` hash.

The rules judge the last collected minute; an operator who pauses a queue (PauseQueue, or BullMQ
itself) means "I know, stop paging" at once, so the notification decision reads the live flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from workermon_queues.bullmq.backend import BullMQBackend

log = structlog.get_logger("workermon.incidents")


class PausedQueues:
    """Reads the paused flag of queues in one pipelined round trip."""

    def __init__(self, backend: BullMQBackend) -> None:
        self.backend = backend

    async def paused(self, queues: Sequence[str]) -> set[str]:
        """The queues among `queues` that are paused; none when Redis cannot say (nothing is muted
        on a guess)."""
        names = list(dict.fromkeys(queues))
        if not names:
            return set()
        try:
            async with self.backend.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hexists(self.backend.key(name, "meta"), "paused")
                flags = await pipe.execute()
        except Exception as exc:
            log.warning("paused_flags_unreadable", error=str(exc))
            return set()
        return {name for name, flag in zip(names, flags, strict=True) if flag}
