"""Where each actor of a platform lives: its name, and which one an order's calls go to.

- Order hosts: an order belongs to one of 256 partitions (`domain.partitions`, a hash of
  its id), and each partition to one order host, as the assignment in the database says
  (`persistence.partitions`); ops change the number of hosts while orders flow. The order id
  is derived from the distributor and its own order id, so a create is routed before the
  order exists.
- Supplier actors live in supplier hosts. A supplier with one replica (every supplier, until
  ops scale it) is hosted by pool host `stable_shard(supplier_id, pool_hosts)`, one of a few
  processes that host every such supplier, activated on use. A supplier scaled to n > 1
  replicas has n dedicated hosts, one replica each; an order's calls go to replica
  `stable_shard(order_id, replicas)`, and each replica polls and releases for the same share
  of the orders.
- The settlement actor: one per platform.

Everything here finds actors by name; starting them is `actors.startup`'s (and, for a
supplier's actor, `actors.directory`'s) work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import ray

from actors.channel import ChannelClient, ChannelLost
from actors.config import PlatformConfig
from actors.interfaces import ORDER_CALLS, OrderHostCalls, SupplierActorCalls, SupplierHostCalls
from actors.remote import ActorRole, ActorUnavailable, bound, typed
from domain.ids import stable_shard
from domain.partitions import Assignment, NotOwned
from persistence.partitions import PartitionRepository

log = logging.getLogger(__name__)


def order_host_name(instance: str, index: int) -> str:
    return f"{instance}:order-host:{index}"


def supplier_actor_name(instance: str, supplier_id: str, replica: int = 0) -> str:
    """The dedicated host of one replica of a supplier scaled past one."""
    return f"{instance}:supplier:{supplier_id}:{replica}"


def supplier_pool_host_name(instance: str, index: int) -> str:
    return f"{instance}:supplier-host:{index}"


def pooled(replicas: int) -> bool:
    """Whether a supplier with this many replicas lives in the pool (else: dedicated hosts)."""
    return replicas <= 1


def pool_index(supplier_id: str, pool_hosts: int) -> int:
    return stable_shard(supplier_id, max(1, pool_hosts))


def settlement_actor_name(instance: str) -> str:
    return f"{instance}:settlement"


def supplier_replica(order_id: str, replicas: int) -> int:
    """The replica of a supplier's actor that serves an order (0 for calls of no order)."""
    return stable_shard(order_id, max(1, replicas)) if order_id else 0


def find_actor(platform: PlatformConfig, name: str) -> Any:
    """A running actor's handle by name (ValueError if there is none)."""
    return ray.get_actor(name, namespace=platform.namespace)


class OrderHosts:
    """Routes each order's calls to the order host that owns its partition, as the
    database's assignment says (`persistence.partitions`). The assignment's version is read
    at most every `refresh_s` while calls flow (in the background: a call never waits for
    it but the first), so a router learns a change within a second; a call refused by a host
    that no longer owns the partition (`NotOwned`), or sent to a host that is not running
    yet, is routed again on a fresh read, backing off, for up to `retry_s`, then fails as
    the host being unavailable (the API's 503 order_host_unavailable).

    An order's calls (`ORDER_CALLS`) go over the host's channel (`actors.channel`), one
    connection per host, opened on first use with the address the host gives by a Ray call
    and opened again once lost; they fail as a Ray call to the host would."""

    def __init__(
        self,
        platform: PlatformConfig,
        partitions: PartitionRepository,
        *,
        refresh_s: float = 0.5,
        retry_s: float = 10.0,
    ) -> None:
        self._platform = platform
        self._partitions = partitions
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self._assignment: Assignment | None = None
        self._checked_at = 0.0
        self._refreshing: asyncio.Task[Assignment] | None = None
        self._handles: dict[int, OrderHostCalls] = {}
        self._actor_ids: dict[int, Any] = {}
        # Per host: the actor the channel was opened to, and the channel (or its opening).
        self._channels: dict[int, tuple[Any, asyncio.Task[ChannelClient]]] = {}
        self.rerouted = 0  # calls routed again (tests and benchmarks read it)

    def host(self, index: int) -> OrderHostCalls:
        """Order host `index`'s handle (ValueError if it is not running)."""
        h = self._handles.get(index)
        if h is None:
            p = self._platform
            raw = find_actor(p, order_host_name(p.instance, index))
            self._actor_ids[index] = raw._actor_id
            h = self._handles[index] = typed(raw, OrderHostCalls, ActorRole.ORDER_HOST)
        return h

    async def _gone(self, index: int, used: Any, order_id: str) -> bool:
        """Host `index` (the actor `used`) could not be reached: whether the call should be
        routed again (the host was let go and started anew, or the order's partition has a
        new owner). Many calls may fail on one stale handle at once: the first replaces it."""
        if self._actor_ids.get(index) == used:
            self._actor_ids.pop(index, None)
            self._handles.pop(index, None)
        try:
            self.host(index)
        except ValueError:
            return True  # not running: a scale-down this router has not read, or starting
        if self._actor_ids.get(index) != used:
            return True
        return (await self.assignment(fresh=True)).host_for(order_id) != index

    async def _read(self) -> Assignment:
        version = await self._partitions.version()
        current = self._assignment
        if current is None or version != current.version:
            found = await self._partitions.read()
            if found is None:
                raise LookupError("the order hosts' assignment was never made")
            current = self._assignment = found
        self._checked_at = time.monotonic()
        return current

    def _refresh(self) -> asyncio.Task[Assignment]:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._read())
            self._refreshing.add_done_callback(_logged)
        return self._refreshing

    async def assignment(self, *, fresh: bool = False) -> Assignment:
        """The assignment as last read; read again first if `fresh` (or never read)."""
        current = self._assignment
        if fresh or current is None:
            return await asyncio.shield(self._refresh())
        if time.monotonic() - self._checked_at >= self._refresh_s:
            self._refresh()  # in the background: this call goes by the last one
        return current

    async def hosts(self) -> dict[int, OrderHostCalls]:
        """Every running host the assignment uses, by index."""
        out: dict[int, OrderHostCalls] = {}
        for i in sorted((await self.assignment(fresh=True)).hosts_in_use()):
            try:
                out[i] = self.host(i)
            except ValueError:
                continue
        return out

    def for_order(self, order_id: str) -> OrderHostCalls:
        """The order's calls, each sent to the host owning its partition at the time."""
        return cast(OrderHostCalls, _Routed(self, order_id))

    async def call(self, order_id: str, method: str, args: tuple[Any, ...]) -> Any:
        deadline = time.monotonic() + self._retry_s
        delay = 0.01
        fresh = False
        while True:
            assignment = await self.assignment(fresh=fresh)
            index = assignment.host_for(order_id)
            try:
                host = self.host(index)
            except ValueError:
                host = None  # started a moment from now (a scale-up), or not at all
            used = self._actor_ids.get(index)
            if host is not None:
                try:
                    if method not in ORDER_CALLS:
                        return await getattr(host, method)(*args)
                    channel = await self._channel(index, used, host, method)
                    return await channel.call(method, args)
                except NotOwned:
                    pass
                except ActorUnavailable as exc:
                    # (A call the host failed, or a host restarting in place: the caller's
                    # to retry. Only a host replaced or no longer the owner is routed again.)
                    if exc.cause is not None or not await self._gone(index, used, order_id):
                        raise
            if time.monotonic() + delay > deadline:
                log.warning(
                    "%s of %s: no host took it in %.1f s (last asked: host %d, version %d)",
                    method,
                    order_id,
                    self._retry_s,
                    index,
                    assignment.version,
                )
                raise ActorUnavailable(ActorRole.ORDER_HOST, method, None)
            self.rerouted += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
            fresh = True

    async def _channel(
        self, index: int, used: Any, host: OrderHostCalls, method: str
    ) -> ChannelClient:
        """Host `index`'s channel (the actor `used`): the one open, or a new one (many calls
        wait for one opening)."""
        entry = self._channels.get(index)
        if entry is None or entry[0] != used or _spent(entry[1]):
            if entry is not None:
                _close(entry[1])
            opening = asyncio.ensure_future(_open_channel(host))
            opening.add_done_callback(_retrieved)
            entry = self._channels[index] = (used, opening)
        try:
            return await asyncio.shield(entry[1])
        except ChannelLost:
            raise ActorUnavailable(ActorRole.ORDER_HOST, method, None) from None


async def _open_channel(host: OrderHostCalls) -> ChannelClient:
    return await ChannelClient.connect(await host.channel(), ActorRole.ORDER_HOST)


def _opened(opening: asyncio.Task[ChannelClient]) -> ChannelClient | None:
    """The channel an opening made, if it is done and succeeded."""
    if not opening.done() or opening.cancelled() or opening.exception() is not None:
        return None
    return opening.result()


def _spent(opening: asyncio.Task[ChannelClient]) -> bool:
    """Whether a channel's opening failed, or the channel it opened was lost since."""
    if not opening.done():
        return False
    channel = _opened(opening)
    return channel is None or channel.lost


def _close(opening: asyncio.Task[ChannelClient]) -> None:
    """Close a channel let go of (to a host replaced, or since lost), once it is open (calls
    still waiting for it then fail as the host being unreachable, and are routed again)."""

    def close(task: asyncio.Task[ChannelClient]) -> None:
        channel = _opened(task)
        if channel is not None:
            channel.close()

    if opening.done():
        close(opening)
    else:
        opening.add_done_callback(close)


def _retrieved(task: asyncio.Task[Any]) -> None:
    """(A failed opening is seen by the calls waiting for it; none may be left.)"""
    if not task.cancelled():
        task.exception()


def _logged(task: asyncio.Task[Assignment]) -> None:
    """A background read that failed is logged (the next call reads again)."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("reading the order hosts' assignment failed: %r", task.exception())


class _Routed:
    """One order's calls through the router (`OrderHostCalls`, the order id given)."""

    def __init__(self, router: OrderHosts, order_id: str) -> None:
        self._router = router
        self._order_id = order_id

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        router, order_id = self._router, self._order_id

        def call(*args: Any) -> Awaitable[Any]:
            return router.call(order_id, name, args)

        return call


def running_supplier_actor(
    platform: PlatformConfig, supplier_id: str, replica: int | None = None
) -> SupplierActorCalls:
    """A supplier's actor in its running host (ValueError if the host is not running):
    `replica` None for a pooled supplier, else its dedicated replica's."""
    if replica is None:
        name = supplier_pool_host_name(
            platform.instance, pool_index(supplier_id, platform.suppliers.pool_hosts)
        )
    else:
        name = supplier_actor_name(platform.instance, supplier_id, replica)
    return bound(find_actor(platform, name), supplier_id, SupplierActorCalls, ActorRole.SUPPLIER)


def running_supplier_host(platform: PlatformConfig, name: str) -> SupplierHostCalls:
    """A running supplier host by name (ValueError if it is not running)."""
    return typed(find_actor(platform, name), SupplierHostCalls, ActorRole.SUPPLIER)
