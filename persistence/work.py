"""Work that must survive restarts: negotiations, pending releases, the callback outbox, the
supplier feeds' cursors and the events read from them. Rows that belong to an order's move are
written by `OrderRepository.save` in the move's transaction; the loops that drain them use
these."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.negotiation import NegotiationKind, NegotiationStatus
from domain.status import OrderStatus
from persistence.db import statement_reads
from persistence.ledger import insert_ignore
from persistence.tables import (
    negotiations,
    orders,
    outbox,
    releases,
    sessions,
    supplier_events,
    supplier_refunds,
    suppliers,
)

_ACTIVE = NegotiationStatus.ACTIVE.value
_FLAGGED = NegotiationStatus.FLAGGED.value
_PENDING = "pending"  # outbox statuses: "pending" | "delivered" | "dead"
_DEAD = "dead"
# Order statuses a supplier's feed event (its own refund, a delivery update) can change.
_FEED_CHANGES = tuple(
    s.value
    for s in (OrderStatus.FIXING, OrderStatus.FIXED, OrderStatus.REFUNDING, OrderStatus.REFUND_FAIL)
)


@dataclass(frozen=True, slots=True)
class Negotiation:
    order_id: str
    kind: NegotiationKind
    supplier_id: str
    status: NegotiationStatus
    started_at: datetime
    next_poll_at: datetime
    give_up_at: datetime
    attempts: int
    last_error: str | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class PendingRelease:
    order_id: str
    supplier_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    order_id: str
    distributor_id: str | None
    url: str
    body: str
    attempts: int  # attempts made before this one
    created_at: datetime


class Feed(StrEnum):
    """A supplier's feeds: the refunds it made on its own, and delivery steps."""

    REFUND = "refund"
    DELIVERY = "delivery"


class FeedEventStatus(StrEnum):
    PENDING = "pending"  # not applied yet: tried again every tick
    APPLIED = "applied"
    REFUSED = "refused"  # can never apply (unknown order, another supplier's order, ...)


# The feed cursor column of each feed, on the supplier's row.
_CURSOR = {Feed.REFUND: suppliers.c.refund_feed_seq, Feed.DELIVERY: suppliers.c.delivery_feed_seq}
_ORDER_ID_MAX = 60  # supplier_events.order_id and orders.id are String(60)


@dataclass(frozen=True, slots=True)
class FeedEventIn:
    """One event as a supplier's feed gave it: its place in the feed, its order, its data."""

    seq: int
    order_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """A stored feed event."""

    id: int
    supplier_id: str
    feed: Feed
    seq: int
    order_id: str
    payload: dict[str, Any]
    status: FeedEventStatus
    attempts: int
    last_error: str | None


def _stored_order_id(order_id: str) -> tuple[str, str | None]:
    """The order id to store for a feed's event, and why it cannot be one of ours (too long,
    or with control characters: then it is stored escaped and shortened, and refused)."""
    if order_id and len(order_id) <= _ORDER_ID_MAX and order_id.isprintable():
        return order_id, None
    escaped = order_id.encode("unicode_escape").decode("ascii")
    return escaped[:_ORDER_ID_MAX], f"not an order id of the platform: {escaped[:80]!r}"


def _negotiation(row: Any) -> Negotiation:
    return Negotiation(
        order_id=row.order_id,
        kind=NegotiationKind(row.kind),
        supplier_id=row.supplier_id,
        status=NegotiationStatus(row.status),
        started_at=row.started_at,
        next_poll_at=row.next_poll_at,
        give_up_at=row.give_up_at,
        attempts=row.attempts,
        last_error=row.last_error,
        resolution=row.resolution,
    )


_MESSAGE = tuple(f.name for f in fields(OutboxMessage))  # the outbox columns a courier reads
_LISTED = (  # the columns ops see
    "id",
    "order_id",
    "distributor_id",
    "url",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "next_attempt_at",
    "delivered_at",
    "dead_at",
)


def _current_attempt(message: OutboxMessage) -> tuple[Any, ...]:
    """The message, still pending and at the attempt it was read at."""
    return (
        outbox.c.id == message.id,
        outbox.c.status == _PENDING,
        outbox.c.attempts == message.attempts,
    )


def _chunks(ids: Sequence[str], size: int = 500) -> list[list[str]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


class WorkRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = statement_reads(engine)  # (every read here: polled by every host)

    # -- negotiations ------------------------------------------------------------------
    async def due_negotiations(
        self, supplier_id: str, now: datetime, limit: int = 200
    ) -> list[Negotiation]:
        q = (
            select(negotiations)
            .where(
                negotiations.c.supplier_id == supplier_id,
                negotiations.c.status == _ACTIVE,
                negotiations.c.next_poll_at <= now,
            )
            .order_by(negotiations.c.next_poll_at)
            .limit(limit)
        )
        async with self._reads.connect() as conn:
            return [_negotiation(r) for r in (await conn.execute(q)).all()]

    async def due_negotiations_pooled(
        self,
        now: datetime,
        supplier_ids: Sequence[str] | None = None,
        *,
        per_supplier: int = 100,
        limit: int = 1000,
    ) -> list[Negotiation]:
        """Due negotiations of pooled suppliers (one replica), at most `per_supplier` of
        each (one supplier's backlog fills no round): of every pooled supplier, at most
        `limit` (one cheap query when little is due), or of `supplier_ids` only, all."""
        rows = await self._pooled_due(
            negotiations,
            tuple(negotiations.c),
            negotiations.c.next_poll_at,
            negotiations.c.status == _ACTIVE,
            now,
            supplier_ids,
            per_supplier,
            limit,
        )
        return [_negotiation(r) for r in rows]

    async def negotiations_of(self, order_id: str) -> list[Negotiation]:
        q = select(negotiations).where(negotiations.c.order_id == order_id)
        async with self._reads.connect() as conn:
            return [_negotiation(r) for r in (await conn.execute(q)).all()]

    async def record_poll(
        self,
        order_id: str,
        kind: NegotiationKind,
        *,
        next_poll_at: datetime,
        error: str | None,
        flag: bool,
    ) -> None:
        """An unanswered poll: try again later, or hand the order to a person."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(negotiations)
                .where(
                    negotiations.c.order_id == order_id,
                    negotiations.c.kind == kind.value,
                    negotiations.c.status == _ACTIVE,
                )
                .values(
                    attempts=negotiations.c.attempts + 1,
                    next_poll_at=next_poll_at,
                    last_error=error,
                    status=_FLAGGED if flag else _ACTIVE,
                )
            )

    async def count_negotiations(self, supplier_id: str) -> dict[str, int]:
        q = select(negotiations.c.status).where(negotiations.c.supplier_id == supplier_id)
        counts = {s.value: 0 for s in NegotiationStatus}
        async with self._reads.connect() as conn:
            for (status,) in (await conn.execute(q)).all():
                counts[status] = counts.get(status, 0) + 1
        return counts

    async def count_unresolved_negotiations(self) -> dict[tuple[str, str], int]:
        """Negotiations not resolved, by (kind, status), every pair present (for the metrics:
        one grouped count over the status index, however many there are)."""
        c = negotiations.c
        q = (
            select(c.kind, c.status, func.count())
            .where(c.status.in_((_ACTIVE, _FLAGGED)))
            .group_by(c.kind, c.status)
        )
        counts = {(k.value, s): 0 for k in NegotiationKind for s in (_ACTIVE, _FLAGGED)}
        async with self._reads.connect() as conn:
            for kind, status, n in (await conn.execute(q)).all():
                counts[(kind, status)] = int(n)
        return counts

    # -- releases ----------------------------------------------------------------------
    async def due_releases(
        self, supplier_id: str, now: datetime, limit: int = 200
    ) -> list[PendingRelease]:
        q = (
            select(releases.c.order_id, releases.c.supplier_id, releases.c.attempts)
            .where(
                releases.c.supplier_id == supplier_id,
                releases.c.status == "pending",
                releases.c.next_attempt_at <= now,
            )
            .order_by(releases.c.next_attempt_at)
            .limit(limit)
        )
        async with self._reads.connect() as conn:
            return [PendingRelease(*r) for r in (await conn.execute(q)).all()]

    async def due_releases_pooled(
        self,
        now: datetime,
        supplier_ids: Sequence[str] | None = None,
        *,
        per_supplier: int = 100,
        limit: int = 1000,
    ) -> list[PendingRelease]:
        """Due releases of pooled suppliers, as `due_negotiations_pooled`."""
        rows = await self._pooled_due(
            releases,
            (releases.c.order_id, releases.c.supplier_id, releases.c.attempts),
            releases.c.next_attempt_at,
            releases.c.status == "pending",
            now,
            supplier_ids,
            per_supplier,
            limit,
        )
        return [PendingRelease(*r) for r in rows]

    async def _pooled_due(
        self,
        table: Any,
        columns: tuple[Any, ...],
        due: Any,
        pending: Any,
        now: datetime,
        supplier_ids: Sequence[str] | None,
        per_supplier: int,
        limit: int,
    ) -> list[Any]:
        """`columns` of `table`'s rows `pending` and `due` by `now` of pooled suppliers, at
        most `per_supplier` of each: of all (at most `limit`) or of `supplier_ids`."""
        chunks: list[list[str] | None] = (
            [None] if supplier_ids is None else list(_chunks(supplier_ids))
        )
        found: list[Any] = []
        async with self._reads.connect() as conn:
            for chunk in chunks:
                params: dict[str, Any] = {"b_now": now, "b_per": per_supplier}
                if chunk is None:
                    # Every tick of every pool host: the statement is built once.
                    q = _POOLED_DUE.get(table.name)
                    if q is None:
                        q = _POOLED_DUE[table.name] = _pooled_due_query(
                            table, columns, due, pending, None
                        )
                    params["b_limit"] = limit
                else:
                    q = _pooled_due_query(table, columns, due, pending, chunk)
                found += (await conn.execute(q, params)).all()
        return found

    async def with_issued_orders(self, supplier_ids: Sequence[str], now: datetime) -> set[str]:
        """Those of `supplier_ids` with an order a feed event can still change (issued, or
        being issued or refunded) for a session not more than two days past: only their
        feeds are worth reading while they are idle. One query over those orders (no list of
        suppliers sent), however many suppliers a host has."""
        if not supplier_ids:
            return set()
        q = (
            select(orders.c.supplier_id)
            .join(sessions, sessions.c.id == orders.c.session_id)
            .where(
                orders.c.status.in_(_FEED_CHANGES),
                sessions.c.starts_at >= now - timedelta(days=2),
            )
            .distinct()
        )
        async with self._reads.connect() as conn:
            found = {r[0] for r in (await conn.execute(q)).all()}
        return found & set(supplier_ids)

    async def release_done(self, order_id: str, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(releases)
                .where(releases.c.order_id == order_id)
                .values(status="done", done_at=now)
            )

    async def release_retry(self, order_id: str, next_at: datetime, error: str | None) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(releases)
                .where(releases.c.order_id == order_id, releases.c.status == "pending")
                .values(attempts=releases.c.attempts + 1, next_attempt_at=next_at, last_error=error)
            )

    async def release_of(self, order_id: str) -> dict[str, Any] | None:
        async with self._reads.connect() as conn:
            row = (
                await conn.execute(select(releases).where(releases.c.order_id == order_id))
            ).first()
        return None if row is None else dict(row._mapping)

    # -- outbox ------------------------------------------------------------------------
    async def due_callbacks(
        self,
        now: datetime,
        *,
        shards: Collection[int] | None = None,
        per_distributor: int = 20,
        limit: int = 500,
        excluding: Sequence[str] = (),
    ) -> list[OutboxMessage]:
        """The messages due in courier `shards` (None: all), ordered by due time. An order's
        messages come oldest first, and only while all of them before are due (a message
        backing off holds back the order's later ones). Each distributor gets at most
        `per_distributor` orders' messages (rows without a distributor count as one), so a
        backlog of one cannot fill the round. The orders in `excluding` (being delivered now)
        are left out before the limit."""
        if shards is not None and not shards:
            return []
        c = outbox.c
        earlier = outbox.alias("earlier")
        # Only due rows are read (the shard's index: status, shard, due time), so a backlog
        # of messages backing off (a receiver that is down, a tarpit) costs no round anything.
        pending = select(
            *(c[name] for name in _MESSAGE),
            # the due time of the order's oldest pending message: the order's place in line
            func.first_value(c.next_attempt_at)
            .over(partition_by=c.order_id, order_by=c.id)
            .label("head_at"),
        ).where(
            c.status == _PENDING,
            c.next_attempt_at <= now,
            # an order's message waits while one before it is backing off
            ~exists().where(
                earlier.c.order_id == c.order_id,
                earlier.c.status == _PENDING,
                earlier.c.id < c.id,
                earlier.c.next_attempt_at > now,
            ),
        )
        if excluding:
            pending = pending.where(c.order_id.not_in(list(excluding)))
        if shards is not None:
            pending = pending.where(c.shard.in_(sorted(shards)))
        p = pending.subquery()
        ranked = select(
            p,
            func.dense_rank()
            .over(partition_by=p.c.distributor_id, order_by=(p.c.head_at, p.c.order_id))
            .label("share"),
        ).subquery()
        q = (
            select(*(ranked.c[name] for name in _MESSAGE))
            .where(ranked.c.share <= per_distributor)
            .order_by(ranked.c.head_at, ranked.c.order_id, ranked.c.id)
            .limit(limit)
        )
        async with self._reads.connect() as conn:
            return [OutboxMessage(*r) for r in (await conn.execute(q)).all()]

    async def lease_callback(self, message: OutboxMessage, now: datetime, until: datetime) -> bool:
        """Take `message` for one attempt: it is not due again before `until` (the attempt's
        deadline and a margin), so no other round or courier sends it meanwhile. False when
        the message is no longer pending and due at this attempt (someone else took it, or
        it was decided)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(outbox)
                .where(*_current_attempt(message), outbox.c.next_attempt_at <= now)
                .values(next_attempt_at=until)
            )
        return result.rowcount == 1

    async def callback_delivered(self, message: OutboxMessage, now: datetime) -> None:
        """The receiver accepted `message` (the outcome of its attempt number
        `message.attempts`; an outcome of an attempt that is no longer current is ignored)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(*_current_attempt(message))
                .values(status="delivered", delivered_at=now, attempts=outbox.c.attempts + 1)
            )

    async def callback_failed(
        self, message: OutboxMessage, *, next_at: datetime, error: str, dead_at: datetime | None
    ) -> None:
        """An attempt of `message` failed: try again at `next_at`, or give up on it (`dead`)
        when `dead_at` is given."""
        values: dict[str, Any] = {
            "attempts": outbox.c.attempts + 1,
            "next_attempt_at": next_at,
            "last_error": error[:500],
        }
        if dead_at is not None:
            values |= {"status": _DEAD, "dead_at": dead_at}
        async with self._engine.begin() as conn:
            await conn.execute(update(outbox).where(*_current_attempt(message)).values(**values))

    async def count_callbacks(self, *, shards: Collection[int] | None = None) -> tuple[int, int]:
        """(waiting, dead): the messages of courier `shards` (None: all) not delivered yet,
        and those given up on (for the metrics: one grouped count over the status index)."""
        if shards is not None and not shards:
            return 0, 0
        c = outbox.c
        q = select(c.status, func.count()).where(c.status.in_((_PENDING, _DEAD)))
        if shards is not None:
            q = q.where(c.shard.in_(sorted(shards)))
        async with self._reads.connect() as conn:
            found = {status: int(n) for status, n in (await conn.execute(q.group_by(c.status)))}
        return found.get(_PENDING, 0), found.get(_DEAD, 0)

    async def list_callbacks(
        self,
        *,
        status: str | None = None,
        distributor_id: str | None = None,
        after: tuple[datetime, int] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """A keyset page of messages over (created_at, id), oldest first."""
        c = outbox.c
        q = select(*(c[name] for name in _LISTED))
        if status is not None:
            q = q.where(c.status == status)
        if distributor_id is not None:
            q = q.where(c.distributor_id == distributor_id)
        if after is not None:
            q = q.where(
                or_(c.created_at > after[0], and_(c.created_at == after[0], c.id > after[1]))
            )
        q = q.order_by(c.created_at, c.id).limit(limit)
        async with self._reads.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(q)).all()]

    async def redeliver_callback(self, message_id: int, now: datetime) -> str | None:
        """Send a dead message again from its first attempt, due now, its age counted from
        now (`created_at`), so it gets all its attempts again. Answers None when done, else
        the message's status (it is not dead), or "missing"."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id, outbox.c.status == _DEAD)
                .values(
                    status=_PENDING, attempts=0, next_attempt_at=now, created_at=now, dead_at=None
                )
            )
            if done.rowcount == 1:
                return None
            status = (
                await conn.execute(select(outbox.c.status).where(outbox.c.id == message_id))
            ).scalar()
        return "missing" if status is None else str(status)

    async def callbacks_of(self, order_id: str) -> list[dict[str, Any]]:
        q = select(outbox).where(outbox.c.order_id == order_id).order_by(outbox.c.id)
        async with self._reads.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(q)).all()]

    # -- supplier refunds and feed cursors ---------------------------------------------
    async def supplier_refund_of(self, order_id: str) -> dict[str, Any] | None:
        async with self._reads.connect() as conn:
            row = (
                await conn.execute(
                    select(supplier_refunds).where(supplier_refunds.c.order_id == order_id)
                )
            ).first()
        return None if row is None else dict(row._mapping)

    async def feed_cursor(self, supplier_id: str) -> tuple[int, int]:
        q = select(suppliers.c.refund_feed_seq, suppliers.c.delivery_feed_seq).where(
            suppliers.c.id == supplier_id
        )
        async with self._reads.connect() as conn:
            row = (await conn.execute(q)).first()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    async def store_feed_events(
        self, supplier_id: str, feed: Feed, events: Sequence[FeedEventIn], now: datetime
    ) -> None:
        """Keep the events a feed gave (`pending`; idempotent on (supplier, feed, seq)) and move
        the feed's cursor past them, in one transaction: an event is never passed unkept. An
        event whose order id cannot be ours is kept as `refused` (its id shortened to fit)."""
        if not events:
            return
        rows = []
        for ev in events:
            order_id, unusable = _stored_order_id(ev.order_id)
            status = FeedEventStatus.PENDING if unusable is None else FeedEventStatus.REFUSED
            rows.append(
                {
                    "supplier_id": supplier_id,
                    "feed": feed.value,
                    "seq": ev.seq,
                    "order_id": order_id,
                    "payload": ev.payload,
                    "status": status.value,
                    "attempts": 0,
                    "last_error": unusable,
                    "created_at": now,
                }
            )
        last = max(ev.seq for ev in events)
        cursor = _CURSOR[feed]
        async with self._engine.begin() as conn:
            await conn.execute(insert_ignore(conn, supplier_events), rows)
            await conn.execute(
                update(suppliers)
                .where(suppliers.c.id == supplier_id, cursor < last)
                .values({cursor: last})
            )

    async def pending_feed_events(
        self, supplier_id: str, orders: int = 500, per_order: int = 50
    ) -> list[FeedEvent]:
        """The pending events of up to `orders` orders, the oldest `per_order` of each, oldest
        first (a supplier that floods one order's feed costs a bounded read; the rest come in
        later rounds). Orders whose events were tried least come first, so a few that cannot
        apply yet (their order still FIXING) never hold back the others."""
        pending = (supplier_events.c.supplier_id == supplier_id) & (
            supplier_events.c.status == FeedEventStatus.PENDING.value
        )
        chosen = (
            select(supplier_events.c.order_id)
            .where(pending)
            .group_by(supplier_events.c.order_id)
            .order_by(func.max(supplier_events.c.attempts), func.min(supplier_events.c.id))
            .limit(orders)
        )
        async with self._reads.connect() as conn:
            order_ids = [r[0] for r in (await conn.execute(chosen)).all()]
            if not order_ids:
                return []
            numbered = (
                select(
                    supplier_events,
                    func.row_number()
                    .over(partition_by=supplier_events.c.order_id, order_by=supplier_events.c.id)
                    .label("nth"),
                )
                .where(pending, supplier_events.c.order_id.in_(order_ids))
                .subquery()
            )
            rows = (
                await conn.execute(
                    select(*(numbered.c[col.name] for col in supplier_events.c))
                    .where(numbered.c.nth <= per_order)
                    .order_by(numbered.c.id)
                )
            ).all()
        return [_feed_event(r) for r in rows]

    async def feed_event_decided(
        self, event_id: int, status: FeedEventStatus, reason: str | None, now: datetime
    ) -> None:
        """The event applied (`applied_at` set) or was refused (`last_error` says why)."""
        values: dict[str, Any] = {
            "status": status.value,
            "attempts": supplier_events.c.attempts + 1,
        }
        if status is FeedEventStatus.APPLIED:
            values["applied_at"] = now
        else:
            values["last_error"] = reason
        async with self._engine.begin() as conn:
            await conn.execute(
                update(supplier_events).where(supplier_events.c.id == event_id).values(values)
            )

    async def feed_event_retry(self, event_id: int, reason: str) -> None:
        """The event could not apply yet: it stays pending, one more attempt counted."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(supplier_events)
                .where(supplier_events.c.id == event_id)
                .values(attempts=supplier_events.c.attempts + 1, last_error=reason[:500])
            )

    async def polling_overrides(self, supplier_id: str) -> tuple[int | None, int | None]:
        q = select(suppliers.c.poll_interval_override_ms, suppliers.c.give_up_override_ms).where(
            suppliers.c.id == supplier_id
        )
        async with self._reads.connect() as conn:
            row = (await conn.execute(q)).first()
        return (None, None) if row is None else (row[0], row[1])

    async def set_polling_overrides(
        self, supplier_id: str, interval_ms: int | None, give_up_ms: int | None
    ) -> bool:
        async with self._engine.begin() as conn:
            res = await conn.execute(
                update(suppliers)
                .where(suppliers.c.id == supplier_id)
                .values(poll_interval_override_ms=interval_ms, give_up_override_ms=give_up_ms)
            )
        return res.rowcount == 1


def _feed_event(row: Any) -> FeedEvent:
    return FeedEvent(
        id=row.id,
        supplier_id=row.supplier_id,
        feed=Feed(row.feed),
        seq=int(row.seq),
        order_id=row.order_id,
        payload=dict(row.payload),
        status=FeedEventStatus(row.status),
        attempts=row.attempts,
        last_error=row.last_error,
    )


_POOLED_DUE: dict[str, Any] = {}  # table name -> the all-suppliers statement of _pooled_due


def _pooled_due_query(
    table: Any, columns: tuple[Any, ...], due: Any, pending: Any, chunk: list[str] | None
) -> Any:
    """`WorkRepository._pooled_due`'s statement (binds: b_now, b_per, and b_limit when it
    is of every supplier)."""
    ranked = (
        select(
            *columns,
            due.label("due_at"),
            func.row_number().over(partition_by=table.c.supplier_id, order_by=due).label("nth"),
        )
        .join(suppliers, suppliers.c.id == table.c.supplier_id)
        .where(
            pending,
            due <= bindparam("b_now"),
            suppliers.c.replicas <= 1,
            *(() if chunk is None else (table.c.supplier_id.in_(chunk),)),
        )
        .subquery()
    )
    q = select(*(ranked.c[c.name] for c in columns)).where(ranked.c.nth <= bindparam("b_per"))
    if chunk is None:
        q = q.order_by(ranked.c.due_at).limit(bindparam("b_limit", type_=Integer))
    return q
