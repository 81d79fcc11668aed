"""The order repository: load an order whole, insert a new one, save a move with a
compare-and-set on its version. A move's facts (`domain.order.Fact`) are written as their rows
in the move's transaction, each fact type mapped to its rows in one place
(persistence/order_rows.py): history, tickets, negotiation, release, supplier-refund record,
and the flows and callbacks derived from the same facts. On PostgreSQL a move made only of
inserts is one statement (persistence/pg_moves.py); every other move, and every move on
SQLite, is a transaction of SQLAlchemy statements."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.identity import AttendeeLimit
from domain.negotiation import OPEN_NEGOTIATION, NegotiationStatus
from domain.order import DeliveryMethod, HistoryEntry, IssuedTicket, Order
from domain.status import DeliveryStatus, OrderStatus
from persistence.db import again_if_dropped, statement_reads
from persistence.identity import IdentityVault
from persistence.ledger import insert_ignore, write_flow_rows
from persistence.order_rows import MovePlan, OpenNegotiation, plan_move
from persistence.pg_moves import OneStatementMoves, Outcome, fits_one_statement
from persistence.pg_raw import raw_asyncpg, raw_capable
from persistence.tables import (
    document_claims,
    negotiations,
    order_history,
    orders,
    sessions,
    tickets,
)

# The statements of every move, built once: SQLAlchemy then finds their compiled form by a
# cache key it computed once, instead of building and keying a new statement per call (which
# was a fifth of an order host's CPU under load).
_SELECT_ORDER = select(orders).where(orders.c.id == bindparam("b_id"))
_SELECT_HISTORY = (
    select(order_history.c.status, order_history.c.at, order_history.c.reason)
    .where(order_history.c.order_id == bindparam("b_id"))
    .order_by(order_history.c.seq)
)
_SELECT_TICKETS = (
    select(tickets.c.code, tickets.c.seat)
    .where(tickets.c.order_id == bindparam("b_id"))
    .order_by(tickets.c.code)
)

log = logging.getLogger(__name__)

_ORDER_EXISTS = select(orders.c.id).where(orders.c.id == bindparam("b_id"))
_PG_ORDER_EXISTS = "SELECT EXISTS (SELECT 1 FROM orders WHERE id = $1)"
_INSERT_ORDER = insert(orders)
_insert = cache(insert)  # one INSERT statement per table
_FREE_DOCUMENTS = delete(document_claims).where(document_claims.c.order_id == bindparam("b_id"))
_DELETE_NEGOTIATION = delete(negotiations).where(
    negotiations.c.order_id == bindparam("b_id"), negotiations.c.kind == bindparam("b_kind")
)
_INSERT_NEGOTIATION = insert(negotiations)
_CLOSE_NEGOTIATION = (
    update(negotiations)
    .where(
        negotiations.c.order_id == bindparam("b_id"),
        negotiations.c.kind == bindparam("b_kind"),
        # A negotiation closes once: a second answer (two pollers) keeps the first resolution.
        negotiations.c.status.in_([s.value for s in OPEN_NEGOTIATION]),
    )
    .values(
        status=NegotiationStatus.RESOLVED.value,
        resolution=bindparam("b_resolution"),
        resolved_at=bindparam("b_at"),
    )
)
# The SET clause comes from the parameters' column names; the WHERE binds are named apart.
_UPDATE_IF_VERSION = update(orders).where(
    orders.c.id == bindparam("b_id"), orders.c.version == bindparam("b_version")
)


class StaleOrder(Exception):
    """Another writer moved the order first; reload and decide again."""


def _row_values(order: Order) -> dict[str, Any]:
    return {
        "status": order.status.value,
        "delivery_status": order.delivery_status.value,
        "lock_expires_at": order.lock_expires_at,
        "supplier_lock_ref": order.supplier_lock_ref,
        "failure_reason": order.failure_reason,
        "updated_at": order.updated_at,
    }


class OrderRepository:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        tz: tzinfo = UTC,
        vault: IdentityVault | None = None,
        one_statement: bool | None = None,
    ) -> None:
        """`one_statement`: write moves that fit one as one PostgreSQL statement (default:
        on PostgreSQL through asyncpg); False writes every move as a transaction of
        SQLAlchemy statements, as on SQLite (the benchmark's baseline)."""
        self._engine = engine
        # An order's reads: each statement alone (its own actor is its only writer).
        self._reads = statement_reads(engine)
        self._tz = tz  # the platform's time zone: flows are booked into its calendar days
        self._vault = vault  # real-name attendees: sealed on the row, claimed by keyed hash
        self._raw = raw_capable(engine)  # hot reads on the pool's raw asyncpg connection
        if one_statement is None:
            one_statement = self._raw
        self._moves = OneStatementMoves(engine) if one_statement else None
        # How each move was written (tests and benchmarks read it).
        self.paths: Counter[str] = Counter()

    def _vault_for(self, order_id: str) -> IdentityVault:
        if self._vault is None:
            raise RuntimeError(f"order {order_id} has attendees and this process has no key")
        return self._vault

    def _order(self, m: Any, hist: Sequence[Any], tix: Sequence[Any]) -> Order:
        order = _to_order(m, hist, tix)
        sealed = m["attendees_sealed"]
        if sealed is not None:
            order.attendees = self._vault_for(order.id).open(order.id, sealed)
        return order

    async def get(self, order_id: str) -> Order | None:
        key = {"b_id": order_id}
        async with self._reads.connect() as conn:
            row = (await conn.execute(_SELECT_ORDER, key)).first()
            if row is None:
                return None
            hist = (await conn.execute(_SELECT_HISTORY, key)).all()
            tix = (await conn.execute(_SELECT_TICKETS, key)).all()
        return self._order(row._mapping, hist, tix)

    async def get_many(self, order_ids: Sequence[str]) -> list[Order]:
        """Load a batch of orders whole in three queries; ids not found are left out, and the
        result follows the order of `order_ids`."""
        ids = list(dict.fromkeys(order_ids))
        if not ids:
            return []
        async with self._reads.connect() as conn:
            rows = (await conn.execute(select(orders).where(orders.c.id.in_(ids)))).all()
            hist_rows = (
                await conn.execute(
                    select(
                        order_history.c.order_id,
                        order_history.c.status,
                        order_history.c.at,
                        order_history.c.reason,
                    )
                    .where(order_history.c.order_id.in_(ids))
                    .order_by(order_history.c.order_id, order_history.c.seq)
                )
            ).all()
            tix_rows = (
                await conn.execute(
                    select(tickets.c.order_id, tickets.c.code, tickets.c.seat)
                    .where(tickets.c.order_id.in_(ids))
                    .order_by(tickets.c.order_id, tickets.c.code)
                )
            ).all()
        hist: dict[str, list[Any]] = {}
        for h in hist_rows:
            hist.setdefault(h.order_id, []).append(h)
        tix: dict[str, list[Any]] = {}
        for t in tix_rows:
            tix.setdefault(t.order_id, []).append(t)
        by_id = {r.id: self._order(r._mapping, hist.get(r.id, []), tix.get(r.id, [])) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    async def insert_new(self, order: Order) -> bool:
        """Insert a NEW order with its first history row; False if the id already exists."""
        values = {
            "id": order.id,
            "distributor_id": order.distributor_id,
            "distributor_order_id": order.distributor_order_id,
            "supplier_id": order.supplier_id,
            "session_id": order.session_id,
            "tier_id": order.tier_id,
            "quantity": order.quantity,
            "unit_price": order.unit_price,
            "settlement_price": order.settlement_price,
            "face_value": order.face_value,
            "currency": order.currency,
            "delivery_method": order.delivery_method.value,
            "buyer": order.buyer,
            "delivery_address": order.delivery_address,
            "callback_url": order.callback_url,
            "request_hash": order.request_hash,
            "version": order.version,
            "created_at": order.created_at,
            "attendees_sealed": (
                self._vault_for(order.id).seal(order.id, order.attendees)
                if order.attendees
                else None
            ),
            "tickets_per_id": order.tickets_per_id,
            **_row_values(order),
        }
        plan = plan_move(order, order_row=values, expected_version=None, first_seq=0, tz=self._tz)

        async def write() -> None:
            if await self._one_statement(plan) is Outcome.MOVED:
                return
            async with self._engine.begin() as conn:
                await _write_order_row(conn, plan)
                await self._claim_documents(conn, order)
                await _write_rows(conn, plan)

        try:
            await again_if_dropped(write)
        except IntegrityError:
            # A duplicate (by id, or by the distributor's own order id) means "already there";
            # any other violation (an unknown distributor or supplier) is a real error.
            if not await self._exists(order):
                raise
            return False
        order.facts.clear()
        return True

    async def _one_statement(self, plan: MovePlan) -> Outcome | None:
        """The plan written as one PostgreSQL statement, if it fits one; None if it does
        not (or this repository writes every move as a transaction). Counted in `paths`."""
        if self._moves is None or not fits_one_statement(plan):
            self.paths["transaction"] += 1
            return None
        outcome = await self._moves.write(plan)
        if outcome is Outcome.MOVED or outcome is Outcome.STALE:
            self.paths["one statement"] += 1
        else:  # left to the transaction, which decides as it always has
            self.paths[f"one statement, then transaction ({outcome.value})"] += 1
        return outcome

    async def _claim_documents(self, conn: AsyncConnection, order: Order) -> None:
        """Each attendee's document takes one of its `tickets_per_id` slots of the session, in
        the transaction that writes the NEW order: with none free, AttendeeLimit (naming the
        attendee) and nothing is written. Two creates racing for a document's last slot meet
        on the claims' primary key: the database lets one through."""
        if not order.attendees:
            return
        vault = self._vault_for(order.id)
        # Claimed in the order of their keys, so two creates sharing documents wait on each
        # other in the same order (never a deadlock); the refusal names the attendee.
        keyed = sorted((vault.claim_key(a.document), i) for i, a in enumerate(order.attendees))
        for document, index in keyed:
            for slot in range(max(1, order.tickets_per_id)):
                claimed = await conn.execute(
                    insert_ignore(conn, document_claims),
                    {
                        "session_id": order.session_id,
                        "document": document,
                        "slot": slot,
                        "order_id": order.id,
                        "attendee_index": index,
                    },
                )
                if claimed.rowcount == 1:
                    break
            else:
                raise AttendeeLimit(index, max(1, order.tickets_per_id))

    async def purge_attendees(self, sessions_before: datetime, limit: int = 1000) -> int:
        """Retention: the attendees of orders whose session started before `sessions_before`
        are deleted (their sealed documents and their claims); the orders, their tickets and
        flows stay. Returns how many orders lost their attendees (at most `limit` a call)."""
        q = (
            select(orders.c.id)
            .join(sessions, sessions.c.id == orders.c.session_id)
            .where(orders.c.attendees_sealed.is_not(None), sessions.c.starts_at < sessions_before)
            .limit(limit)
        )
        async with self._engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(q)).all()]
            if ids:
                await conn.execute(
                    update(orders).where(orders.c.id.in_(ids)).values(attendees_sealed=None)
                )
                await conn.execute(
                    delete(document_claims).where(document_claims.c.order_id.in_(ids))
                )
        return len(ids)

    async def documents_held(self, session_id: str) -> int:
        """How many tickets of a session hold a document (ops and tests)."""
        q = select(func.count()).where(document_claims.c.session_id == session_id)
        async with self._engine.connect() as conn:
            return int(await conn.scalar(q) or 0)

    async def exists(self, order_id: str) -> bool:
        """Is there an order with this id (one indexed read)? Asked for every create refused
        as sold out, so on PostgreSQL it goes on the raw connection; the SQLAlchemy read
        answers on SQLite, and when that fails (once more if its connection had been
        dropped too: SQLAlchemy then replaces the pool's connections, and a read is safe to
        repeat)."""
        if not self._raw:
            return await self._exists_read(order_id)
        async with raw_asyncpg(self._engine) as driver:
            try:
                return bool(await driver.fetchval(_PG_ORDER_EXISTS, order_id))
            except Exception as exc:
                log.warning("raw exists read failed (%s); SQLAlchemy reads it", type(exc))
        return await again_if_dropped(lambda: self._exists_read(order_id))

    async def _exists_read(self, order_id: str) -> bool:
        async with self._reads.connect() as conn:
            return (await conn.execute(_ORDER_EXISTS, {"b_id": order_id})).first() is not None

    async def _exists(self, order: Order) -> bool:
        q = select(orders.c.id).where(
            or_(
                orders.c.id == order.id,
                and_(
                    orders.c.distributor_id == order.distributor_id,
                    orders.c.distributor_order_id == order.distributor_order_id,
                ),
            )
        )
        async with self._reads.connect() as conn:
            return (await conn.execute(q)).first() is not None

    async def save(self, order: Order) -> None:
        """Persist the moves made since load, with their facts' rows, if nobody else has
        moved the order since."""
        first_seq = len(order.history) - len(order.unsaved_history)
        plan = plan_move(
            order,
            order_row={"version": order.version + 1, **_row_values(order)},
            expected_version=order.version,
            first_seq=first_seq,
            tz=self._tz,
        )

        async def write() -> None:
            outcome = await self._one_statement(plan)
            if outcome is Outcome.MOVED:
                return
            if outcome is Outcome.STALE:
                raise StaleOrder(order.id)
            async with self._engine.begin() as conn:
                if not await _write_order_row(conn, plan):
                    raise StaleOrder(order.id)
                await _write_rows(conn, plan)

        # A second run after a dropped connection is safe: if the first did commit, the
        # version check refuses the second (StaleOrder) and the caller reloads the truth.
        await again_if_dropped(write)
        order.version += 1
        order.facts.clear()

    async def list_for_distributor(
        self,
        distributor_id: str,
        *,
        status: str | None = None,
        updated_since: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[Order]:
        """Keyset page over (updated_at, id): stable under inserts and moves elsewhere."""
        q = select(orders.c.id).where(orders.c.distributor_id == distributor_id)
        if status:
            q = q.where(orders.c.status == status)
        if updated_since:
            q = q.where(orders.c.updated_at >= updated_since)
        return await self._page(q, after, limit)

    async def list_admin(
        self,
        *,
        status: str | None = None,
        supplier_id: str | None = None,
        negotiating: bool | None = None,
        flagged: bool | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[Order]:
        q = select(orders.c.id)
        if status:
            q = q.where(orders.c.status == status)
        if supplier_id:
            q = q.where(orders.c.supplier_id == supplier_id)
        for wanted, neg_status in (
            (negotiating, NegotiationStatus.ACTIVE),
            (flagged, NegotiationStatus.FLAGGED),
        ):
            if wanted is None:
                continue
            ids = select(negotiations.c.order_id).where(negotiations.c.status == neg_status.value)
            q = q.where(orders.c.id.in_(ids) if wanted else orders.c.id.not_in(ids))
        return await self._page(q, after, limit)

    async def _page(self, q: Any, after: tuple[datetime, str] | None, limit: int) -> list[Order]:
        """A keyset page over (updated_at, id) of the ids `q` selects, loaded in one batch."""
        if after:
            q = q.where(
                or_(
                    orders.c.updated_at > after[0],
                    and_(orders.c.updated_at == after[0], orders.c.id > after[1]),
                )
            )
        q = q.order_by(orders.c.updated_at, orders.c.id).limit(limit)
        async with self._engine.connect() as conn:
            ids = [r[0] for r in (await conn.execute(q)).all()]
        return await self.get_many(ids)

    async def needing_attention(
        self, now: datetime, *, new_before: datetime, limit: int = 1000
    ) -> list[str]:
        """Orders a timer must move on: NEW whose lock call was abandoned, LOCKED past expiry,
        FIXING or REFUNDING without a live negotiation (after a crash)."""
        live = (
            select(negotiations.c.order_id)
            .where(negotiations.c.status.in_([s.value for s in OPEN_NEGOTIATION]))
            .scalar_subquery()
        )
        q = (
            select(orders.c.id)
            .where(
                or_(
                    and_(
                        orders.c.status == OrderStatus.NEW.value, orders.c.created_at < new_before
                    ),
                    and_(
                        orders.c.status == OrderStatus.LOCKED.value,
                        orders.c.lock_expires_at <= now,
                    ),
                    and_(
                        orders.c.status.in_(
                            [OrderStatus.FIXING.value, OrderStatus.REFUNDING.value]
                        ),
                        orders.c.id.not_in(live),
                    ),
                )
            )
            .order_by(orders.c.updated_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [r[0] for r in (await conn.execute(q)).all()]

    async def ids_in_status(self, statuses: Sequence[OrderStatus], limit: int = 1000) -> list[str]:
        q = (
            select(orders.c.id)
            .where(orders.c.status.in_([s.value for s in statuses]))
            .order_by(orders.c.updated_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [r[0] for r in (await conn.execute(q)).all()]


async def _write_order_row(conn: AsyncConnection, plan: MovePlan) -> bool:
    """The order row of the plan, inserted, or updated if it is at the expected version."""
    if plan.expected_version is None:
        await conn.execute(_INSERT_ORDER, plan.order_row)
        return True
    result = await conn.execute(
        _UPDATE_IF_VERSION,
        {"b_id": plan.order_id, "b_version": plan.expected_version, **plan.order_row},
    )
    return bool(result.rowcount == 1)


async def _write_rows(conn: AsyncConnection, plan: MovePlan) -> None:
    """Every other row of the plan, as SQLAlchemy statements in the move's transaction."""
    for rows in plan.inserts:
        stmt = insert_ignore(conn, rows.table) if rows.ignore_duplicates else _insert(rows.table)
        await conn.execute(stmt, rows.rows)
    for change in plan.negotiations:
        if isinstance(change, OpenNegotiation):
            key = {"b_id": plan.order_id, "b_kind": change.row["kind"]}
            await conn.execute(_DELETE_NEGOTIATION, key)
            await conn.execute(_INSERT_NEGOTIATION, change.row)
        else:
            await conn.execute(
                _CLOSE_NEGOTIATION,
                {
                    "b_id": plan.order_id,
                    "b_kind": change.kind,
                    "b_resolution": change.resolution,
                    "b_at": change.at,
                },
            )
    if plan.frees_documents:
        await conn.execute(_FREE_DOCUMENTS, {"b_id": plan.order_id})
    if plan.flows:
        await write_flow_rows(conn, plan.flows)


def _to_order(m: Any, hist: Sequence[Any], tix: Sequence[Any]) -> Order:
    history = [HistoryEntry(OrderStatus(h.status), h.at, h.reason) for h in hist]
    return Order(
        id=m["id"],
        distributor_id=m["distributor_id"],
        distributor_order_id=m["distributor_order_id"],
        supplier_id=m["supplier_id"],
        session_id=m["session_id"],
        tier_id=m["tier_id"],
        quantity=m["quantity"],
        unit_price=m["unit_price"],
        settlement_price=m["settlement_price"],
        face_value=m["face_value"],
        currency=m["currency"],
        delivery_method=DeliveryMethod(m["delivery_method"]),
        request_hash=m["request_hash"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        status=OrderStatus(m["status"]),
        delivery_status=DeliveryStatus(m["delivery_status"]),
        buyer=dict(m["buyer"]),
        delivery_address=m["delivery_address"],
        callback_url=m["callback_url"],
        lock_expires_at=m["lock_expires_at"],
        supplier_lock_ref=m["supplier_lock_ref"],
        failure_reason=m["failure_reason"],
        tickets=tuple(IssuedTicket(t.code, t.seat) for t in tix),
        history=history,
        tickets_per_id=m["tickets_per_id"],
        version=m["version"],
    )
