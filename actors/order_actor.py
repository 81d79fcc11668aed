"""Orders are virtual actors (DESIGN.md): an `OrderActor` is a plain object per order with its
own mailbox, activated on demand inside one of a few `OrderHost` Ray actors chosen by a stable
hash of the order id, and passivated when idle. The database is the truth: every move is saved
with a compare-and-set on the order's version before the actor replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import ray

from actors.directory import RaySupplierDirectory, SupplierDirectory
from domain.ids import stable_shard
from domain.order import DeliveryMethod, HistoryEntry, IssuedTicket, Order
from domain.status import OrderStatus
from persistence.catalog import CatalogRepository
from persistence.db import make_engine
from persistence.orders import OrderRepository, StaleOrder
from suppliers.gateway import ErrorCode, Outcome

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CreateOrder:
    """A create request after the HTTP layer has checked the caller, the grant and the tier."""

    order_id: str
    distributor_id: str
    distributor_order_id: str
    supplier_id: str
    session_id: str
    tier_id: str
    session_ref: str
    tier_ref: str
    quantity: int
    unit_price: int
    settlement_price: int
    face_value: int
    currency: str
    delivery_method: DeliveryMethod
    delivery_address: str | None
    buyer: dict[str, str]
    callback_url: str | None
    request_hash: str


@dataclass(frozen=True, slots=True)
class OrderReply:
    """What an order actor answers: an HTTP status and either the order or an error."""

    http_status: int
    order: Order | None = None
    error_code: str | None = None
    error_message: str = ""

    @staticmethod
    def fail(status: int, code: str, message: str, order: Order | None = None) -> OrderReply:
        return OrderReply(status, order, code, message)


NOT_FOUND = OrderReply.fail(404, "not_found", "no such order")


def issue_reply(order: Order) -> OrderReply:
    """The answer to an issue request, a function of the order's state alone: that is what
    makes any number of repeats answer the same."""
    s = order.status
    if s in (
        OrderStatus.FIXED,
        OrderStatus.REFUNDING,
        OrderStatus.REFUNDED,
        OrderStatus.REFUND_FAIL,
    ):
        return OrderReply(200, order)
    if s is OrderStatus.FIXING:
        return OrderReply(202, order)
    if s is OrderStatus.CANCELED and any(h.status is OrderStatus.FIXING for h in order.history):
        return OrderReply.fail(
            409,
            "issue_failed",
            "the supplier did not issue the tickets; the order is canceled and nothing is owed",
            order,
        )
    if s is OrderStatus.CANCELED and order.failure_reason == "lock_expired":
        return OrderReply.fail(409, "lock_expired", "the seat lock expired", order)
    return OrderReply.fail(409, "invalid_transition", f"cannot issue an order in {s}", order)


def create_reply(order: Order, *, created: bool) -> OrderReply:
    if order.status is OrderStatus.LOCK_FAILED:
        if order.failure_reason == ErrorCode.SOLD_OUT:
            return OrderReply.fail(409, "sold_out", "not enough seats left", order)
        return OrderReply.fail(
            503, "supplier_unavailable", "the supplier could not lock the seats", order
        )
    return OrderReply(201 if created else 200, order)


class OrderActor:
    """One order: its cached state and its mailbox. Rules live in `domain.order`."""

    def __init__(
        self,
        order_id: str,
        repo: OrderRepository,
        suppliers: SupplierDirectory,
        clock: Clock,
        lock_ttl: timedelta,
    ) -> None:
        self.order_id = order_id
        self.mailbox = asyncio.Lock()
        self.last_used = time.monotonic()
        self._repo = repo
        self._suppliers = suppliers
        self._clock = clock
        self._lock_ttl = lock_ttl
        self._order: Order | None = None

    async def _load(self) -> Order | None:
        if self._order is None:
            self._order = await self._repo.get(self.order_id)
        return self._order

    async def _save(self, order: Order) -> None:
        try:
            await self._repo.save(order)
        except StaleOrder:
            # Somebody outside this activation moved the order: drop the cache so the next
            # message decides on the truth; this message fails loudly rather than guess.
            self._order = None
            raise

    async def get(self, distributor_id: str | None) -> OrderReply:
        async with self.mailbox:
            order = await self._load()
        if order is None or (distributor_id is not None and order.distributor_id != distributor_id):
            return NOT_FOUND
        return OrderReply(200, order)

    async def create(self, cmd: CreateOrder) -> OrderReply:
        async with self.mailbox:
            existing = await self._load()
            if existing is not None:
                return self._replay_create(existing, cmd)
            now = self._clock()
            order = Order(
                id=cmd.order_id,
                distributor_id=cmd.distributor_id,
                distributor_order_id=cmd.distributor_order_id,
                supplier_id=cmd.supplier_id,
                session_id=cmd.session_id,
                tier_id=cmd.tier_id,
                quantity=cmd.quantity,
                unit_price=cmd.unit_price,
                settlement_price=cmd.settlement_price,
                face_value=cmd.face_value,
                currency=cmd.currency,
                delivery_method=cmd.delivery_method,
                request_hash=cmd.request_hash,
                created_at=now,
                updated_at=now,
                buyer=dict(cmd.buyer),
                delivery_address=cmd.delivery_address,
                callback_url=cmd.callback_url,
            )
            first = HistoryEntry(OrderStatus.NEW, now)
            order.history.append(first)
            order.unsaved_history.append(first)
            if not await self._repo.insert_new(order):
                # Created by another process between our read and insert: answer as a repeat.
                self._order = None
                winner = await self._load()
                assert winner is not None
                return self._replay_create(winner, cmd)
            self._order = order
            supplier = await self._suppliers.get(cmd.supplier_id)
            result = await supplier.lock(cmd.order_id, cmd.session_ref, cmd.tier_ref, cmd.quantity)
            now = self._clock()
            if result.outcome is Outcome.DONE and result.value is not None:
                order.mark_locked(now, result.value.lock_ref, now + self._lock_ttl)
                await self._save(order)
                return OrderReply(201, order)
            # Fail fast: the distributor has not been paid, so nothing is guessed or retried.
            reason = result.error or "lock_failed"
            order.mark_lock_failed(now, reason)
            await self._save(order)
            if result.outcome is Outcome.UNKNOWN:
                # The supplier may hold seats we do not know of: release them, best effort.
                with contextlib.suppress(Exception):
                    await supplier.release(cmd.order_id)
            return create_reply(order, created=True)

    @staticmethod
    def _replay_create(order: Order, cmd: CreateOrder) -> OrderReply:
        if order.distributor_id != cmd.distributor_id or order.request_hash != cmd.request_hash:
            return OrderReply.fail(
                409,
                "idempotency_conflict",
                "this distributor_order_id was used with a different request",
            )
        return create_reply(order, created=False)

    async def issue(self, distributor_id: str) -> OrderReply:
        async with self.mailbox:
            order = await self._load()
            if order is None or order.distributor_id != distributor_id:
                return NOT_FOUND
            if order.status is not OrderStatus.LOCKED:
                return issue_reply(order)
            now = self._clock()
            supplier = await self._suppliers.get(order.supplier_id)
            if order.lock_expired(now):
                order.cancel(now, "lock_expired")
                await self._save(order)
                with contextlib.suppress(Exception):
                    await supplier.release(order.id)
                return issue_reply(order)
            order.start_fixing(now)
            await self._save(order)  # FIXING is on disk before the supplier hears of it
            result = await supplier.issue(order.id)
            now = self._clock()
            if result.outcome is Outcome.DONE and result.value is not None:
                order.mark_fixed(
                    now, tuple(IssuedTicket(t.code, t.seat) for t in result.value.tickets)
                )
                await self._save(order)
            elif result.outcome is Outcome.FAILED:
                order.cancel(now, f"issue_refused:{result.error or 'refused'}")
                await self._save(order)
                with contextlib.suppress(Exception):
                    await supplier.release(order.id)
            # UNKNOWN: the order stays FIXING; whether it was issued is found out by asking the
            # supplier, never by issuing again.
            return issue_reply(order)


@dataclass(slots=True)
class HostConfig:
    instance: str
    namespace: str
    database_url: str
    db_pool_size: int
    lock_ttl_seconds: int
    idle_seconds: float
    supplier_max_concurrency: int


class OrderHostCore:
    """Activations of order actors, created on demand and passivated when idle."""

    def __init__(
        self,
        repo: OrderRepository,
        suppliers: SupplierDirectory,
        *,
        lock_ttl: timedelta,
        idle_seconds: float,
        clock: Clock = utcnow,
    ) -> None:
        self._repo = repo
        self._suppliers = suppliers
        self._lock_ttl = lock_ttl
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._actors: dict[str, OrderActor] = {}

    def actor(self, order_id: str) -> OrderActor:
        a = self._actors.get(order_id)
        if a is None:
            a = OrderActor(order_id, self._repo, self._suppliers, self._clock, self._lock_ttl)
            self._actors[order_id] = a
        a.last_used = time.monotonic()
        return a

    async def create(self, cmd: CreateOrder) -> OrderReply:
        return await self.actor(cmd.order_id).create(cmd)

    async def issue(self, order_id: str, distributor_id: str) -> OrderReply:
        return await self.actor(order_id).issue(distributor_id)

    async def get(self, order_id: str, distributor_id: str | None) -> OrderReply:
        return await self.actor(order_id).get(distributor_id)

    def passivate_idle(self) -> int:
        """Forget actors idle past the threshold whose mailbox is free; returns how many."""
        cutoff = time.monotonic() - self._idle_seconds
        idle = [
            oid
            for oid, a in self._actors.items()
            if a.last_used < cutoff and not a.mailbox.locked()
        ]
        for oid in idle:
            del self._actors[oid]
        return len(idle)

    @property
    def active(self) -> int:
        return len(self._actors)


@ray.remote(max_restarts=-1, max_task_retries=0)
class OrderHost:
    """A Ray actor hosting many order actors. Async: different orders run concurrently; one
    order's messages are serialised by its own mailbox."""

    def __init__(self, config: HostConfig) -> None:
        self._config = config
        engine = make_engine(config.database_url, pool_size=config.db_pool_size)
        directory = RaySupplierDirectory(
            CatalogRepository(engine),
            instance=config.instance,
            namespace=config.namespace,
            max_concurrency=config.supplier_max_concurrency,
        )
        self._core = OrderHostCore(
            OrderRepository(engine),
            directory,
            lock_ttl=timedelta(seconds=config.lock_ttl_seconds),
            idle_seconds=config.idle_seconds,
        )
        self._janitor: asyncio.Task[None] | None = None

    def _ensure_janitor(self) -> None:
        if self._janitor is None:
            self._janitor = asyncio.get_running_loop().create_task(self._passivate_loop())

    async def _passivate_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self._config.idle_seconds / 4))
            self._core.passivate_idle()

    async def create(self, cmd: CreateOrder) -> OrderReply:
        self._ensure_janitor()
        return await self._core.create(cmd)

    async def issue(self, order_id: str, distributor_id: str) -> OrderReply:
        self._ensure_janitor()
        return await self._core.issue(order_id, distributor_id)

    async def get(self, order_id: str, distributor_id: str | None) -> OrderReply:
        return await self._core.get(order_id, distributor_id)

    async def stats(self) -> dict[str, int]:
        return {"active_orders": self._core.active}

    async def ping(self) -> bool:
        return True


def host_name(instance: str, index: int) -> str:
    return f"{instance}:order-host:{index}"


def host_index(order_id: str, hosts: int) -> int:
    return stable_shard(order_id, hosts)


def start_order_hosts(config: HostConfig, count: int) -> list[Any]:
    """Create (or find) the named order hosts of a platform instance."""
    return [
        OrderHost.options(  # type: ignore[attr-defined]
            name=host_name(config.instance, i),
            namespace=config.namespace,
            get_if_exists=True,
            lifetime="detached",
            max_concurrency=10_000,
            num_cpus=0,
        ).remote(config)
        for i in range(count)
    ]
