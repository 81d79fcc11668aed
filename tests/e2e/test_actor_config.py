"""Actors start with the platform's settings whichever process starts them, and an admin
call to a supplier whose actor is restarting answers 503, never 500."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.interfaces import CreateOrder
from actors.routing import (
    OrderHosts,
    pool_index,
    running_supplier_actor,
    running_supplier_host,
    supplier_pool_host_name,
)
from domain.ids import order_id_for
from domain.order import DeliveryMethod, request_fingerprint
from persistence.catalog import CatalogRepository
from persistence.db import make_engine
from persistence.partitions import PartitionRepository
from showdist.client import AsyncSignedClient
from showdist.demo import seed_demo
from showdist.platform import RunningPlatform, start_platform, stop_platform
from showdist.settings import Settings
from tests.support.services import PostgresServer
from tests.support.waiting import eventually
from tests.support.world import World


@pytest.fixture
def demo_platform(
    platform: RunningPlatform,
    postgres: PostgresServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[RunningPlatform]:
    """A second platform in the test run's Ray session, started as `showdist up --demo` starts
    one (its settings from the environment), without its own API under Serve (the test run's
    Serve already answers on /)."""
    monkeypatch.setenv("SHOWDIST_CATALOG_SYNC_SECONDS", "45")
    monkeypatch.setenv("SHOWDIST_SUPPLIER_TICK_SECONDS", "0.3")
    settings = Settings(
        data_dir=tmp_path,
        database_url=postgres.create_database("demo_sync"),
        instance="demo-sync",
        ray_namespace=platform.settings.ray_namespace,
        order_hosts=1,
    )
    running = start_platform(settings, serve_api=False)
    yield running
    stop_platform(running, serve_api=False)


async def test_a_supplier_actor_started_by_a_first_lock_has_the_configured_settings(
    demo_platform: RunningPlatform, sandbox: Any, world: World
) -> None:
    settings = demo_platform.settings
    # As `showdist up --demo`: the demo supplier is created after the platform started, in
    # the pool host that was started with it (no process is started for it); the first lock
    # reaches it there, from an order host.
    config_ = demo_platform.config
    actors_before = _named_actors(config_.namespace, config_.instance)
    info = await seed_demo(settings, sandbox.url)
    supplier_id = info["supplier_id"]
    pool_host = running_supplier_host(
        config_,
        supplier_pool_host_name(
            config_.instance, pool_index(supplier_id, config_.suppliers.pool_hosts)
        ),
    )
    engine = make_engine(settings.resolved_database_url())
    try:
        catalog = CatalogRepository(engine)
        session_id, tier_id = info["example"]["session_id"], info["example"]["tier_id"]
        tier = await catalog.tier_for_sale(session_id, tier_id)
    finally:
        await engine.dispose()
    assert tier is not None
    cmd = CreateOrder(
        order_id=order_id_for(info["distributor_id"], "DEMO-1"),
        distributor_id=info["distributor_id"],
        distributor_order_id="DEMO-1",
        supplier_id=supplier_id,
        session_id=tier.session_id,
        tier_id=tier.tier_id,
        session_ref=tier.session_ref,
        tier_ref=tier.tier_ref,
        quantity=1,
        unit_price=tier.price,
        settlement_price=tier.settlement_price,
        face_value=tier.face_value,
        currency=tier.currency,
        delivery_method=DeliveryMethod.ETICKET,
        delivery_address=None,
        buyer={"name": "张三", "phone": "13800000000"},
        callback_url=None,
        request_hash=request_fingerprint({"demo": 1}),
    )
    engine = make_engine(demo_platform.config.database_url, pool_size=1)
    try:
        router = OrderHosts(demo_platform.config, PartitionRepository(engine))
        reply = await router.for_order(cmd.order_id).create(cmd)
    finally:
        await engine.dispose()
    assert reply.order is not None, reply
    assert reply.order.status == "LOCKED", reply

    assert supplier_id in await pool_host.hosted()
    assert _named_actors(config_.namespace, config_.instance) == actors_before
    config = await running_supplier_actor(demo_platform.config, supplier_id).config()
    assert config.settings.catalog_sync_seconds == 45.0
    assert config.settings.tick_seconds == 0.3
    assert config.settings == demo_platform.config.suppliers
    assert config.platform.instance == "demo-sync"


async def test_supplier_stats_answer_503_while_its_actor_restarts(
    platform: RunningPlatform, world: World, admin_client: AsyncSignedClient
) -> None:
    path = f"/admin/v1/suppliers/{world.supplier_id}"
    assert (await admin_client.request("GET", path)).status_code == 200  # actor up, caches warm
    actor = running_supplier_actor(platform.config, world.supplier_id)
    pid = await actor.pid()
    assert (await admin_client.request("GET", path)).status_code == 200
    # Stop the actor's process, so the stats call is in flight when the process dies.
    os.kill(pid, signal.SIGSTOP)
    try:
        asking = asyncio.ensure_future(admin_client.request("GET", path))
        await asyncio.sleep(0.5)
        assert not asking.done()
    finally:
        os.kill(pid, signal.SIGKILL)
    r = await asyncio.wait_for(asking, 30)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "supplier_unavailable"

    async def stats() -> Any:
        return await admin_client.request("GET", path)

    back = await eventually(stats, lambda resp: resp.status_code == 200, timeout=60)
    assert back.json()["id"] == world.supplier_id
    assert await actor.pid() != pid


def _named_actors(namespace: str, instance: str) -> set[str]:
    """The platform instance's actors (each a process; every one is named)."""
    return {
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == namespace and a["name"].startswith(f"{instance}:")
    }


def _frozen_objects(actor: Any) -> int:
    """How many objects the actor's process took out of the cyclic collector's reach."""
    import gc

    return int(ray.get(actor.__ray_call__.remote(lambda _self: gc.get_freeze_count()), timeout=60))


def test_order_and_supplier_hosts_freeze_what_they_built_to_start(
    platform: RunningPlatform,
) -> None:
    """Order hosts and supplier hosts freeze their start's objects
    (`actors.runtime.freeze_startup_objects`), so that Python's full collections, which stall
    every call in flight, walk only what the process made since. (Serve does the same for
    the API replicas.)"""
    config_ = platform.config
    named = _named_actors(config_.namespace, config_.instance)
    hosts = [n for n in named if ":order-host:" in n]
    names = hosts + [n for n in named if ":supplier-host:" in n]
    assert len(hosts) == config_.order_hosts
    assert len(names) > len(hosts)
    frozen = [_frozen_objects(ray.get_actor(n, namespace=config_.namespace)) for n in names]
    assert all(n > 20_000 for n in frozen), frozen  # (a process's imports alone are more)
