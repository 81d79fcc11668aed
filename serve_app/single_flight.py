"""Identical calls in flight at once share one call: the one single-flight helper of the API,
used by its caches (concurrent misses of a key share one load) and by its order routes
(identical get / issue / cancel calls of one order share one trip to the order's host).

A retry storm (a distributor's client timing out and resending the same issue a thousand
times) would otherwise cost a thousand trips to the order's host, each answered the same,
because an order's reply to issue / cancel / get is a function of its state. A request that
joins a call already in flight gets that call's reply: a state the order was in while the
request was being served, which is what it would have been told had it waited its turn in
the order's mailbox.

The call runs in a task of its own: a caller that gives up (its client went away) leaves it
running for the others. A failure reaches every caller and is not kept: the next call after
it is a call of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        """Calls in flight now."""
        return len(self._running)

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        return await asyncio.shield(self.start(key, call))

    def start(self, key: K, call: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        """The call in flight for `key`, started now if there is none; nobody need await it
        (its failure is retrieved, and kept by nobody)."""
        task = self._running.get(key)
        if task is None or task.done():  # (a finished call is forgotten on the next turn)
            task = asyncio.ensure_future(call())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def forget(self) -> None:
        """Calls made from now on do not join the ones in flight (which still answer their
        own callers)."""
        self._running.clear()

    def _finished(self, key: K, done: asyncio.Task[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved, even when every caller had gone
