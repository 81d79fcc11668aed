"""A connection pool that serves its waiters first come, first served.

SQLAlchemy's asyncio pool keeps its idle connections in an `asyncio.Queue`, and neither that
queue nor the pool around it is fair when callers outnumber the connections:

- the pool takes an idle connection without waiting when one is there, so a caller that just
  arrived takes a connection a waiter was woken for, before that waiter runs;
- the woken waiter finds the queue empty again and joins the queue at its back.

Under a steady load past the pool's size (a flash sale's refusals: 64 requests in flight on
one replica, each reading one row), most callers wait a few milliseconds and a few are
passed over again and again. Measured on the flash sale, before this pool, the existence
read of a known refusal took 4 ms at the median and 174 ms at p99 (406 ms at most), while
the event loop's own lag stayed under 17 ms at p99.

`FairQueue` hands a connection that comes back straight to the longest waiter, so nobody
can take it in between and nobody joins the line twice. `FairAsyncPool` is SQLAlchemy's
asyncio pool with that queue, as `make_engine(..., fair=True)` builds it for the API
replicas. Everything else about the pool (its size, its overflow, its timeout,
invalidation) is SQLAlchemy's. The price: a connection handed over waits for its waiter's
next turn of the loop instead of serving whoever is running, so under a moderate load each
connection does less (`bench.order_moves --pool 8`, 16 in flight on 8 + 2 connections: p99
6.7-7.8 ms against 4.3-5.4 ms on SQLAlchemy's pool), which is why the order hosts, the
supplier hosts and the settlement actor keep SQLAlchemy's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Generic, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util.langhelpers import memoized_property
from sqlalchemy.util.queue import AsyncAdaptedQueue

T = TypeVar("T")


class FairQueue(Generic[T]):
    """What SQLAlchemy's queue asks of an `asyncio.Queue` (`empty`, `full`, `qsize`,
    `put_nowait`, `put`, `get_nowait`, `get`), first come, first served.

    An item put while someone waits goes to the longest waiter at once; so an item is only
    ever held while nobody waits, and a caller that finds none waits behind every earlier
    one. A waiter cancelled (a timeout) just as it was handed an item passes it on, and
    nothing is lost. An item handed over no longer counts against `maxsize`: a waiter may
    not run before several more connections come back, and those are kept rather than
    closed (counting it, the pool closed and remade connections under a steady load). Futures
    are made on the running loop of each `get`: the queue binds to no loop."""

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: T) -> None:
        if self._handed_over(item):
            return
        if self.full():
            raise asyncio.QueueFull
        self._items.append(item)

    def _handed_over(self, item: T) -> bool:
        """Whether `item` went to the longest live waiter (there was one)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    async def put(self, item: T) -> None:
        self.put_nowait(item)  # (the pool never puts more than it has taken out)

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> T:
        if self._items:  # (then nobody waits: an item is held only while nobody does)
            return self._items.popleft()
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._pass_on(waiter.result())  # handed over as it gave up: the next one's
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _pass_on(self, item: T) -> None:
        """An item a waiter was handed but did not take: to the next waiter, else kept even
        past `maxsize`. (Returns that came meanwhile may have filled the queue; an item
        refused here would be lost, neither pooled nor closed. Kept, the queue holds more
        idle connections than its size until checkouts take them: a return that finds it
        full closes itself, as always, and the pool never holds more than its size plus its
        overflow.)"""
        if not self._handed_over(item):
            self._items.append(item)


class FairAsyncAdaptedQueue(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """SQLAlchemy's queue for the asyncio pool, over a `FairQueue`."""

    @memoized_property
    def _queue(self) -> FairQueue[ConnectionPoolEntry]:  # type: ignore[override]
        return FairQueue(maxsize=self.maxsize)  # (first in, first out: never LIFO)


class FairAsyncPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio pool whose waiters are served in the order they came."""

    _queue_class = FairAsyncAdaptedQueue
