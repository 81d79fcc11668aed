"""The throw-away PostgreSQL and Redis servers used by the integration suite."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.services import PostgresServer, RedisServer, free_port


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


def _port_is_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


# ----------------------------------------------------------------------------- PostgreSQL


def test_postgres_urls(postgres: PostgresServer) -> None:
    assert postgres.running
    assert postgres.url == f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/showdist"
    assert postgres.dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/showdist"
    assert postgres.root.is_dir()
    assert _port_is_open(postgres.port)


async def test_postgres_select_one_with_asyncpg(postgres: PostgresServer) -> None:
    conn = await asyncpg.connect(postgres.dsn)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("select current_database()") == "showdist"
        assert await conn.fetchval("show fsync") == "off"
        assert await conn.fetchval("show max_connections") == "300"
        assert await conn.fetchval("show server_encoding") == "UTF8"
    finally:
        await conn.close()


async def test_postgres_select_one_with_sqlalchemy(postgres: PostgresServer) -> None:
    engine = create_async_engine(postgres.url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("select 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_postgres_create_database_is_separate(postgres: PostgresServer) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    assert url == f"postgresql+asyncpg://postgres@127.0.0.1:{postgres.port}/{name}"

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(text("select current_database()"))).scalar_one() == name
            await conn.execute(text("create table only_here (id int primary key)"))
    finally:
        await engine.dispose()

    conn2 = await asyncpg.connect(postgres.dsn)
    try:
        assert await conn2.fetchval("select to_regclass('only_here')") is None
    finally:
        await conn2.close()

    postgres.drop_database(name)
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(postgres.dsn_for(name))


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "x; drop database showdist", "a" * 64])
def test_postgres_create_database_rejects_odd_names(postgres: PostgresServer, name: str) -> None:
    with pytest.raises(ValueError, match="database name"):
        postgres.create_database(name)


def test_postgres_stop_removes_folder() -> None:
    server = PostgresServer.start()
    root, port = server.root, server.port
    assert root.is_dir()
    assert _port_is_open(port)

    server.stop()
    assert not root.exists()
    assert not server.running
    assert not _port_is_open(port)
    server.stop()  # idempotent


# ---------------------------------------------------------------------------------- Redis


def test_redis_url(redis_server: RedisServer) -> None:
    assert redis_server.running
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


async def test_redis_ping_set_get(redis_client: aioredis.Redis) -> None:
    assert await redis_client.ping() is True
    assert await redis_client.set("greeting", "hello") is True
    assert await redis_client.get("greeting") == b"hello"


async def test_redis_restart_keeps_port_and_drops_data(redis_server: RedisServer) -> None:
    port, pid = redis_server.port, redis_server.pid
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set("before-restart", "1")
    finally:
        await client.aclose()

    redis_server.restart()

    assert redis_server.port == port
    assert redis_server.pid != pid
    assert redis_server.url == f"redis://127.0.0.1:{port}/0"
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
        assert await client.get("before-restart") is None  # nothing is persisted
    finally:
        await client.aclose()


async def test_redis_down_is_an_outage(redis_server: RedisServer) -> None:
    port = redis_server.port
    with redis_server.down():
        assert redis_server.pid is None
        assert not _port_is_open(port)
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            with pytest.raises(redis.exceptions.ConnectionError):
                await client.ping()
        finally:
            await client.aclose()
    assert redis_server.running
    assert redis_server.port == port
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()


def test_redis_stop_removes_folder() -> None:
    server = RedisServer.start()
    root, port = server.root, server.port
    assert root.is_dir()
    server.stop()
    assert not root.exists()
    assert not server.running
    assert not _port_is_open(port)
    server.stop()  # idempotent
