"""The pool's raw asyncpg connection, for the few statements on the hot path whose
SQLAlchemy `Connection` around them costs more CPU than the statement itself.

`raw_asyncpg(engine)` checks a connection of the engine's own pool out, yields the asyncpg
`Connection` inside it and checks it back in. A failure to check one out is raised as it
always was; callers catch only what their statements raise, inside the block. Nothing runs
in an explicit transaction: each statement is its own. A connection the server dropped, or
one left mid-statement by a cancel (anything not an `Exception`), is invalidated so the pool
replaces it on its next checkout, as SQLAlchemy would. asyncpg prepares each statement once
per connection and keeps it in its statement cache, so the SQL text is the cache key:
callers pass constant strings.

Callers use the asyncpg connection only, never SQLAlchemy's adapter around it (its cursor
would open a transaction of the adapter's, which a check-in must roll back): a check-in of a
sound connection the pool keeps then awaits nothing and is done without a greenlet.

Only for PostgreSQL through asyncpg (`raw_capable`); every caller keeps its SQLAlchemy path
for SQLite and for when the raw one fails.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import greenlet_spawn


def raw_capable(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"


class raw_asyncpg:  # (named as the function it stands for: `async with raw_asyncpg(e) as c`)
    """An asyncpg `Connection` of `engine`'s pool, checked out for the block. (A class, not
    an `asynccontextmanager`: this is on every order move, and a generator-based manager
    costs about 3 µs more per use.)"""

    __slots__ = ("_engine", "_pool", "_pooled")

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pool: Any = None
        self._pooled: Any = None

    async def __aenter__(self) -> Any:
        # The pool it comes from (a dispose may give the engine a new one meanwhile; the
        # connection goes back to its own).
        self._pool = self._engine.pool
        self._pooled = await self._engine.raw_connection()
        return self._pooled.driver_connection

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        pooled, self._pooled = self._pooled, None
        pool = self._pool
        # Dropped by the server, or left mid-statement by a cancel (anything not an
        # Exception); or closed under a statement whose failure the block dealt with.
        unsound = (exc is not None and not isinstance(exc, Exception)) or (
            pooled.driver_connection.is_closed()
        )
        if not unsound and isinstance(pool, QueuePool) and pool.checkedin() < pool.size():
            # A sound connection the pool has room for (or a waiter to hand it to): its
            # check-in awaits nothing (nothing to close, and no transaction of SQLAlchemy's
            # adapter to roll back: callers use the asyncpg connection only, never the
            # adapter's cursor), so it is done here, without a greenlet.
            pooled.close()
            return
        # Otherwise in a greenlet, as SQLAlchemy's own AsyncConnection.close does: the
        # check-in may close the connection (an unsound one, or in a pool with overflow one
        # it has no room for; make_engine's pools have no overflow), and closing an asyncpg
        # connection awaits. (A soft-invalidated one is replaced at its
        # next checkout.)
        await greenlet_spawn(_check_in, pooled, unsound, exc)


def _check_in(pooled: Any, unsound: bool, exc: BaseException | None) -> None:
    try:
        if unsound:
            pooled.invalidate(exc, soft=True)
    finally:
        pooled.close()
