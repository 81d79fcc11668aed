"""The fair pool's queue (persistence/fair_pool.py): first come, first served, whatever
arrives between a hand-over and the waiter's next turn, and nothing lost to a waiter that
gives up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.util import greenlet_spawn

from persistence.fair_pool import FairAsyncPool, FairQueue


async def test_an_item_goes_to_the_longest_waiter_not_to_a_newcomer() -> None:
    q: FairQueue[str] = FairQueue(maxsize=2)
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait("a")
    # A newcomer arriving before the first waiter's turn finds nothing to take.
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    newcomer = asyncio.ensure_future(q.get())
    q.put_nowait("b")
    q.put_nowait("c")
    assert (await first, await second, await newcomer) == ("a", "b", "c")
    assert q.empty()


async def test_items_are_kept_only_while_nobody_waits_and_up_to_maxsize() -> None:
    q: FairQueue[int] = FairQueue(maxsize=2)
    q.put_nowait(1)
    q.put_nowait(2)
    assert q.full()
    assert q.qsize() == 2
    with pytest.raises(asyncio.QueueFull):
        q.put_nowait(3)
    assert await q.get() == 1  # (taken at once: nobody was waiting)
    assert q.get_nowait() == 2
    assert q.empty()
    assert not q.full()


async def test_a_waiter_that_times_out_leaves_the_line() -> None:
    q: FairQueue[str] = FairQueue()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await q.get()
    later = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait("x")
    assert await later == "x"


async def test_a_waiter_cancelled_as_it_was_handed_an_item_passes_it_on() -> None:
    q: FairQueue[str] = FairQueue()
    first = asyncio.ensure_future(q.get())
    second = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait("conn")  # handed to the first waiter...
    first.cancel()  # ...which gives up before its turn
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == "conn"
    assert q.empty()


async def test_an_item_handed_over_as_the_last_waiter_gave_up_is_kept() -> None:
    q: FairQueue[str] = FairQueue()
    only = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait("conn")
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only
    assert q.get_nowait() == "conn"  # not lost: the pool's connection is still there


async def test_a_waiter_cancelled_after_the_queue_filled_behind_it_loses_nothing() -> None:
    """A waiter handed an item, then cancelled once returns had filled the queue behind it,
    still passes its item on: it is kept, past maxsize, rather than lost (neither pooled nor
    closed), and the waiter's caller sees its cancellation, not a full queue."""
    q: FairQueue[str] = FairQueue(maxsize=2)
    waiter = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait("first")  # handed over; the waiter has not run yet
    q.put_nowait("second")
    q.put_nowait("third")
    assert q.full()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert q.qsize() == 3
    assert sorted(q.get_nowait() for _ in range(3)) == ["first", "second", "third"]
    q.put_nowait("back")  # (room again once taken)
    assert q.get_nowait() == "back"


async def test_the_pool_loses_no_connection_to_a_waiter_cancelled_after_its_hand_over() -> None:
    """The same on SQLAlchemy's pool around the queue, with connections that count their
    closes: every connection made is either idle in the pool or closed, and the overflow
    count comes back to zero once the pool is disposed."""
    made: list[object] = []
    closed: list[object] = []

    class Conn:
        def __init__(self) -> None:
            made.append(self)

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            closed.append(self)

    def creator() -> Any:
        return Conn()

    pool = FairAsyncPool(creator, pool_size=2, max_overflow=2, timeout=5)
    held = [await greenlet_spawn(pool.connect) for _ in range(4)]  # the pool's 2, and 2 more
    waiter = asyncio.ensure_future(greenlet_spawn(pool.connect))
    await asyncio.sleep(0.01)  # it waits in line

    # One comes back (handed to the waiter, which has not run yet), then two more fill the
    # queue behind it; then the waiter gives up.
    def three_back() -> None:
        for h in held[:3]:
            h.close()

    await greenlet_spawn(three_back)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await greenlet_spawn(held[3].close)  # the queue is over full: this one closes itself
    assert pool.checkedout() == 0
    assert len(made) == 4
    assert len(closed) == 1
    assert pool.checkedin() == 3  # nothing lost: 4 made, 1 closed, 3 idle
    await greenlet_spawn(pool.dispose)
    assert len(closed) == 4
