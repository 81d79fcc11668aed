"""Work that must survive restarts: negotiations, pending releases, the callback outbox and
the supplier feeds' cursors. Rows that belong to an order's move are written by
`OrderRepository.save` in the move's transaction; the loops that drain them use these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.negotiation import NegotiationKind, NegotiationStatus
from persistence.tables import negotiations, outbox, releases, supplier_refunds, suppliers

_ACTIVE = NegotiationStatus.ACTIVE.value
_FLAGGED = NegotiationStatus.FLAGGED.value


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
    url: str
    body: str
    attempts: int


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


class WorkRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

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
        async with self._engine.connect() as conn:
            return [_negotiation(r) for r in (await conn.execute(q)).all()]

    async def negotiations_of(self, order_id: str) -> list[Negotiation]:
        q = select(negotiations).where(negotiations.c.order_id == order_id)
        async with self._engine.connect() as conn:
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
        async with self._engine.connect() as conn:
            for (status,) in (await conn.execute(q)).all():
                counts[status] = counts.get(status, 0) + 1
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
        async with self._engine.connect() as conn:
            return [PendingRelease(*r) for r in (await conn.execute(q)).all()]

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
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(releases).where(releases.c.order_id == order_id))
            ).first()
        return None if row is None else dict(row._mapping)

    # -- outbox ------------------------------------------------------------------------
    async def due_callbacks(self, now: datetime, limit: int = 500) -> list[OutboxMessage]:
        q = (
            select(outbox.c.id, outbox.c.order_id, outbox.c.url, outbox.c.body, outbox.c.attempts)
            .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [OutboxMessage(*r) for r in (await conn.execute(q)).all()]

    async def callback_delivered(self, message_id: int, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(status="delivered", delivered_at=now, attempts=outbox.c.attempts + 1)
            )

    async def callback_retry(self, message_id: int, next_at: datetime, error: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(
                    attempts=outbox.c.attempts + 1, next_attempt_at=next_at, last_error=error[:500]
                )
            )

    async def callbacks_of(self, order_id: str) -> list[dict[str, Any]]:
        q = select(outbox).where(outbox.c.order_id == order_id).order_by(outbox.c.id)
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(q)).all()]

    # -- supplier refunds and feed cursors ---------------------------------------------
    async def supplier_refund_of(self, order_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
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
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    async def advance_feed(
        self, supplier_id: str, *, refund_seq: int | None = None, delivery_seq: int | None = None
    ) -> None:
        values: dict[str, int] = {}
        if refund_seq is not None:
            values["refund_feed_seq"] = refund_seq
        if delivery_seq is not None:
            values["delivery_feed_seq"] = delivery_seq
        if values:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(suppliers).where(and_(suppliers.c.id == supplier_id)).values(**values)
                )

    async def polling_overrides(self, supplier_id: str) -> tuple[int | None, int | None]:
        q = select(suppliers.c.poll_interval_override_ms, suppliers.c.give_up_override_ms).where(
            suppliers.c.id == supplier_id
        )
        async with self._engine.connect() as conn:
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
