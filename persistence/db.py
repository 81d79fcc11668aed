"""One async engine per process, the same code path for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

T = TypeVar("T")


async def again_if_dropped(op: Callable[[], Awaitable[T]]) -> T:
    """Run ``op`` (one whole transaction); if it failed on a pooled connection the server had
    dropped, run it once more: the pool has just replaced its connections. For writes whose
    failure would strand work already done elsewhere (an order move after a supplier call)."""
    try:
        return await op()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return await op()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 8) -> AsyncEngine:
    if is_sqlite(url):
        # hide_parameters: a database error's message (which reaches the logs) never carries
        # the statement's values: buyers' names, phones and addresses stay out of the logs.
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            # WAL lets readers go on while one process writes; the busy timeout makes the
            # several processes of the embedded default queue for the write lock.
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs: dict[str, Any] = {
        "pool_size": pool_size,
        # Overflow connections are closed after each use: a burst past the pool would pay a
        # new connection per query, so the pool itself carries the load.
        "max_overflow": max(2, pool_size // 4),
        # No ping before each use: it was a round trip per transaction (five per order).
        # A connection the server dropped fails its next use once; SQLAlchemy then discards
        # every pooled connection older than the failure. Order moves run again at once
        # (again_if_dropped); other callers answer 503 and may be asked again.
        "pool_pre_ping": False,
        "hide_parameters": True,  # (as above: no personal data in error messages and logs)
    }
    return create_async_engine(url, **kwargs)
