"""One async engine per process, the same code path for SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection, ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from persistence.fair_pool import FairAsyncPool

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


def statement_reads(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (and pool) for reads of one statement each, run without a transaction
    around them: on PostgreSQL a connection of the plain engine sends BEGIN before its first
    statement and ROLLBACK when it is closed, two more round trips for a poll that reads one
    row. Only for reads whose statements need no common snapshot: on PostgreSQL's READ
    COMMITTED each statement takes its own snapshot inside a transaction too. (SQLite, with no
    round trips to save, keeps its transactions and the one snapshot they give.)"""
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 8, fair: bool = False) -> AsyncEngine:
    """The process's engine for `url`. `fair`: on PostgreSQL, callers waiting for a connection
    are served first come, first served (`persistence/fair_pool.py`), for a process whose
    callers are many independent requests that may outnumber its connections for long (an
    API replica in a flash sale). Elsewhere SQLAlchemy's own pool, which lets a caller that
    just arrived take a connection a waiter was woken for: under a moderate load that keeps
    each connection busier (measured, `bench.order_moves --pool 8`, 16 in flight on 8 + 2: p99
    4.3-5.4 ms against 6.7-7.8 ms for the fair pool), under a long overload it passes some
    callers over again and again."""
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

        event.listen(engine.sync_engine, "handle_error", _values_hidden)
        return engine
    kwargs: dict[str, Any] = {
        # At most `pool_size` and a quarter more (at least 2) connections, opened as they are
        # needed and all kept. SQLAlchemy's overflow (connections past `pool_size`, closed
        # each time one comes back to a full pool) churned under a load hovering about the
        # size: on 2026-12-04 an order host at 16 lifecycles in flight on 8 + 2 opened about
        # 7 connections a second, and an API replica in the flash sale on 16 + 4 about 14,
        # each a PostgreSQL backend started, its types introspected and its statements
        # prepared again. A process keeps no more connections than it once needed at once.
        "pool_size": pool_size + max(2, pool_size // 4),
        "max_overflow": 0,
        # No ping before each use: it was a round trip per transaction (five per order).
        # A connection the server dropped fails its next use once; SQLAlchemy then discards
        # every pooled connection older than the failure. Order moves run again at once
        # (again_if_dropped); other callers answer 503 and may be asked again.
        "pool_pre_ping": False,
        "hide_parameters": True,  # (as above: no personal data in error messages and logs)
    }
    if fair:
        kwargs["poolclass"] = FairAsyncPool
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "handle_error", _values_hidden)
    return engine


# A value quoted after a colon ("…argument $3: '…'", "…type integer: \"…\""); names quoted
# otherwise (a constraint's) stay.
_QUOTED = re.compile(r"(?<=: )(?:'[^']*'|\"[^\"]*\")")
# asyncpg's "invalid input for query argument $3: <the value's repr, maybe cut> (<why>)".
_ARGUMENT = re.compile(r"(query argument \$\d+: ).*", re.S)


def _values_hidden(context: ExceptionContext) -> None:
    """asyncpg (and PostgreSQL) quote the offending value in some messages ("invalid input
    for query argument $3: '+86 139…'", "invalid input syntax for type integer: \"…\""), which
    `hide_parameters` does not reach: the quoted values are taken out of the driver's error
    and of every error it was raised from, so a buyer's phone or name never reaches a log
    (or a traceback) through it."""
    seen: set[int] = set()
    for start in (context.sqlalchemy_exception, context.original_exception):
        _hide_quoted(start, seen)


def _hidden(text: str) -> str:
    return _QUOTED.sub("'…'", _ARGUMENT.sub(r"\1… (value hidden)", text))


def _hide_quoted(err: BaseException | None, seen: set[int]) -> None:
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if err.args and isinstance(err.args[0], str):
            hidden = _hidden(err.args[0])
            if hidden != err.args[0]:
                err.args = (hidden, *err.args[1:])
        # PostgreSQL's DETAIL ("Failing row contains (…)", "Key (…)=(…)") names values too;
        # asyncpg keeps it apart and prints it with the message.
        for attr in ("detail", "message"):
            value = getattr(err, attr, None)
            if isinstance(value, str):
                with contextlib.suppress(AttributeError):
                    setattr(err, attr, "(hidden)" if attr == "detail" else _hidden(value))
        err = err.__cause__ or err.__context__
