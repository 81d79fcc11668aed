"""The nonce store of the embedded default: a table with a primary key on (key, nonce)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.tables import nonces


class NonceStoreUnavailable(Exception):
    pass


class DbNonceStore:
    def __init__(self, engine: AsyncEngine, *, purge_every: int = 1000) -> None:
        self._engine = engine
        self._purge_every = purge_every
        self._claims = 0

    async def claim(self, key_id: str, nonce: str, *, now: datetime, ttl: timedelta) -> bool:
        """Record the nonce; False when this key used it before (within its retention)."""
        self._claims += 1
        try:
            if self._claims % self._purge_every == 0:
                await self._purge(now)
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(nonces).values(key_id=key_id, nonce=nonce, expires_at=now + ttl)
                )
        except IntegrityError:
            return False
        except (OperationalError, OSError) as exc:
            raise NonceStoreUnavailable(str(exc)) from exc
        return True

    async def seen(self, key_id: str, nonce: str, *, now: datetime) -> bool:
        """Whether this key used the nonce within its retention (a read, no write)."""
        q = select(nonces.c.nonce).where(
            nonces.c.key_id == key_id, nonces.c.nonce == nonce, nonces.c.expires_at > now
        )
        try:
            async with self._engine.connect() as conn:
                return (await conn.execute(q)).first() is not None
        except (OperationalError, OSError) as exc:
            raise NonceStoreUnavailable(str(exc)) from exc

    async def _purge(self, now: datetime) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(nonces).where(nonces.c.expires_at < now))
