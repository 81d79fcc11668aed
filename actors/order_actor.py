"""Orders are virtual actors (docs/design.md): an `OrderActor` is a plain object per order
with its own mailbox, activated on demand inside one of a few `OrderHost` Ray actors chosen by
a stable hash of the order id, and passivated when idle. Each message is load → move → save
→ (call the supplier → move → save): the moves are `domain.order`'s, and each records the
facts it implies, which the repository writes with the move in one transaction (with a
compare-and-set on the order's version) before the actor replies. Replies are
`domain.replies` verdicts; what they mean in HTTP is the API's business.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import ray

from actors import metrics
from actors.callbacks import CallbackCourier
from actors.channel import ChannelAddress, ChannelServer
from actors.config import PlatformConfig
from actors.directory import RaySupplierDirectory, SupplierDirectory
from actors.interfaces import (
    MISSING,
    ORDER_CALLS,
    CreateOrder,
    EventOutcome,
    EventResult,
    OrderHostCalls,
    SupplierCalls,
)
from actors.runtime import every, freeze_startup_objects
from domain.negotiation import NegotiationKind, PollingPolicy, Resolution
from domain.order import ISSUED_STATUSES, IssuedTicket, Order, SupplierRefund
from domain.partitions import Assignment, NotOwned, partition_of
from domain.replies import (
    IDEMPOTENCY_CONFLICT,
    NOT_FOUND,
    OrderReply,
    Verdict,
    cancel_reply,
    create_reply,
    issue_reply,
    not_fixing,
    refund_reply,
)
from domain.status import DeliveryStatus, InvalidTransition, OrderStatus
from persistence.catalog import CatalogRepository
from persistence.db import make_engine
from persistence.identity import IdentityVault
from persistence.orders import OrderRepository
from persistence.partitions import PartitionRepository
from persistence.work import WorkRepository
from suppliers.gateway import CallResult, IssueInfo, Outcome, RefundInfo

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")

# Used when the supplier's actor cannot say its policy (it is restarting): poll soon.
_FALLBACK_POLICY = PollingPolicy(timedelta(seconds=2), timedelta(minutes=10), adaptive=False)


def utcnow() -> datetime:
    return datetime.now(UTC)


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


def _new_order(cmd: CreateOrder, now: datetime) -> Order:
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
        attendees=cmd.attendees,
        tickets_per_id=cmd.tickets_per_id,
    )
    order.begin(now)
    return order


class OrderActor:
    """One order: its cached state and its mailbox. Rules live in `domain.order`."""

    def __init__(
        self,
        order_id: str,
        repo: OrderRepository,
        suppliers: SupplierDirectory,
        clock: Clock,
        lock_ttl: timedelta,
        order: Order | None = None,
    ) -> None:
        self.order_id = order_id
        self.mailbox = asyncio.Lock()
        self.last_used = time.monotonic()
        self._repo = repo
        self._suppliers = suppliers
        self._clock = clock
        self._lock_ttl = lock_ttl
        self._order = order

    # -- plumbing ------------------------------------------------------------------------
    async def _load(self) -> Order | None:
        if self._order is None:
            self._order = await self._repo.get(self.order_id)
        return self._order

    async def _own(self, distributor_id: str | None) -> Order | None:
        """The order, if it exists and (when a distributor asks) is that distributor's."""
        order = await self._load()
        if order is None or (distributor_id is not None and order.distributor_id != distributor_id):
            return None
        return order

    async def _save(self, order: Order) -> None:
        moves = metrics.unsaved_moves(order)
        try:
            await self._repo.save(order)
        except BaseException:
            # Not saved (stale, or the database failed): the cached copy holds moves that are
            # not on disk, so drop it; the next message decides on the truth.
            self._order = None
            raise
        metrics.moves_committed(moves)

    async def _supplier(self, order: Order) -> SupplierCalls:
        return await self._suppliers.get(order.supplier_id, order.id)

    @staticmethod
    async def _policy(supplier: SupplierCalls) -> PollingPolicy:
        try:
            return await supplier.policy()
        except Exception:  # the supplier actor is restarting: poll soon, decide later
            return _FALLBACK_POLICY

    # -- messages from the API -------------------------------------------------------------
    async def get(self, distributor_id: str | None) -> OrderReply:
        async with self.mailbox:
            order = await self._own(distributor_id)
        return NOT_FOUND if order is None else OrderReply(Verdict.DONE, order)

    async def create(self, cmd: CreateOrder) -> OrderReply:
        async with self.mailbox:
            # Only what this actor already holds is checked here: a create is nearly always
            # new, so the database is asked by the insert itself (a duplicate id fails it).
            if self._order is not None:
                return self._replay_create(self._order, cmd)
            order = _new_order(cmd, self._clock())
            # NEW is on disk before the supplier hears of the lock: whatever happens next, a
            # timer can find the order and release what the supplier may hold.
            if not await self._repo.insert_new(order):
                winner = await self._load()
                assert winner is not None
                return self._replay_create(winner, cmd)
            self._order = order
            metrics.order_created()
            supplier = await self._supplier(order)
            result = await _guarded(
                supplier.lock(
                    cmd.order_id, cmd.session_ref, cmd.tier_ref, cmd.quantity, order.attendees
                )
            )
            now = self._clock()
            if result.outcome is Outcome.DONE and result.value is not None:
                ttl = timedelta(seconds=cmd.lock_seconds) if cmd.lock_seconds else self._lock_ttl
                order.mark_locked(now, result.value.lock_ref, now + ttl)
            else:
                # Fail fast: the distributor has not paid, so nothing is guessed or retried.
                order.mark_lock_failed(
                    now,
                    result.error or "lock_failed",
                    seats_may_be_held=result.outcome is Outcome.UNKNOWN,
                )
            await self._save(order)
            return create_reply(order, created=True)

    @staticmethod
    def _replay_create(order: Order, cmd: CreateOrder) -> OrderReply:
        if order.distributor_id != cmd.distributor_id or order.request_hash != cmd.request_hash:
            return IDEMPOTENCY_CONFLICT
        return create_reply(order, created=False)

    async def issue(self, distributor_id: str) -> OrderReply:
        async with self.mailbox:
            order = await self._own(distributor_id)
            if order is None:
                return NOT_FOUND
            if order.status is not OrderStatus.LOCKED:
                return issue_reply(order)
            now = self._clock()
            if order.lock_expired(now):
                order.cancel(now, "lock_expired")
                await self._save(order)
                return issue_reply(order)
            supplier = await self._supplier(order)
            order.start_fixing(now)
            await self._save(order)  # FIXING is on disk before the supplier hears of it
            result = await _guarded(supplier.issue(order.id, order.attendees))
            await self._issue_answered(order, supplier, result, closes=None)
            return issue_reply(order)

    async def _issue_answered(
        self,
        order: Order,
        supplier: SupplierCalls,
        result: CallResult[IssueInfo],
        *,
        closes: Resolution | None,
    ) -> None:
        """The supplier answered an issue (the call, or a poll when `closes` is set)."""
        now = self._clock()
        if result.outcome is Outcome.DONE and result.value is not None:
            order.mark_fixed(now, _tickets(result.value), closes=closes)
        elif result.outcome is Outcome.FAILED:
            order.cancel(now, f"issue_failed:{result.error or 'refused'}", closes=closes)
        elif closes is None:
            # Unknown: whether it was issued is found out by asking, never by issuing again.
            order.negotiate(now, await self._policy(supplier))
        else:
            return  # a poll that could not tell: the negotiation goes on
        await self._save(order)

    async def cancel(self, distributor_id: str | None) -> OrderReply:
        async with self.mailbox:
            order = await self._own(distributor_id)
            if order is None:
                return NOT_FOUND
            if order.status is OrderStatus.LOCKED:
                now = self._clock()
                reason = "lock_expired" if order.lock_expired(now) else "canceled_by_distributor"
                order.cancel(now, reason)
                await self._save(order)
            return cancel_reply(order)

    async def refund(self, distributor_id: str, reason: str) -> OrderReply:
        async with self.mailbox:
            order = await self._own(distributor_id)
            if order is None:
                return NOT_FOUND
            if order.status is not OrderStatus.FIXED:
                return refund_reply(order)
            supplier = await self._supplier(order)
            order.start_refund(self._clock(), reason or "requested_by_distributor")
            await self._save(order)
            result = await _guarded(supplier.refund(order.id))
            await self._refund_answered(order, supplier, result, closes=None)
            return refund_reply(order)

    async def _refund_answered(
        self,
        order: Order,
        supplier: SupplierCalls,
        result: CallResult[RefundInfo],
        *,
        closes: Resolution | None,
    ) -> None:
        now = self._clock()
        if result.outcome is Outcome.DONE and result.value is not None:
            refund = SupplierRefund(result.value.refunded_at, result.value.initiated_by)
            order.mark_refunded(now, refund, closes=closes)
        elif result.outcome is Outcome.FAILED:
            order.mark_refund_failed(
                now, f"refund_refused:{result.error or 'refused'}", closes=closes
            )
        elif closes is None:
            order.negotiate(now, await self._policy(supplier))
        else:
            return
        await self._save(order)

    # -- messages from the supplier actor and the timers -----------------------------------
    async def negotiation_answer(self, kind: NegotiationKind, result: CallResult[Any]) -> str:
        """A poll of the supplier answered (DONE or FAILED); returns the order's status."""
        kind = NegotiationKind(kind)
        async with self.mailbox:
            order = await self._load()
            if order is None:
                return MISSING
            if result.outcome is Outcome.UNKNOWN:  # nothing learned: the negotiation goes on
                return order.status.value
            supplier = await self._supplier(order)
            closes = Resolution(result.outcome.value)
            if kind is NegotiationKind.ISSUE and order.status is OrderStatus.FIXING:
                await self._issue_answered(order, supplier, result, closes=closes)
            elif kind is NegotiationKind.REFUND and order.status is OrderStatus.REFUNDING:
                await self._refund_answered(order, supplier, result, closes=closes)
            else:
                # Already decided (for example by an operator): just close the negotiation.
                order.close_negotiation(kind, Resolution.SUPERSEDED, order.updated_at)
                await self._save(order)
            return order.status.value

    # Events of the supplier's feeds (docs/design.md, "Supplier feeds"): each answers whether
    # it applied, cannot apply yet (kept and asked again), or can never apply (refused).

    async def _feed_target(self, supplier_id: str) -> Order | EventResult:
        """The order a feed event of `supplier_id` names, or the refusal when it is not one of
        that supplier's orders."""
        order = await self._load()
        if order is None:
            return EventResult(EventOutcome.REFUSED, "no such order")
        if order.supplier_id != supplier_id:
            return EventResult(EventOutcome.REFUSED, "the order is another supplier's")
        return order

    async def supplier_refunded(self, supplier_id: str, refunded_at: datetime) -> EventResult:
        """The supplier refunded on its own (a show was cancelled)."""
        async with self.mailbox:
            order = await self._feed_target(supplier_id)
            if isinstance(order, EventResult):
                return order
            now = self._clock()
            refund = SupplierRefund(refunded_at, "supplier")
            status = order.status
            if status is OrderStatus.FIXED:
                order.start_refund(now, "refunded_by_supplier")
                order.mark_refunded(now, refund)
            elif status is OrderStatus.REFUNDING:
                order.mark_refunded(now, refund, closes=Resolution.SUPPLIER_FEED)
            elif status is OrderStatus.REFUND_FAIL:
                order.refunded_after_refusal(now, refund)
            elif status is OrderStatus.FIXING:
                # Whether it was issued is not known yet: once it is FIXED the refund applies
                # (settlement + and -), once CANCELED there is nothing to undo.
                return EventResult(EventOutcome.NOT_YET, "the order is FIXING")
            elif status is OrderStatus.REFUNDED or (
                status is OrderStatus.CANCELED and order.went_through(OrderStatus.FIXING)
            ):
                return EventResult(EventOutcome.APPLIED, f"nothing to do: the order is {status}")
            else:  # NEW, LOCKED, LOCK_FAILED, or CANCELED before any issue: never issued
                return EventResult(EventOutcome.REFUSED, f"the order was never issued ({status})")
            await self._save(order)
            return EventResult(EventOutcome.APPLIED, f"{status} -> {order.status}")

    async def delivery_update(self, supplier_id: str, status: str) -> EventResult:
        async with self.mailbox:
            order = await self._feed_target(supplier_id)
            if isinstance(order, EventResult):
                return order
            if order.status is OrderStatus.FIXING:
                return EventResult(EventOutcome.NOT_YET, "the order is FIXING")
            if order.status not in ISSUED_STATUSES:
                return EventResult(
                    EventOutcome.REFUSED, f"the order was never issued ({order.status})"
                )
            before = order.delivery_status
            try:
                changed = order.report_delivery(DeliveryStatus(status), self._clock())
            except (InvalidTransition, ValueError):
                return EventResult(
                    EventOutcome.REFUSED, f"delivery {before} does not move to {status[:20]}"
                )
            if changed:
                await self._save(order)
            return EventResult(
                EventOutcome.APPLIED, f"delivery {before} -> {order.delivery_status}"
            )

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
                return not_fixing(order)
            now = self._clock()
            if action == "cancel":
                order.cancel(
                    now, f"operator:{note or 'not issued'}", closes=Resolution.OPERATOR_CANCEL
                )
            elif action == "issued":
                order.mark_fixed(now, tickets, closes=Resolution.OPERATOR_ISSUED)
            else:
                order.negotiate(now, await self._policy(await self._supplier(order)))
            await self._save(order)
            return OrderReply(Verdict.DONE, order)

    async def sweep(self, new_abandoned_before: datetime) -> str:
        """Move an order stuck in an intermediate state on (after a crash or an expiry)."""
        async with self.mailbox:
            self._order = None  # decide on the database's state, not the cache
            order = await self._load()
            if order is None:
                return MISSING
            now = self._clock()
            if order.status is OrderStatus.NEW and order.created_at < new_abandoned_before:
                order.mark_lock_failed(now, "lock_abandoned", seats_may_be_held=True)
            elif order.lock_expired(now):
                order.cancel(now, "lock_expired")
            elif order.status in (OrderStatus.FIXING, OrderStatus.REFUNDING):
                # Poll at once: the call that was in flight when the process died is the
                # only one there will ever be.
                policy = await self._policy(await self._supplier(order))
                order.negotiate(now, policy, poll_at=now)
            else:
                return order.status.value
            await self._save(order)
            return order.status.value


class OrderHostCore:
    """Activations of order actors, created on demand and passivated when idle; the calls
    of `OrderHostCalls` that concern one order go to its actor, if this host owns the
    order's partition (else `NotOwned`, and nothing is done). `partitions` None: every one."""

    def __init__(
        self,
        repo: OrderRepository,
        suppliers: SupplierDirectory,
        *,
        lock_ttl: timedelta,
        idle_seconds: float,
        clock: Clock = utcnow,
        partitions: Collection[int] | None = None,
        index: int = 0,
    ) -> None:
        self._repo = repo
        self._suppliers = suppliers
        self._lock_ttl = lock_ttl
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._index = index
        self._partitions: frozenset[int] | None = (
            None if partitions is None else frozenset(partitions)
        )
        self._leaving: frozenset[int] = frozenset()  # owned, being handed over: refused
        self._in_flight: Counter[int] = Counter()  # calls inside, by partition
        self._actors: dict[str, OrderActor] = {}
        self._issues_asked = 0  # issue messages received since start (see the API's coalescing)

    def owns(self, order_id: str) -> bool:
        """Whether this host takes calls for the order now."""
        if self._partitions is None:
            return True
        p = partition_of(order_id)
        return p in self._partitions and p not in self._leaving

    def serving(self) -> frozenset[int] | None:
        """The partitions this host takes calls for (None: every one)."""
        if self._partitions is None:
            return None
        return self._partitions - self._leaving

    async def _missed(self) -> None:
        """A call for a partition this host does not take: a host that learns its
        assignment from elsewhere looks again before refusing it."""

    @asynccontextmanager
    async def _serving(self, order_id: str) -> AsyncIterator[None]:
        """One call for `order_id`, counted in flight for its partition (a handover waits
        for it); NotOwned if this host does not take the partition's calls."""
        if not self.owns(order_id):
            await self._missed()
            if not self.owns(order_id):
                raise NotOwned(order_id, self._index)
        p = partition_of(order_id)
        self._in_flight[p] += 1
        try:
            yield
        finally:
            self._in_flight[p] -= 1
            if not self._in_flight[p]:
                del self._in_flight[p]

    def busy_in(self, partitions: Collection[int]) -> int:
        """Calls in flight for orders of `partitions`."""
        return sum(self._in_flight.get(p, 0) for p in partitions)

    def forget(self, partitions: Collection[int]) -> int:
        """Passivate every activation of an order of `partitions` (handed over); returns how
        many."""
        gone = [oid for oid in self._actors if partition_of(oid) in partitions]
        for oid in gone:
            del self._actors[oid]
        return len(gone)

    def _activation(self, order_id: str, order: Order | None = None) -> OrderActor:
        return OrderActor(order_id, self._repo, self._suppliers, self._clock, self._lock_ttl, order)

    def actor(self, order_id: str) -> OrderActor:
        a = self._actors.get(order_id)
        if a is None:
            a = self._actors[order_id] = self._activation(order_id)
        a.last_used = time.monotonic()
        return a

    async def activate_many(self, order_ids: list[str]) -> int:
        """Activate the orders among `order_ids` that this host owns, loaded in batches of
        1,000 with their state cached; returns how many activations the host holds now.
        An order already active keeps its activation (and whatever its mailbox is doing)."""
        wanted = [i for i in dict.fromkeys(order_ids) if self.owns(i) and i not in self._actors]
        for start in range(0, len(wanted), 1_000):
            for order in await self._repo.get_many(wanted[start : start + 1_000]):
                if order.id not in self._actors:  # (activated by a message meanwhile)
                    self._actors[order.id] = self._activation(order.id, order)
        return len(self._actors)

    async def create(self, cmd: CreateOrder) -> OrderReply:
        async with self._serving(cmd.order_id):
            return await self.actor(cmd.order_id).create(cmd)

    async def issue(self, order_id: str, distributor_id: str) -> OrderReply:
        async with self._serving(order_id):
            self._issues_asked += 1
            return await self.actor(order_id).issue(distributor_id)

    async def get(self, order_id: str, distributor_id: str | None) -> OrderReply:
        async with self._serving(order_id):
            return await self.actor(order_id).get(distributor_id)

    async def cancel(self, order_id: str, distributor_id: str | None) -> OrderReply:
        async with self._serving(order_id):
            return await self.actor(order_id).cancel(distributor_id)

    async def refund(self, order_id: str, distributor_id: str, reason: str) -> OrderReply:
        async with self._serving(order_id):
            return await self.actor(order_id).refund(distributor_id, reason)

    async def operator_resolve(
        self, order_id: str, action: str, tickets: tuple[IssuedTicket, ...], note: str
    ) -> OrderReply:
        async with self._serving(order_id):
            return await self.actor(order_id).operator_resolve(action, tickets, note)

    async def negotiation_answer(
        self, order_id: str, kind: NegotiationKind, result: CallResult[Any]
    ) -> str:
        async with self._serving(order_id):
            return await self.actor(order_id).negotiation_answer(kind, result)

    async def supplier_refunded(
        self, order_id: str, supplier_id: str, refunded_at: datetime
    ) -> EventResult:
        async with self._serving(order_id):
            return await self.actor(order_id).supplier_refunded(supplier_id, refunded_at)

    async def delivery_update(self, order_id: str, supplier_id: str, status: str) -> EventResult:
        async with self._serving(order_id):
            return await self.actor(order_id).delivery_update(supplier_id, status)

    async def _swept(self, order_id: str, new_abandoned_before: datetime) -> str:
        async with self._serving(order_id):
            return await self.actor(order_id).sweep(new_abandoned_before)

    async def sweep(self, abandoned_after: timedelta) -> dict[str, str]:
        """One pass of the timers over this host's share of the orders."""
        now = self._clock()
        ids = [
            i
            for i in await self._repo.needing_attention(now, new_before=now - abandoned_after)
            if self.owns(i)
        ]
        results = await asyncio.gather(
            *(self._swept(i, now - abandoned_after) for i in ids), return_exceptions=True
        )
        out: dict[str, str] = {}
        for i, r in zip(ids, results, strict=True):
            if isinstance(r, NotOwned):
                continue  # handed over meanwhile: its new host's timers see to it
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


def _vault(key_b64: str) -> IdentityVault | None:
    return IdentityVault(base64.b64decode(key_b64)) if key_b64 else None


# How often a host reads the assignment's version (and how soon it hands a partition over
# once asked).
_ASSIGNMENT_POLL_S = 0.25
_HANDOVER_WARN_S = 10.0  # a handover waiting on calls in flight says so this often
_MISS_REREAD_S = 0.05  # a host that refuses a call re-reads the assignment at most this often


class OrderHost(OrderHostCore):
    """A Ray actor hosting many order actors (`OrderHostCalls`), for the partitions the
    database's assignment gives it (`persistence.partitions`). Async: different orders run
    concurrently; one order's messages are serialised by its own mailbox. It runs the timers
    and the callback courier for the partitions it owns, and hands over those the assignment
    moves: it refuses their new calls, waits for those in flight, passivates their orders
    and then records the handover."""

    async def __init__(self, platform: PlatformConfig, index: int) -> None:  # type: ignore[misc]
        settings = platform.hosts
        engine = make_engine(platform.database_url, pool_size=settings.db_pool_size)
        directory = RaySupplierDirectory(CatalogRepository(engine), platform)
        self._assignments = PartitionRepository(engine)
        assignment = await self._assignments.ensure(platform.order_hosts)
        super().__init__(
            OrderRepository(
                engine, tz=ZoneInfo(platform.timezone), vault=_vault(settings.identity_key_b64)
            ),
            directory,
            lock_ttl=timedelta(seconds=settings.lock_ttl_seconds),
            idle_seconds=settings.idle_seconds,
            partitions=assignment.owned_by(index),
            index=index,
        )
        self._version = 0
        self._read_at = 0.0
        self._reading: asyncio.Task[None] | None = None
        self._handing: set[int] = set()  # partitions whose handover is under way here
        self._lanes_directory = directory
        self._apply(assignment)
        self._abandoned_after = timedelta(seconds=settings.abandoned_lock_seconds)
        self._lanes = directory
        self._lane_idle_s = platform.suppliers.idle_seconds
        self._courier = CallbackCourier(WorkRepository(engine), settings, shards=self.serving)
        gauges = metrics.Gauges(WorkRepository(engine), shards=self.serving, index=index)
        loop = asyncio.get_running_loop()
        self._retention = timedelta(days=settings.attendee_retention_days)
        self._tasks = [
            loop.create_task(every(_ASSIGNMENT_POLL_S, self._poll_assignment)),
            loop.create_task(every(max(1.0, settings.idle_seconds / 4), self._passivate)),
            loop.create_task(every(settings.sweep_seconds, self.sweep_now)),
            loop.create_task(every(settings.sweep_seconds / 2, self._courier.deliver_due)),
            loop.create_task(every(settings.metrics_count_seconds, gauges.count)),
        ]
        if index == 0:  # one host deletes attendees past their retention, hourly
            self._tasks.append(loop.create_task(every(3600.0, self._purge_attendees)))
        # The orders' calls come over the channel too (most of them: `actors.routing`).
        self._channel = ChannelServer(self, ORDER_CALLS)
        node_ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        await self._channel.start(node_ip)
        freeze_startup_objects()

    # -- the assignment ------------------------------------------------------------------
    def _apply(self, assignment: Assignment) -> None:
        if assignment.version <= self._version:
            return  # (nothing new, or an older read that finished late)
        self._version = assignment.version
        self._partitions = assignment.owned_by(self._index)
        self._leaving = assignment.leaving(self._index)
        self._lanes_directory.order_hosts = max(1, assignment.hosts)
        self._start_handovers()

    def _start_handovers(self) -> None:
        starting = self._leaving - self._handing
        if starting:
            self._handing |= starting
            asyncio.get_running_loop().create_task(self._hand_over(starting))

    async def _read_assignment(self) -> None:
        found = await self._assignments.read()
        self._read_at = time.monotonic()
        if found is not None:
            self._apply(found)

    async def _poll_assignment(self) -> None:
        version = await self._assignments.version()
        if version is not None and version != self._version:
            await self._read_assignment()

    async def _missed(self) -> None:
        if time.monotonic() - self._read_at < _MISS_REREAD_S:
            return
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._read_assignment())
        await asyncio.shield(self._reading)

    async def _hand_over(self, partitions: frozenset[int]) -> None:
        """Let go of `partitions` (refused from now on, by `_apply`): each, once no call for
        it is in flight, has its orders passivated and its handover recorded (those idle
        together in one transaction). A partition is never handed over with a call of it in
        flight, however long that call takes (a supplier call has its own deadline): the new
        owner must never load an order a late save of this host would then change."""
        began = time.monotonic()
        left = set(partitions)
        warned_at = began
        passivated = 0
        try:
            while left:
                idle = {p for p in left if not self.busy_in((p,))}
                if idle:
                    passivated += self.forget(idle)
                    await self._record_handover(idle)
                    left -= idle
                    continue
                if time.monotonic() - warned_at > _HANDOVER_WARN_S:
                    warned_at = time.monotonic()
                    log.warning(
                        "order host %d: %d partitions wait for %d calls in flight to hand over",
                        self._index,
                        len(left),
                        self.busy_in(left),
                    )
                await asyncio.sleep(0.01)
            await self._read_assignment()
            log.info(
                "order host %d handed over %d partitions (%d orders passivated) in %.3f s",
                self._index,
                len(partitions),
                passivated,
                time.monotonic() - began,
            )
        finally:
            self._handing -= partitions
            self._start_handovers()  # (a plan read meanwhile may have made more leave)

    async def _record_handover(self, partitions: set[int]) -> None:
        while True:
            try:
                await self._assignments.hand_off(self._index, partitions)
                return
            except Exception:
                log.exception("recording a handover failed; trying again")
                await asyncio.sleep(1.0)

    async def refresh_partitions(self) -> dict[str, int]:
        """Read the assignment now (ops, after a change), and say what this host holds."""
        await self._read_assignment()
        return await self.stats()

    # -- timers --------------------------------------------------------------------------
    async def _purge_attendees(self) -> None:
        while await self._repo.purge_attendees(self._clock() - self._retention):
            pass

    async def _passivate(self) -> None:
        self.passivate_idle()
        self._lanes.drop_idle_lanes(self._lane_idle_s)

    async def channel(self) -> ChannelAddress:
        address = self._channel.address
        assert address is not None  # (started in __init__)
        return address

    async def sweep_now(self) -> dict[str, str]:
        return await self.sweep(self._abandoned_after)

    async def deliver_callbacks_now(self) -> int:
        return await self._courier.deliver_due()

    async def stats(self) -> dict[str, int]:
        return {
            "active_orders": self.active,
            "issues_asked": self._issues_asked,
            "partitions": len(self._partitions or ()),
            "leaving": len(self._leaving),
            "assignment_version": self._version,
            "channel_calls": self._channel.calls,
        }

    async def rss_bytes(self) -> int:
        """This host process's resident set size (VmRSS), in bytes."""
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # reported in kB
        return 0

    async def suspect_supplier(self, supplier_id: str) -> None:
        self._suppliers.suspect(supplier_id)

    async def ping(self) -> bool:
        return True

    async def pid(self) -> int:
        return os.getpid()

    async def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


if TYPE_CHECKING:
    _implements: type[OrderHostCalls] = OrderHost

# The Ray actor class (restarted on failure, never retrying a call).
OrderHostRemote = ray.remote(max_restarts=-1, max_task_retries=0)(OrderHost)
