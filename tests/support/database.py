"""Things tests do to a running database from the outside."""

from __future__ import annotations

from sqlalchemy import text

from persistence.db import make_engine


async def terminate_connections(url: str) -> int:
    """Have PostgreSQL terminate every other connection to the database at ``url`` (as a
    restart or a failover would); returns how many it terminated."""
    killer = make_engine(url)
    try:
        async with killer.connect() as conn:
            dropped: int = (
                await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar_one()
    finally:
        await killer.dispose()
    return dropped
