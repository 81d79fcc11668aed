from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from showdist.client import AsyncSignedClient
from tests.support.world import World, seed_world, world_catalog


@pytest.fixture(scope="session")
async def world(platform: Any, sandbox: Any, sandbox_admin: Any) -> World:
    sandbox_admin.reset()
    sandbox_admin.load_catalog(world_catalog())
    return await seed_world(platform.settings, sandbox.url, platform.base_url)


@pytest.fixture(autouse=True)
def _no_faults(sandbox_admin: Any) -> Any:
    """Every test starts and ends with a well-behaved supplier."""
    sandbox_admin.set_faults({})
    yield
    sandbox_admin.set_faults({})


@pytest.fixture
async def client_a(world: World) -> AsyncIterator[AsyncSignedClient]:
    client = AsyncSignedClient(world.base_url, world.a.creds)
    yield client
    await client.aclose()


@pytest.fixture
async def client_b(world: World) -> AsyncIterator[AsyncSignedClient]:
    client = AsyncSignedClient(world.base_url, world.b.creds)
    yield client
    await client.aclose()


@pytest.fixture
async def admin_client(world: World) -> AsyncIterator[AsyncSignedClient]:
    client = AsyncSignedClient(world.base_url, world.admin)
    yield client
    await client.aclose()
