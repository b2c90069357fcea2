"""Fan-out to local watchers: everyone gets every item; a watcher too slow to keep up is dropped."""

from __future__ import annotations

import grpc
import pytest

from workermon_core.fanout import Fanout, SlowWatcher


async def test_every_subscriber_gets_every_item_and_a_slow_one_is_dropped() -> None:
    fanout: Fanout[int] = Fanout(buffer=3)
    with fanout.subscribe() as fast, fanout.subscribe() as slow:
        assert fanout.subscribers == 2
        got: list[int] = []
        for i in range(5):
            fanout.publish(i)
            got.append(await fast.get())
        assert got == [0, 1, 2, 3, 4]
        # The slow one held three items when the fourth came: it was dropped, and learns it on read.
        assert fanout.subscribers == 1
        with pytest.raises(SlowWatcher) as caught:
            await slow.get()
        assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert fanout.subscribers == 0
