"""Distributors, their keys (secrets sealed at rest) and grants; admin keys."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.grants import Grant, GrantScope
from domain.ids import new_id
from domain.signing import KeyType
from persistence.secretbox import SecretBox
from persistence.tables import api_keys, distributors, grants

ADMIN = "admin"
DISTRIBUTOR = "distributor"


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    owner_kind: str
    distributor_id: str | None
    key_type: KeyType
    material: bytes  # the HMAC secret's bytes, or the raw Ed25519 public key
    status: str
    expires_at: datetime | None
    account_status: str
    rate_limit_per_s: int | None = None


@dataclass(frozen=True, slots=True)
class Distributor:
    id: str
    name: str
    status: str
    created_at: datetime
    rate_limit_per_s: int | None = None


def _distributor(row: Any) -> Distributor:
    return Distributor(row.id, row.name, row.status, row.created_at, row.rate_limit_per_s)


def _owner(owner_kind: str, distributor_id: str | None) -> str:
    return f"{owner_kind}:{distributor_id or '-'}"


class AccountRepository:
    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self._engine = engine
        self._box = box

    # -- distributors ------------------------------------------------------------------
    async def create_distributor(self, name: str, now: datetime) -> Distributor:
        d = Distributor(new_id("dst"), name, "active", now)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(distributors).values(
                    id=d.id, name=name, status=d.status, created_at=now, updated_at=now
                )
            )
        return d

    async def get_distributor(self, distributor_id: str) -> Distributor | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(distributors).where(distributors.c.id == distributor_id))
            ).first()
        return None if row is None else _distributor(row)

    async def list_distributors(
        self, *, after: tuple[datetime, str] | None = None, limit: int = 100
    ) -> list[Distributor]:
        """A keyset page of distributors by (created_at, id), strictly after `after`."""
        q = select(distributors).order_by(distributors.c.created_at, distributors.c.id)
        if after is not None:
            at, last_id = after
            q = q.where(
                or_(
                    distributors.c.created_at > at,
                    and_(distributors.c.created_at == at, distributors.c.id > last_id),
                )
            )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q.limit(limit))).all()
        return [_distributor(r) for r in rows]

    async def set_distributor_status(self, distributor_id: str, status: str, now: datetime) -> bool:
        return await self._update_distributor(distributor_id, now, status=status)

    async def _update_distributor(self, distributor_id: str, now: datetime, **values: Any) -> bool:
        """Set columns of one distributor; False if there is no such distributor."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                update(distributors)
                .where(distributors.c.id == distributor_id)
                .values(updated_at=now, **values)
            )
        return res.rowcount == 1

    # -- keys --------------------------------------------------------------------------
    async def create_hmac_key(
        self,
        *,
        owner_kind: str,
        distributor_id: str | None,
        now: datetime,
        expires_at: datetime | None = None,
    ) -> tuple[str, str]:
        """Create an HMAC key; returns (key_id, secret). The secret is not kept in clear."""
        key_id = new_id("ak" if owner_kind == ADMIN else "dk", 12)
        secret = "sk_" + secrets.token_urlsafe(32)
        sealed = self._box.seal(secret, key_id=key_id, owner=_owner(owner_kind, distributor_id))
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    owner_kind=owner_kind,
                    distributor_id=distributor_id,
                    key_type=KeyType.HMAC.value,
                    secret_ciphertext=sealed,
                    status="active",
                    expires_at=expires_at,
                    created_at=now,
                )
            )
        return key_id, secret

    async def create_ed25519_key(
        self,
        *,
        distributor_id: str,
        public_key_b64: str,
        now: datetime,
        expires_at: datetime | None = None,
    ) -> str:
        raw = base64.b64decode(public_key_b64, validate=True)
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        key_id = new_id("dk", 12)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    owner_kind=DISTRIBUTOR,
                    distributor_id=distributor_id,
                    key_type=KeyType.ED25519.value,
                    public_key=public_key_b64,
                    status="active",
                    expires_at=expires_at,
                    created_at=now,
                )
            )
        return key_id

    async def revoke_key(self, key_id: str, now: datetime) -> bool:
        async with self._engine.begin() as conn:
            res = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(status="revoked", revoked_at=now)
            )
        return res.rowcount == 1

    async def load_key(self, key_id: str) -> KeyRecord | None:
        q = (
            select(
                api_keys,
                distributors.c.status.label("account_status"),
                distributors.c.rate_limit_per_s,
            )
            .select_from(api_keys.outerjoin(distributors))
            .where(api_keys.c.id == key_id)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            return None
        key_type = KeyType(row.key_type)
        if key_type is KeyType.HMAC:
            owner = _owner(row.owner_kind, row.distributor_id)
            material = self._box.open(row.secret_ciphertext, key_id=row.id, owner=owner).encode()
        else:
            material = base64.b64decode(row.public_key)
        return KeyRecord(
            id=row.id,
            owner_kind=row.owner_kind,
            distributor_id=row.distributor_id,
            key_type=key_type,
            material=material,
            status=row.status,
            expires_at=row.expires_at,
            account_status=row.account_status or "active",
            rate_limit_per_s=row.rate_limit_per_s,
        )

    # -- grants ------------------------------------------------------------------------
    async def create_grant(
        self,
        distributor_id: str,
        scope: GrantScope,
        value: str | None,
        *,
        now: datetime,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
    ) -> Grant:
        g = Grant(new_id("grt"), scope, value, valid_from, valid_until, created_at=now)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(grants).values(
                    id=g.id,
                    distributor_id=distributor_id,
                    scope=scope.value,
                    value=value,
                    valid_from=valid_from,
                    valid_until=valid_until,
                    created_at=now,
                )
            )
        return g

    async def grants_of(self, distributor_id: str) -> list[Grant]:
        """Every grant ever made to the distributor, revoked ones included: visibility over
        time (for incremental catalog sync) needs the ended ones too."""
        q = select(grants).where(grants.c.distributor_id == distributor_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            Grant(
                r.id,
                GrantScope(r.scope),
                r.value,
                r.valid_from,
                r.valid_until,
                created_at=r.created_at,
                revoked_at=r.revoked_at,
            )
            for r in rows
        ]

    async def revoke_grant(self, grant_id: str, now: datetime) -> str | None:
        """Revoke; returns the grant's distributor id, or None if there is no such grant."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(select(grants.c.distributor_id).where(grants.c.id == grant_id))
            ).first()
            if row is None:
                return None
            await conn.execute(
                update(grants)
                .where(grants.c.id == grant_id, grants.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return str(row[0])

    async def keys_of(self, distributor_id: str) -> list[dict[str, object]]:
        q = (
            select(
                api_keys.c.id,
                api_keys.c.key_type,
                api_keys.c.status,
                api_keys.c.expires_at,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            )
            .where(api_keys.c.distributor_id == distributor_id)
            .order_by(api_keys.c.created_at)
        )
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(q)).all()]

    async def set_rate_limit(self, distributor_id: str, per_s: int | None, now: datetime) -> bool:
        return await self._update_distributor(distributor_id, now, rate_limit_per_s=per_s)
