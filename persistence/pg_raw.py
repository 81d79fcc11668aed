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

Only for PostgreSQL through asyncpg (`raw_capable`); every caller keeps its SQLAlchemy path
for SQLite and for when the raw one fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine


def raw_capable(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"


@asynccontextmanager
async def raw_asyncpg(engine: AsyncEngine) -> AsyncIterator[Any]:
    """An asyncpg `Connection` of `engine`'s pool, checked out for the block."""
    pooled = await engine.raw_connection()
    driver: Any = pooled.driver_connection
    try:
        yield driver
    except BaseException as exc:
        if not isinstance(exc, Exception) or driver.is_closed():
            pooled.invalidate(exc, soft=True)
        raise
    else:
        if driver.is_closed():  # a statement failed on it, and the block dealt with that
            pooled.invalidate(soft=True)
    finally:
        pooled.close()
