"""Suppliers and their catalog (shows, sessions, tiers) as synced from their gateways."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.grants import CatalogItem
from domain.ids import new_id
from persistence.tables import sessions, shows, suppliers, tiers
from suppliers.gateway import Catalog


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

    async def list_suppliers(self) -> list[Supplier]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(suppliers).order_by(suppliers.c.id))).all()
        return [_supplier(r) for r in rows]

    # -- sync --------------------------------------------------------------------------
    async def apply_catalog(self, supplier_id: str, catalog: Catalog, now: datetime) -> int:
        """Upsert a supplier's catalog; a row's updated_at moves only when it changed.
        Returns the number of rows written."""
        written = 0
        async with self._engine.begin() as conn:
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
                for ses in show.sessions:
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
                        },
                        now,
                    )
                    for tier in ses.tiers:
                        written += await _upsert(
                            conn,
                            tiers,
                            catalog_id("tir", supplier_id, show.ref, ses.ref, tier.ref),
                            {
                                "session_id": session_id,
                                "ref": tier.ref,
                                "name": tier.name,
                                "face_value": tier.face_value,
                                "price": tier.price,
                                "settlement_price": tier.settlement_price,
                                "currency": tier.currency,
                                "available": tier.available,
                            },
                            now,
                        )
        return written

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
                tiers.c.ref.label("tier_ref"),
                tiers.c.face_value,
                tiers.c.price,
                tiers.c.settlement_price,
                tiers.c.currency,
            )
            .select_from(tiers.join(sessions).join(shows))
            .where(tiers.c.id == tier_id, sessions.c.id == session_id)
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
        )

    async def list_shows(self) -> list[dict[str, Any]]:
        q = select(shows).order_by(shows.c.updated_at, shows.c.id)
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(q)).all()]

    @staticmethod
    def item_of(show: dict[str, Any], session_id: str | None = None) -> CatalogItem:
        """Where a show (or one of its sessions) sits, for grant checks."""
        return CatalogItem(
            show["supplier_id"], show["city"], show["category"], show["id"], session_id
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
                    .where(tiers.c.session_id.in_([s.id for s in ses_rows]))
                    .order_by(tiers.c.price, tiers.c.id)
                )
            ).all()
        by_session: dict[str, list[dict[str, Any]]] = {}
        for t in tier_rows:
            by_session.setdefault(t.session_id, []).append(dict(t._mapping))
        detail = dict(show._mapping)
        detail["sessions"] = [
            {**dict(s._mapping), "tiers": by_session.get(s.id, [])} for s in ses_rows
        ]
        return detail


async def _upsert(
    conn: AsyncConnection, table: Any, row_id: str, values: dict[str, Any], now: datetime
) -> int:
    existing = (await conn.execute(select(table).where(table.c.id == row_id))).first()
    if existing is None:
        await conn.execute(insert(table).values(id=row_id, updated_at=now, **values))
        return 1
    current = existing._mapping
    if all(current[k] == v for k, v in values.items()):
        return 0
    await conn.execute(update(table).where(table.c.id == row_id).values(updated_at=now, **values))
    return 1


def _supplier(row: Any) -> Supplier:
    return Supplier(row.id, row.name, row.gateway, dict(row.config), row.replicas, row.status)
