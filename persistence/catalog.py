"""Suppliers and their catalog (shows, sessions, tiers) as synced from their gateways."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.grants import CatalogItem
from domain.ids import new_id
from domain.tier_rules import TierCheck, check_tier
from persistence.tables import sessions, shows, suppliers, tiers
from suppliers.gateway import Catalog, CatalogTier

# What a sync report lists at most of each kind (the counts are always whole).
REPORT_LIST_MAX = 100
_BIGINT = 2**63 - 1
_INT = 2**31 - 1


def catalog_id(prefix: str, *parts: str) -> str:
    """Stable ids for synced rows: the same supplier ref always maps to the same id."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]
    return f"{prefix}_{digest}"


@dataclass(frozen=True, slots=True)
class Supplier:
    id: str
    name: str
    gateway: str
    config: dict[str, Any]
    replicas: int
    status: str


RETIRED = "retired"  # a supplier's status once retired (else "active")


@dataclass(frozen=True, slots=True)
class SupplierPlacement:
    id: str
    replicas: int
    status: str
    last_sync_at: datetime | None


@dataclass(frozen=True, slots=True)
class TierForSale:
    """What an order needs to know of the tier it buys."""

    supplier_id: str
    show_id: str
    session_id: str
    tier_id: str
    session_ref: str
    tier_ref: str
    face_value: int
    price: int
    settlement_price: int
    currency: str
    show_status: str
    session_status: str
    item: CatalogItem
    real_name_required: bool = False
    tickets_per_id: int = 1


class CatalogRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- suppliers ---------------------------------------------------------------------
    async def create_supplier(
        self, name: str, gateway: str, config: dict[str, Any], now: datetime
    ) -> Supplier:
        s = Supplier(new_id("sup"), name, gateway, config, 1, "active")
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(suppliers).values(
                    id=s.id,
                    name=name,
                    gateway=gateway,
                    config=config,
                    replicas=1,
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )
        return s

    async def get_supplier(self, supplier_id: str) -> Supplier | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(suppliers).where(suppliers.c.id == supplier_id))
            ).first()
        return None if row is None else _supplier(row)

    async def find_supplier_by_name(self, name: str) -> Supplier | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(suppliers).where(suppliers.c.name == name).order_by(suppliers.c.id)
                )
            ).first()
        return None if row is None else _supplier(row)

    async def update_supplier_config(
        self, supplier_id: str, config: dict[str, Any], now: datetime
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(suppliers)
                .where(suppliers.c.id == supplier_id)
                .values(config=config, updated_at=now)
            )

    async def set_replicas(self, supplier_id: str, replicas: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(suppliers).where(suppliers.c.id == supplier_id).values(replicas=replicas)
            )

    async def placements(self) -> list[SupplierPlacement]:
        """Every supplier's placement (no configuration: cheap to read often)."""
        q = select(
            suppliers.c.id, suppliers.c.replicas, suppliers.c.status, suppliers.c.last_sync_at
        ).order_by(suppliers.c.id)
        async with self._engine.connect() as conn:
            return [SupplierPlacement(*r) for r in (await conn.execute(q)).all()]

    async def retire_supplier(self, supplier_id: str, now: datetime) -> Supplier | None:
        """Retire a supplier: it sells nothing more (its shows and sessions go offline, and
        its catalog is no longer pulled); its orders, flows and history stay. None if there
        is no such supplier."""
        async with self._engine.begin() as conn:
            found = await conn.execute(
                update(suppliers)
                .where(suppliers.c.id == supplier_id)
                .values(status=RETIRED, updated_at=now)
            )
            if found.rowcount == 0:
                return None
            await _withdraw_missing(conn, supplier_id, Catalog(shows=()), now)
        return await self.get_supplier(supplier_id)

    async def list_suppliers(self) -> list[Supplier]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(suppliers).order_by(suppliers.c.id))).all()
        return [_supplier(r) for r in rows]

    # -- sync --------------------------------------------------------------------------
    async def apply_catalog(self, supplier_id: str, catalog: Catalog, now: datetime) -> int:
        """Upsert a supplier's catalog; a row's updated_at moves only when it changed.
        Every tier is checked by `domain.tier_rules.check_tier`: a refused one is stored with
        its `refused_reason` (kept, not sold), an accepted one with its currency normalised.
        The sync's outcome is stored on the supplier's row (`last_sync_at`, `sync_report`) in
        the same transaction. Returns the number of rows written. A retired supplier's
        catalog is not applied (its row is locked first, so a sync and a retirement at the
        same time come one after the other)."""
        written = 0
        report = _SyncReport()
        async with self._engine.begin() as conn:
            status = await conn.scalar(
                select(suppliers.c.status).where(suppliers.c.id == supplier_id).with_for_update()
            )
            if status is None or status == RETIRED:
                return 0
            for show in catalog.shows:
                show_id = catalog_id("shw", supplier_id, show.ref)
                written += await _upsert(
                    conn,
                    shows,
                    show_id,
                    {
                        "supplier_id": supplier_id,
                        "ref": show.ref,
                        "title": show.title,
                        "city": show.city,
                        "category": show.category,
                        "venue": show.venue,
                        "starts_at": show.starts_at,
                        "status": show.status,
                    },
                    now,
                )
                report.shows += 1
                for ses in show.sessions:
                    report.sessions += 1
                    session_id = catalog_id("ses", supplier_id, show.ref, ses.ref)
                    written += await _upsert(
                        conn,
                        sessions,
                        session_id,
                        {
                            "show_id": show_id,
                            "ref": ses.ref,
                            "starts_at": ses.starts_at,
                            "status": ses.status,
                            "real_name_required": ses.real_name_required,
                            # (a limit out of range is the supplier's fault: 1 is the rule)
                            "tickets_per_id": ses.tickets_per_id
                            if 1 <= ses.tickets_per_id <= 10
                            else 1,
                        },
                        now,
                    )
                    for tier in ses.tiers:
                        tier_id = catalog_id("tir", supplier_id, show.ref, ses.ref, tier.ref)
                        values = _tier_values(tier, report.check(tier_id, show.ref, ses.ref, tier))
                        available = min(max(tier.available, 0), _INT)
                        written += await _upsert(
                            conn,
                            tiers,
                            tier_id,
                            {"session_id": session_id, **values},
                            now,
                            insert_only={"available": available},
                        )
                        # Stock moves all the time: it is stored, but it does not count as a
                        # change of the tier (distributors read it from the stock endpoint).
                        res = await conn.execute(
                            update(tiers)
                            .where(tiers.c.id == tier_id, tiers.c.available != available)
                            .values(available=available)
                        )
                        written += res.rowcount
            written += await _withdraw_missing(conn, supplier_id, catalog, now)
            await conn.execute(
                update(suppliers)
                .where(suppliers.c.id == supplier_id)
                .values(last_sync_at=now, sync_report=report.as_dict(written))
            )
        return written

    async def sync_report(self, supplier_id: str) -> tuple[datetime | None, dict[str, Any] | None]:
        """When the supplier's catalog was last synced, and that sync's report (see
        `apply_catalog`); (None, None) before the first sync."""
        q = select(suppliers.c.last_sync_at, suppliers.c.sync_report).where(
            suppliers.c.id == supplier_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None or row.last_sync_at is None:
            return None, None
        return row.last_sync_at, dict(row.sync_report or {})

    # -- reads -------------------------------------------------------------------------
    async def tier_for_sale(self, session_id: str, tier_id: str) -> TierForSale | None:
        q = (
            select(
                shows.c.supplier_id,
                shows.c.id.label("show_id"),
                shows.c.city,
                shows.c.category,
                shows.c.status.label("show_status"),
                sessions.c.ref.label("session_ref"),
                sessions.c.status.label("session_status"),
                sessions.c.real_name_required,
                sessions.c.tickets_per_id,
                tiers.c.ref.label("tier_ref"),
                tiers.c.face_value,
                tiers.c.price,
                tiers.c.settlement_price,
                tiers.c.currency,
            )
            .select_from(tiers.join(sessions).join(shows))
            # A tier refused at sync is kept, never sold: to a buyer it is not there.
            .where(
                tiers.c.id == tier_id, sessions.c.id == session_id, tiers.c.refused_reason.is_(None)
            )
        )
        async with self._engine.connect() as conn:
            r = (await conn.execute(q)).first()
        if r is None:
            return None
        return TierForSale(
            supplier_id=r.supplier_id,
            show_id=r.show_id,
            session_id=session_id,
            tier_id=tier_id,
            session_ref=r.session_ref,
            tier_ref=r.tier_ref,
            face_value=r.face_value,
            price=r.price,
            settlement_price=r.settlement_price,
            currency=r.currency,
            show_status=r.show_status,
            session_status=r.session_status,
            item=CatalogItem(r.supplier_id, r.city, r.category, r.show_id, session_id),
            real_name_required=bool(r.real_name_required),
            tickets_per_id=r.tickets_per_id,
        )

    async def session_for_stock(self, session_id: str) -> tuple[str, str, str] | None:
        """(supplier_id, session_ref, show_id) of a session."""
        q = (
            select(shows.c.supplier_id, sessions.c.ref, shows.c.id)
            .select_from(sessions.join(shows))
            .where(sessions.c.id == session_id)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else (row[0], row[1], row[2])

    async def tiers_of_session(self, session_id: str) -> list[tuple[str, str, int]]:
        """(tier_id, tier_ref, available) of a session's tiers on sale (not refused)."""
        q = select(tiers.c.id, tiers.c.ref, tiers.c.available).where(
            tiers.c.session_id == session_id, tiers.c.refused_reason.is_(None)
        )
        async with self._engine.connect() as conn:
            return [(r[0], r[1], r[2]) for r in (await conn.execute(q)).all()]

    async def list_shows(self) -> list[dict[str, Any]]:
        """Every show with `session_ids`, and `updated_at` raised to the latest change of its
        sessions and tiers (a new price is a change of the show for a distributor's mirror)."""
        async with self._engine.connect() as conn:
            show_rows = [dict(r._mapping) for r in (await conn.execute(select(shows))).all()]
            ses_rows = (
                await conn.execute(select(sessions.c.id, sessions.c.show_id, sessions.c.updated_at))
            ).all()
            tier_rows = (
                await conn.execute(
                    select(sessions.c.show_id, func.max(tiers.c.updated_at))
                    .select_from(tiers.join(sessions))
                    .group_by(sessions.c.show_id)
                )
            ).all()
        latest: dict[str, datetime] = {}
        session_ids: dict[str, set[str]] = {}
        for sid, show_id, at in ses_rows:
            session_ids.setdefault(show_id, set()).add(sid)
            latest[show_id] = max(latest.get(show_id, at), at)
        for show_id, at in tier_rows:
            if at is not None:
                latest[show_id] = max(latest.get(show_id, at), at)
        for row in show_rows:
            row["updated_at"] = max(row["updated_at"], latest.get(row["id"], row["updated_at"]))
            row["session_ids"] = frozenset(session_ids.get(row["id"], ()))
        show_rows.sort(key=lambda r: (r["updated_at"], r["id"]))
        return show_rows

    @staticmethod
    def item_of(show: dict[str, Any], session_id: str | None = None) -> CatalogItem:
        """Where a show (or one of its sessions) sits, for grant checks."""
        return CatalogItem(
            show["supplier_id"],
            show["city"],
            show["category"],
            show["id"],
            session_id,
            frozenset(show.get("session_ids", ())),
        )

    async def show_detail(self, show_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            show = (await conn.execute(select(shows).where(shows.c.id == show_id))).first()
            if show is None:
                return None
            ses_rows = (
                await conn.execute(
                    select(sessions)
                    .where(sessions.c.show_id == show_id)
                    .order_by(sessions.c.starts_at, sessions.c.id)
                )
            ).all()
            tier_rows = (
                await conn.execute(
                    select(tiers)
                    .where(
                        tiers.c.session_id.in_([s.id for s in ses_rows]),
                        tiers.c.refused_reason.is_(None),  # refused tiers are not on show
                    )
                    .order_by(tiers.c.price, tiers.c.id)
                )
            ).all()
        by_session: dict[str, list[dict[str, Any]]] = {}
        for t in tier_rows:
            by_session.setdefault(t.session_id, []).append(dict(t._mapping))
        detail = dict(show._mapping)
        detail["session_ids"] = frozenset(s.id for s in ses_rows)
        detail["sessions"] = [
            {**dict(s._mapping), "tiers": by_session.get(s.id, [])} for s in ses_rows
        ]
        return detail


@dataclass(slots=True)
class _SyncReport:
    """What one catalog sync found: counts, and the tiers refused or normalised."""

    shows: int = 0
    sessions: int = 0
    tiers: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    normalised: list[dict[str, Any]] = field(default_factory=list)
    refused_count: int = 0
    normalised_count: int = 0

    def check(self, tier_id: str, show_ref: str, session_ref: str, tier: CatalogTier) -> TierCheck:
        self.tiers += 1
        check = check_tier(tier.face_value, tier.price, tier.settlement_price, tier.currency)
        where = {
            "tier_id": tier_id,
            "show_ref": show_ref,
            "session_ref": session_ref,
            "tier_ref": tier.ref,
        }
        if not check.accepted:
            self.refused_count += 1
            if len(self.refused) < REPORT_LIST_MAX:
                self.refused.append({**where, "reason": check.reason})
        elif check.currency != tier.currency:
            self.normalised_count += 1
            if len(self.normalised) < REPORT_LIST_MAX:
                self.normalised.append(
                    {**where, "currency_given": tier.currency[:20], "currency": check.currency}
                )
        return check

    def as_dict(self, rows_changed: int) -> dict[str, Any]:
        return {
            "shows": self.shows,
            "sessions": self.sessions,
            "tiers": self.tiers,
            "tiers_refused": self.refused_count,
            "tiers_normalised": self.normalised_count,
            "rows_changed": rows_changed,
            "refused": self.refused,
            "normalised": self.normalised,
        }


def _tier_values(tier: CatalogTier, check: TierCheck) -> dict[str, Any]:
    """The tier's row: as the rule says (currency normalised, refused_reason), with a refused
    tier's values kept only as far as the columns hold them (its reason says the rest)."""

    def fit(value: int) -> int:
        return value if -_BIGINT <= value <= _BIGINT else 0

    return {
        "ref": tier.ref,
        "name": tier.name,
        "face_value": fit(tier.face_value),
        "price": fit(tier.price),
        "settlement_price": fit(tier.settlement_price),
        "currency": check.currency[:3],
        "refused_reason": check.reason,
    }


async def _upsert(
    conn: AsyncConnection,
    table: Any,
    row_id: str,
    values: dict[str, Any],
    now: datetime,
    insert_only: dict[str, Any] | None = None,
) -> int:
    existing = (await conn.execute(select(table).where(table.c.id == row_id))).first()
    if existing is None:
        await conn.execute(
            insert(table).values(id=row_id, updated_at=now, **values, **(insert_only or {}))
        )
        return 1
    current = existing._mapping
    if all(current[k] == v for k, v in values.items()):
        return 0
    await conn.execute(update(table).where(table.c.id == row_id).values(updated_at=now, **values))
    return 1


def _supplier(row: Any) -> Supplier:
    return Supplier(row.id, row.name, row.gateway, dict(row.config), row.replicas, row.status)


async def _withdraw_missing(
    conn: AsyncConnection, supplier_id: str, catalog: Catalog, now: datetime
) -> int:
    """What the supplier no longer lists goes offline (shows, sessions) or to zero stock
    (tiers): rows are never deleted, so a distributor's incremental sync sees them go."""
    show_ids = {catalog_id("shw", supplier_id, sh.ref) for sh in catalog.shows}
    session_ids = {
        catalog_id("ses", supplier_id, sh.ref, se.ref) for sh in catalog.shows for se in sh.sessions
    }
    tier_ids = {
        catalog_id("tir", supplier_id, sh.ref, se.ref, t.ref)
        for sh in catalog.shows
        for se in sh.sessions
        for t in se.tiers
    }
    ours = select(shows.c.id).where(shows.c.supplier_id == supplier_id)
    written = 0
    res = await conn.execute(
        update(shows)
        .where(shows.c.supplier_id == supplier_id, shows.c.status != "offline")
        .where(shows.c.id.not_in(show_ids) if show_ids else shows.c.id.is_not(None))
        .values(status="offline", updated_at=now)
    )
    written += res.rowcount
    our_sessions = select(sessions.c.id).where(sessions.c.show_id.in_(ours))
    res = await conn.execute(
        update(sessions)
        .where(sessions.c.show_id.in_(ours), sessions.c.status != "offline")
        .where(sessions.c.id.not_in(session_ids) if session_ids else sessions.c.id.is_not(None))
        .values(status="offline", updated_at=now)
    )
    written += res.rowcount
    res = await conn.execute(
        update(tiers)
        .where(tiers.c.session_id.in_(our_sessions), tiers.c.available != 0)
        .where(tiers.c.id.not_in(tier_ids) if tier_ids else tiers.c.id.is_not(None))
        .values(available=0, updated_at=now)
    )
    written += res.rowcount
    return written
