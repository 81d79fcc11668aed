"""Orders are virtual actors (DESIGN.md): an `OrderActor` is a plain object per order with its
own mailbox, activated on demand inside one of a few `OrderHost` Ray actors chosen by a stable
hash of the order id, and passivated when idle. The database is the truth: every move is saved
with a compare-and-set on the order's version, together with the rows that go with it
(negotiation, release, supplier-refund record, callbacks), before the actor replies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import ray

from actors.directory import RaySupplierDirectory, SupplierDirectory, SupplierPort
from actors.runtime import every, named_actor
from domain.ids import stable_shard
from domain.negotiation import PollingPolicy
from domain.order import DeliveryMethod, HistoryEntry, IssuedTicket, Order
from domain.status import DeliveryStatus, InvalidTransition, OrderStatus
from persistence.catalog import CatalogRepository
from persistence.db import make_engine
from persistence.orders import (
    Effects,
    OrderRepository,
    StartNegotiation,
    SupplierRefundRecord,
)
from persistence.work import WorkRepository
from suppliers.gateway import CallResult, ErrorCode, IssueInfo, Outcome, RefundInfo

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")


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
    lock_seconds: int | None = None


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
ISSUED_STATES = frozenset(
    {OrderStatus.FIXED, OrderStatus.REFUNDING, OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL}
)


def issue_reply(order: Order) -> OrderReply:
    """The answer to an issue request, a function of the order's state alone: that is what
    makes any number of repeats answer the same."""
    s = order.status
    if s in ISSUED_STATES:
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


def cancel_reply(order: Order) -> OrderReply:
    if order.status is OrderStatus.CANCELED and not any(
        h.status is OrderStatus.FIXING for h in order.history
    ):
        return OrderReply(200, order)
    return OrderReply.fail(
        409, "invalid_transition", f"only a LOCKED order can be canceled, not {order.status}", order
    )


def refund_reply(order: Order) -> OrderReply:
    s = order.status
    if s is OrderStatus.REFUNDING:
        return OrderReply(202, order)
    if s in (OrderStatus.REFUNDED, OrderStatus.REFUND_FAIL):
        return OrderReply(200, order)
    return OrderReply.fail(
        409, "invalid_transition", f"only a FIXED order can be refunded, not {s}", order
    )


def create_reply(order: Order, *, created: bool) -> OrderReply:
    if order.status is OrderStatus.LOCK_FAILED:
        if order.failure_reason == ErrorCode.SOLD_OUT:
            return OrderReply.fail(409, "sold_out", "not enough seats left", order)
        return OrderReply.fail(
            503, "supplier_unavailable", "the supplier could not lock the seats", order
        )
    return OrderReply(201 if created else 200, order)


async def _guarded(call: Awaitable[CallResult[T]]) -> CallResult[T]:
    """A supplier call whose carrier failed (the supplier actor died mid-call) has an unknown
    outcome; it is never an exception to the order's logic."""
    try:
        return await call
    except Exception as exc:
        log.warning("supplier call failed in transit: %r", exc)
        return CallResult(Outcome.UNKNOWN, error="transport", message=repr(exc)[:300])


def _tickets(info: IssueInfo) -> tuple[IssuedTicket, ...]:
    return tuple(IssuedTicket(t.code, t.seat) for t in info.tickets)


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

    # -- plumbing ------------------------------------------------------------------------
    async def _load(self) -> Order | None:
        if self._order is None:
            self._order = await self._repo.get(self.order_id)
        return self._order

    async def _save(self, order: Order, effects: Effects | None = None) -> None:
        try:
            await self._repo.save(order, effects)
        except BaseException:
            # Not saved (stale, or the database failed): the cached copy holds moves that are
            # not on disk, so drop it; the next message decides on the truth.
            self._order = None
            raise

    async def _supplier(self, order: Order) -> SupplierPort:
        return await self._suppliers.get(order.supplier_id, order.id)

    async def _start_negotiation(
        self, order: Order, supplier: SupplierPort, kind: str, now: datetime
    ) -> Effects:
        try:
            policy = await supplier.policy()
        except Exception:  # the supplier actor is restarting: poll soon, decide later
            policy = PollingPolicy(timedelta(seconds=2), timedelta(minutes=10), adaptive=False)
        return Effects(
            start_negotiation=StartNegotiation(
                kind, now + policy.interval, now + policy.give_up_after
            )
        )

    # -- messages from the API -------------------------------------------------------------
    async def get(self, distributor_id: str | None) -> OrderReply:
        async with self.mailbox:
            order = await self._load()
        if order is None or (distributor_id is not None and order.distributor_id != distributor_id):
            return NOT_FOUND
        return OrderReply(200, order)

    async def create(self, cmd: CreateOrder) -> OrderReply:
        async with self.mailbox:
            # Only what this actor already holds is checked here: a create is nearly always
            # new, so the database is asked by the insert itself (a duplicate id fails it).
            if self._order is not None:
                return self._replay_create(self._order, cmd)
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
            # NEW is on disk before the supplier hears of the lock: whatever happens next, a
            # timer can find the order and release what the supplier may hold.
            if not await self._repo.insert_new(order):
                self._order = None
                winner = await self._load()
                assert winner is not None
                return self._replay_create(winner, cmd)
            self._order = order
            supplier = await self._supplier(order)
            result = await _guarded(
                supplier.lock(cmd.order_id, cmd.session_ref, cmd.tier_ref, cmd.quantity)
            )
            now = self._clock()
            if result.outcome is Outcome.DONE and result.value is not None:
                ttl = timedelta(seconds=cmd.lock_seconds) if cmd.lock_seconds else self._lock_ttl
                order.mark_locked(now, result.value.lock_ref, now + ttl)
                await self._save(order)
                return OrderReply(201, order)
            # Fail fast: the distributor has not paid, so nothing is guessed or retried. When
            # the outcome is unknown the supplier may hold seats: a release is scheduled.
            order.mark_lock_failed(now, result.error or "lock_failed")
            await self._save(order, Effects(schedule_release=result.outcome is Outcome.UNKNOWN))
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
            if order.lock_expired(now):
                order.cancel(now, "lock_expired")
                await self._save(order, Effects(schedule_release=True))
                return issue_reply(order)
            supplier = await self._supplier(order)
            order.start_fixing(now)
            await self._save(order)  # FIXING is on disk before the supplier hears of it
            result = await _guarded(supplier.issue(order.id))
            await self._apply_issue_result(order, supplier, result, negotiated=False)
            return issue_reply(order)

    async def _apply_issue_result(
        self,
        order: Order,
        supplier: SupplierPort,
        result: CallResult[IssueInfo],
        *,
        negotiated: bool,
    ) -> None:
        now = self._clock()
        resolve = ("issue", result.outcome.value) if negotiated else None
        if result.outcome is Outcome.DONE and result.value is not None:
            order.mark_fixed(now, _tickets(result.value))
            await self._save(order, Effects(resolve_negotiation=resolve))
        elif result.outcome is Outcome.FAILED:
            order.cancel(now, f"issue_failed:{result.error or 'refused'}")
            await self._save(order, Effects(resolve_negotiation=resolve, schedule_release=True))
        elif not negotiated:
            # Unknown: whether it was issued is found out by asking, never by issuing again.
            await self._save(order, await self._start_negotiation(order, supplier, "issue", now))

    async def cancel(self, distributor_id: str | None) -> OrderReply:
        async with self.mailbox:
            order = await self._load()
            if order is None or (
                distributor_id is not None and order.distributor_id != distributor_id
            ):
                return NOT_FOUND
            if order.status is OrderStatus.LOCKED:
                now = self._clock()
                reason = "lock_expired" if order.lock_expired(now) else "canceled_by_distributor"
                order.cancel(now, reason)
                await self._save(order, Effects(schedule_release=True))
            return cancel_reply(order)

    async def refund(self, distributor_id: str, reason: str) -> OrderReply:
        async with self.mailbox:
            order = await self._load()
            if order is None or order.distributor_id != distributor_id:
                return NOT_FOUND
            if order.status is not OrderStatus.FIXED:
                return refund_reply(order)
            supplier = await self._supplier(order)
            order.start_refund(self._clock(), reason or "requested_by_distributor")
            await self._save(order)
            result = await _guarded(supplier.refund(order.id))
            await self._apply_refund_result(order, supplier, result, negotiated=False)
            return refund_reply(order)

    async def _apply_refund_result(
        self,
        order: Order,
        supplier: SupplierPort,
        result: CallResult[RefundInfo],
        *,
        negotiated: bool,
    ) -> None:
        now = self._clock()
        resolve = ("refund", result.outcome.value) if negotiated else None
        if result.outcome is Outcome.DONE and result.value is not None:
            order.mark_refunded(now)
            record = SupplierRefundRecord(result.value.refunded_at, result.value.initiated_by)
            await self._save(order, Effects(resolve_negotiation=resolve, supplier_refund=record))
        elif result.outcome is Outcome.FAILED:
            order.mark_refund_failed(now, f"refund_refused:{result.error or 'refused'}")
            await self._save(order, Effects(resolve_negotiation=resolve))
        elif not negotiated:
            await self._save(order, await self._start_negotiation(order, supplier, "refund", now))

    # -- messages from the supplier actor and the timers -----------------------------------
    async def negotiation_answer(self, kind: str, result: CallResult[Any]) -> str:
        """A poll of the supplier answered (DONE or FAILED); returns the order's status."""
        async with self.mailbox:
            order = await self._load()
            if order is None:
                return "missing"
            supplier = await self._supplier(order)
            if kind == "issue" and order.status is OrderStatus.FIXING:
                await self._apply_issue_result(order, supplier, result, negotiated=True)
            elif kind == "refund" and order.status is OrderStatus.REFUNDING:
                await self._apply_refund_result(order, supplier, result, negotiated=True)
            else:
                # Already decided (for example by an operator): just close the negotiation.
                await self._save(order, Effects(resolve_negotiation=(kind, "superseded")))
            return order.status.value

    async def supplier_refunded(self, refunded_at: datetime) -> str:
        """The supplier refunded on its own (a show was cancelled)."""
        async with self.mailbox:
            order = await self._load()
            if order is None:
                return "missing"
            now = self._clock()
            record = SupplierRefundRecord(refunded_at, "supplier")
            if order.status is OrderStatus.FIXED:
                order.start_refund(now, "refunded_by_supplier")
                order.mark_refunded(now)
                await self._save(order, Effects(supplier_refund=record))
            elif order.status is OrderStatus.REFUNDING:
                order.mark_refunded(now)
                await self._save(
                    order,
                    Effects(
                        supplier_refund=record, resolve_negotiation=("refund", "supplier_feed")
                    ),
                )
            return order.status.value

    async def delivery_update(self, status: str) -> str:
        async with self.mailbox:
            order = await self._load()
            if order is None:
                return "missing"
            target = DeliveryStatus(status)
            if order.delivery_status is target:
                return order.delivery_status.value
            try:
                # A DELIVERED update may arrive without the SHIPPED before it: ship first.
                if (
                    target is DeliveryStatus.DELIVERED
                    and order.delivery_status is DeliveryStatus.PENDING
                ):
                    order.advance_delivery(DeliveryStatus.SHIPPED, self._clock())
                order.advance_delivery(target, self._clock())
            except InvalidTransition:
                self._order = None  # the cached copy was changed: reload next time
                return "ignored"
            await self._save(order, Effects(delivery_changed=True))
            return order.delivery_status.value

    async def operator_resolve(
        self, action: str, tickets: tuple[IssuedTicket, ...], note: str
    ) -> OrderReply:
        """A person decides a flagged negotiation: `cancel` (the supplier confirmed nothing was
        issued), `issued` (with the tickets the supplier gave them) or `retry` (poll again)."""
        async with self.mailbox:
            order = await self._load()
            if order is None:
                return NOT_FOUND
            if order.status is not OrderStatus.FIXING:
                return OrderReply.fail(
                    409, "invalid_transition", f"the order is {order.status}, not FIXING", order
                )
            now = self._clock()
            if action == "cancel":
                order.cancel(now, f"operator:{note or 'not issued'}")
                await self._save(
                    order,
                    Effects(
                        resolve_negotiation=("issue", "operator_cancel"), schedule_release=True
                    ),
                )
            elif action == "issued":
                order.mark_fixed(now, tickets)
                await self._save(order, Effects(resolve_negotiation=("issue", "operator_issued")))
            else:
                supplier = await self._supplier(order)
                await self._save(
                    order, await self._start_negotiation(order, supplier, "issue", now)
                )
            return OrderReply(200, order)

    async def sweep(self, new_abandoned_before: datetime) -> str:
        """Move an order stuck in an intermediate state on (after a crash or an expiry)."""
        async with self.mailbox:
            self._order = None  # decide on the database's state, not the cache
            order = await self._load()
            if order is None:
                return "missing"
            now = self._clock()
            if order.status is OrderStatus.NEW and order.created_at < new_abandoned_before:
                order.mark_lock_failed(now, "lock_abandoned")
                await self._save(order, Effects(schedule_release=True))
            elif order.lock_expired(now):
                order.cancel(now, "lock_expired")
                await self._save(order, Effects(schedule_release=True))
            elif order.status in (OrderStatus.FIXING, OrderStatus.REFUNDING):
                kind = "issue" if order.status is OrderStatus.FIXING else "refund"
                supplier = await self._supplier(order)
                # Poll at once: the call that was in flight when the process died is the
                # only one there will ever be.
                fx = await self._start_negotiation(order, supplier, kind, now)
                assert fx.start_negotiation is not None
                fx.start_negotiation = StartNegotiation(kind, now, fx.start_negotiation.give_up_at)
                await self._save(order, fx)
            return order.status.value


@dataclass(slots=True)
class HostConfig:
    instance: str
    namespace: str
    database_url: str
    db_pool_size: int
    lock_ttl_seconds: int
    idle_seconds: float
    supplier_max_concurrency: int
    hosts: int = 1
    sweep_seconds: float = 5.0
    supplier_tick_seconds: float = 1.0
    abandoned_lock_seconds: float = 60.0
    platform_seed_b64: str = ""
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 5.0
    timezone: str = "Asia/Shanghai"


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
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self._repo = repo
        self._suppliers = suppliers
        self._lock_ttl = lock_ttl
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._shard = shard
        self._actors: dict[str, OrderActor] = {}

    def owns(self, order_id: str) -> bool:
        index, count = self._shard
        return stable_shard(order_id, count) == index

    def actor(self, order_id: str) -> OrderActor:
        a = self._actors.get(order_id)
        if a is None:
            a = OrderActor(order_id, self._repo, self._suppliers, self._clock, self._lock_ttl)
            self._actors[order_id] = a
        a.last_used = time.monotonic()
        return a

    async def activate_many(self, order_ids: list[str]) -> int:
        """Activate the orders among `order_ids` that this host owns, loaded in batches of
        1,000 with their state cached; returns how many activations the host holds now.
        An order already active keeps its activation (and whatever its mailbox is doing)."""
        wanted = [i for i in dict.fromkeys(order_ids) if self.owns(i) and i not in self._actors]
        for start in range(0, len(wanted), 1_000):
            for order in await self._repo.get_many(wanted[start : start + 1_000]):
                if order.id in self._actors:  # activated by a message meanwhile
                    continue
                a = OrderActor(order.id, self._repo, self._suppliers, self._clock, self._lock_ttl)
                a._order = order
                a.last_used = time.monotonic()
                self._actors[order.id] = a
        return len(self._actors)

    async def create(self, cmd: CreateOrder) -> OrderReply:
        return await self.actor(cmd.order_id).create(cmd)

    async def issue(self, order_id: str, distributor_id: str) -> OrderReply:
        return await self.actor(order_id).issue(distributor_id)

    async def get(self, order_id: str, distributor_id: str | None) -> OrderReply:
        return await self.actor(order_id).get(distributor_id)

    async def cancel(self, order_id: str, distributor_id: str | None) -> OrderReply:
        return await self.actor(order_id).cancel(distributor_id)

    async def refund(self, order_id: str, distributor_id: str, reason: str) -> OrderReply:
        return await self.actor(order_id).refund(distributor_id, reason)

    async def negotiation_answer(self, order_id: str, kind: str, result: CallResult[Any]) -> str:
        return await self.actor(order_id).negotiation_answer(kind, result)

    async def supplier_refunded(self, order_id: str, refunded_at: datetime) -> str:
        return await self.actor(order_id).supplier_refunded(refunded_at)

    async def delivery_update(self, order_id: str, status: str) -> str:
        return await self.actor(order_id).delivery_update(status)

    async def operator_resolve(
        self, order_id: str, action: str, tickets: tuple[IssuedTicket, ...], note: str
    ) -> OrderReply:
        return await self.actor(order_id).operator_resolve(action, tickets, note)

    async def sweep(self, abandoned_after: timedelta) -> dict[str, str]:
        """One pass of the timers over this host's share of the orders."""
        now = self._clock()
        ids = [
            i
            for i in await self._repo.needing_attention(now, new_before=now - abandoned_after)
            if self.owns(i)
        ]
        results = await asyncio.gather(
            *(self.actor(i).sweep(now - abandoned_after) for i in ids), return_exceptions=True
        )
        out: dict[str, str] = {}
        for i, r in zip(ids, results, strict=True):
            if isinstance(r, BaseException):
                log.warning("sweep of %s failed: %r", i, r)
                out[i] = "error"
            else:
                out[i] = r
        return out

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
    order's messages are serialised by its own mailbox. On (re)start it runs the timers and
    the callback courier for its share of the orders."""

    async def __init__(self, config: HostConfig, index: int) -> None:  # type: ignore[misc]
        from actors.callbacks import CallbackCourier

        self._config = config
        self._issues_asked = 0  # issue messages received since start (see the API's coalescing)
        engine = make_engine(config.database_url, pool_size=config.db_pool_size)
        directory = RaySupplierDirectory(
            CatalogRepository(engine),
            instance=config.instance,
            namespace=config.namespace,
            max_concurrency=config.supplier_max_concurrency,
            database_url=config.database_url,
            hosts=config.hosts,
            tick_seconds=config.supplier_tick_seconds,
            breaker=(config.breaker_failures, config.breaker_cooldown_seconds),
        )
        self._core = OrderHostCore(
            OrderRepository(engine, tz=ZoneInfo(config.timezone)),
            directory,
            lock_ttl=timedelta(seconds=config.lock_ttl_seconds),
            idle_seconds=config.idle_seconds,
            shard=(index, config.hosts),
        )
        self._courier = CallbackCourier(
            WorkRepository(engine), config.platform_seed_b64, owns=self._core.owns
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(every(max(1.0, config.idle_seconds / 4), self._passivate)),
            loop.create_task(every(config.sweep_seconds, self._sweep)),
            loop.create_task(every(config.sweep_seconds / 2, self._courier.deliver_due)),
        ]

    async def _passivate(self) -> None:
        self._core.passivate_idle()

    async def _sweep(self) -> None:
        await self._core.sweep(timedelta(seconds=self._config.abandoned_lock_seconds))

    async def create(self, cmd: CreateOrder) -> OrderReply:
        return await self._core.create(cmd)

    async def issue(self, order_id: str, distributor_id: str) -> OrderReply:
        self._issues_asked += 1
        return await self._core.issue(order_id, distributor_id)

    async def get(self, order_id: str, distributor_id: str | None) -> OrderReply:
        return await self._core.get(order_id, distributor_id)

    async def cancel(self, order_id: str, distributor_id: str | None) -> OrderReply:
        return await self._core.cancel(order_id, distributor_id)

    async def refund(self, order_id: str, distributor_id: str, reason: str) -> OrderReply:
        return await self._core.refund(order_id, distributor_id, reason)

    async def negotiation_answer(self, order_id: str, kind: str, result: CallResult[Any]) -> str:
        return await self._core.negotiation_answer(order_id, kind, result)

    async def supplier_refunded(self, order_id: str, refunded_at: datetime) -> str:
        return await self._core.supplier_refunded(order_id, refunded_at)

    async def delivery_update(self, order_id: str, status: str) -> str:
        return await self._core.delivery_update(order_id, status)

    async def operator_resolve(
        self, order_id: str, action: str, tickets: tuple[IssuedTicket, ...], note: str
    ) -> OrderReply:
        return await self._core.operator_resolve(order_id, action, tickets, note)

    async def sweep_now(self) -> dict[str, str]:
        return await self._core.sweep(timedelta(seconds=self._config.abandoned_lock_seconds))

    async def deliver_callbacks_now(self) -> int:
        return await self._courier.deliver_due()

    async def stats(self) -> dict[str, int]:
        return {"active_orders": self._core.active, "issues_asked": self._issues_asked}

    async def activate_many(self, order_ids: list[str]) -> int:
        return await self._core.activate_many(order_ids)

    async def rss_bytes(self) -> int:
        """This host process's resident set size (VmRSS), in bytes."""
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # reported in kB
        return 0

    async def ping(self) -> bool:
        return True

    async def pid(self) -> int:
        import os

        return os.getpid()


def host_name(instance: str, index: int) -> str:
    return f"{instance}:order-host:{index}"


def host_index(order_id: str, hosts: int) -> int:
    return stable_shard(order_id, hosts)


def order_host_handle(instance: str, namespace: str, order_id: str, hosts: int) -> Any:
    return ray.get_actor(host_name(instance, host_index(order_id, hosts)), namespace=namespace)


def start_order_hosts(config: HostConfig, count: int) -> list[Any]:
    """Create (or find) the named order hosts of a platform instance."""
    config.hosts = count
    return [
        named_actor(
            OrderHost, host_name(config.instance, i), config.namespace, max_concurrency=10_000
        ).remote(config, i)
        for i in range(count)
    ]
