"""Bring a database's schema to the newest Alembic revision."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Run the migrations (synchronous; env.py runs its own event loop)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """The same from inside an event loop: env.py's loop runs on a thread of its own."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(url, revision)
        except BaseException as exc:  # re-raised in the caller's task
            errors.append(exc)

    thread = threading.Thread(target=run, name="alembic-upgrade")
    thread.start()
    await asyncio.to_thread(thread.join)
    if errors:
        raise errors[0]
