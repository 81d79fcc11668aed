"""Personal data and secrets stay in: no statement parameters (a buyer's phone) in database
errors, which reach the logs; the data folder owner-only and its files owner-only from the
moment they exist."""

from __future__ import annotations

import stat
import traceback
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.db import make_engine
from persistence.migrate import upgrade_async
from persistence.orders import OrderRepository
from showdist.settings import Settings, write_private
from tests.integration.test_persistence import make_supplier, new_order
from tests.support.services import PostgresServer

PHONE = "+86 139 8765 4321"


async def test_a_database_errors_message_holds_no_buyer_data(
    engine: AsyncEngine, now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    sup = await make_supplier(engine, now)
    order = new_order("dst_nobody", sup, "D-1", now, buyer={"name": "Li Lei", "phone": PHONE})
    with pytest.raises(IntegrityError) as failed:  # no such distributor: a foreign key fails
        await OrderRepository(engine).insert_new(order)
    text = str(failed.value)
    assert PHONE not in text
    assert "Li Lei" not in text
    assert "parameters hidden" in text or "hidden" in text.lower()
    assert PHONE not in caplog.text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_data_folder_and_its_files_are_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data" / "inner")
    settings.prepare_data_dir()
    assert _mode(settings.data_dir) == 0o700
    db = settings.data_dir / "showdist.db"
    assert _mode(db) == 0o600
    await upgrade_async(settings.resolved_database_url())  # SQLite opens and writes it
    assert _mode(db) == 0o600
    for journal in settings.data_dir.glob("showdist.db-*"):
        assert _mode(journal) == 0o600, journal
    settings.resolved_master_key()
    settings.resolved_platform_seed()
    for secret in ("master.key", "platform_ed25519.seed"):
        assert _mode(settings.data_dir / secret) == 0o600
    demo_key = settings.data_dir / "demo-key.json"
    write_private(demo_key, "{}\n")
    assert _mode(demo_key) == 0o600
    assert demo_key.read_text() == "{}\n"


def test_an_existing_loose_folder_is_narrowed(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    Settings(data_dir=loose).prepare_data_dir()
    assert _mode(loose) == 0o700


async def test_a_value_the_driver_quotes_in_its_error_is_taken_out(
    postgres: PostgresServer,
) -> None:
    """asyncpg and PostgreSQL quote the offending value in some errors (SQLite does not);
    hide_parameters does not reach those."""
    engine = make_engine(postgres.create_database("quoted_values"), pool_size=1)
    try:
        for statement in ("SELECT CAST(:phone AS integer)", "SELECT 1 + :phone"):
            async with engine.connect() as conn:
                with pytest.raises(DBAPIError) as failed:
                    await conn.execute(text(statement), {"phone": PHONE})
            shown = "".join(traceback.format_exception(failed.value))
            assert PHONE not in shown, shown
            assert "integer" in shown or "argument" in shown, shown  # what went wrong is said
    finally:
        await engine.dispose()
