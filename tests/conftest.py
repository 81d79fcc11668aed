"""Shared test services: one PostgreSQL, one sandbox supplier process and one Ray session
(with the platform under Serve) per test run, started on first use."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.db import make_engine
from persistence.migrate import upgrade_async
from tests.support.services import PostgresServer, RedisServer, free_port

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    from suppliers.sandbox.process import SandboxProcess

    proc = SandboxProcess.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def pretix() -> Iterator[Any]:
    """The suite's one pretix (tests/support/pretix.py), bootstrapped; never skipped."""
    from tests.support.pretix import pretix_session

    yield from pretix_session()


@pytest.fixture(scope="session")
def sandbox_admin(sandbox: Any) -> Any:
    from suppliers.sandbox.process import SandboxAdmin

    return SandboxAdmin(sandbox.url)


def fresh_database_url(kind: str, postgres: PostgresServer | None, tmp: Path) -> str:
    n = next(_db_counter)
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / f'db{n}.sqlite'}"
    assert postgres is not None
    return postgres.create_database(f"t{n}")


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A freshly migrated database of each kind."""
    pg = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    url = fresh_database_url(request.param, pg, tmp_path)
    await upgrade_async(url)
    eng = make_engine(url)
    yield eng
    await eng.dispose()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="showdist-test-") as d:
        yield Path(d)


# How often Ray's processes report their metrics to the node's metrics agent in the tests
# (Ray's default is 10 s): tests/e2e/test_metrics.py waits at most a few of these.
METRICS_REPORT_MS = 1000


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """The run's one Ray session; its node exports the metrics (docs/metrics.md) on a free
    port, which `ray.nodes()` tells (`MetricsExportPort`)."""
    import ray

    from showdist.platform import prepare_ray_environment

    prepare_ray_environment()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace="showdist-test",
        log_to_driver=False,
        _metrics_export_port=free_port(),
        _system_config={"metrics_report_interval_ms": METRICS_REPORT_MS},
    )
    yield
    from ray import serve

    serve.shutdown()  # type: ignore[no-untyped-call]
    ray.shutdown()


@pytest.fixture(scope="session")
def platform(
    ray_session: None, postgres: PostgresServer, redis_server: RedisServer, data_dir: Path
) -> Iterator[Any]:
    """The whole platform as in production (PostgreSQL, Redis), serving HTTP on a free port."""
    from showdist.platform import start_platform, stop_platform
    from showdist.settings import Settings

    settings = Settings(
        data_dir=data_dir,
        database_url=postgres.create_database("platform"),
        redis_url=redis_server.url,
        rate_limit_per_s=1000,
        http_port=free_port(),
        instance="e2e",
        ray_namespace="showdist-test",
        order_hosts=2,
        sweep_seconds=0.5,
        supplier_tick_seconds=0.2,
        supplier_idle_feed_seconds=2.0,  # (an idle supplier's feeds: tests wait for them)
        abandoned_lock_seconds=10.0,
        breaker_cooldown_seconds=1.0,
        callback_allowed_networks=["127.0.0.0/8"],  # the tests' callback receivers
        metrics_count_seconds=2.0,  # (the gauges: tests/e2e/test_metrics.py reads them)
    )
    running = start_platform(settings)
    yield running
    stop_platform(running)
