"""Open (LOCKED) orders held by the order hosts: memory per held order, against a baseline.

    python -m bench.open_orders [--orders 100000] [--sample 1000] [--concurrency 16]

Target: 100,000 open orders held by the order hosts within 1 GiB total RSS of the hosts.

The orders (with their NEW and LOCKED history rows) are bulk-copied straight into PostgreSQL,
then every host is sent all the ids and activates its own share (`OrderHost.activate_many`).
The hosts' RSS is summed before activation (the baseline: the same processes, no orders held)
and after. A random sample of the held orders is then read through the signed API to show the
activations are live, and the Python-level size of one activation is measured in this process
as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import FunctionType, ModuleType, SimpleNamespace
from typing import Any, cast

from actors.interfaces import OrderHostCalls
from actors.order_actor import OrderActor
from bench.common import FastSignedClient, Stack, Timings, run_concurrently, stack, timed
from domain.ids import order_id_for
from domain.order import request_fingerprint
from persistence.orders import _to_order
from tests.support.world import world_catalog

GIB = 1024**3
MIB = 1024**2
TARGET_BYTES = 1 * GIB
ORDER_COLUMNS = (
    "id",
    "distributor_id",
    "distributor_order_id",
    "supplier_id",
    "session_id",
    "tier_id",
    "quantity",
    "unit_price",
    "settlement_price",
    "face_value",
    "currency",
    "status",
    "delivery_method",
    "delivery_status",
    "buyer",
    "delivery_address",
    "callback_url",
    "request_hash",
    "lock_expires_at",
    "supplier_lock_ref",
    "failure_reason",
    "version",
    "created_at",
    "updated_at",
)
HISTORY_COLUMNS = ("order_id", "seq", "status", "at", "reason")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华"


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """One generated LOCKED order: its `orders` row and its two history rows."""

    row: tuple[Any, ...]
    history: tuple[tuple[Any, ...], tuple[Any, ...]]

    @property
    def id(self) -> str:
        return cast(str, self.row[0])


def generate(s: Stack, n: int, run: str, now: datetime, seed: int = 7) -> Iterator[OpenOrder]:
    """N realistic LOCKED orders of distributor A for the world's big tier, locked within the
    last few minutes, each lock expiring an hour from now."""
    rng = random.Random(seed)
    w = s.world
    big = world_catalog()["shows"][0]["sessions"][0]["tiers"][0]
    callback_url = "https://distributor-a.example/showdist/callbacks"
    for i in range(n):
        distributor_order_id = f"OO-{run}-{i:07d}"
        quantity = rng.choice((1, 1, 2, 2, 2, 3, 4))
        buyer = {
            "name": rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
            "phone": f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}",
        }
        body = {
            "distributor_order_id": distributor_order_id,
            "session_id": w.session_id,
            "tier_id": w.big_tier_id,
            "quantity": quantity,
            "buyer": buyer,
            "delivery": {"method": "ETICKET", "address": None},
            "callback_url": callback_url,
            "lock_seconds": 3600,
        }
        created_at = now - timedelta(seconds=rng.uniform(1.0, 300.0))
        locked_at = created_at + timedelta(milliseconds=rng.uniform(20.0, 400.0))
        oid = order_id_for(w.a.distributor_id, distributor_order_id)
        row = (
            oid,
            w.a.distributor_id,
            distributor_order_id,
            w.supplier_id,
            w.session_id,
            w.big_tier_id,
            quantity,
            big["price"],
            big["settlement_price"],
            big["face_value"],
            big["currency"],
            "LOCKED",
            "ETICKET",
            "NONE",
            json.dumps(buyer, ensure_ascii=False),
            None,
            callback_url,
            request_fingerprint(body),
            now + timedelta(hours=1),
            f"sbxlk_{run}{i:08d}",
            None,
            1,  # inserted NEW at version 0, saved LOCKED at version 1
            created_at,
            locked_at,
        )
        yield OpenOrder(
            row, ((oid, 0, "NEW", created_at, None), (oid, 1, "LOCKED", locked_at, None))
        )


async def bulk_insert(s: Stack, orders: list[OpenOrder]) -> float:
    import asyncpg

    started = time.perf_counter()
    conn = await asyncpg.connect(s.pg.dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "orders", records=[o.row for o in orders], columns=list(ORDER_COLUMNS)
            )
            await conn.copy_records_to_table(
                "order_history",
                records=[h for o in orders for h in o.history],
                columns=list(HISTORY_COLUMNS),
            )
        await conn.execute("ANALYZE orders; ANALYZE order_history; ANALYZE tickets")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def hosts_rss(hosts: list[OrderHostCalls]) -> list[int]:
    return list(await asyncio.gather(*(h.rss_bytes() for h in hosts)))


# -- the in-process cross-check ----------------------------------------------------------


def _fresh(value: Any) -> Any:
    """A copy of a str, int or datetime that is its own object, as each row fetched from the
    database has its own (the generator shares ids, prices and times between orders)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(str(value))  # ints past the small-int cache are new objects
    if isinstance(value, str):
        return value.encode().decode()
    if isinstance(value, datetime):
        return value + timedelta(0)
    return value


def _mapping(o: OpenOrder) -> dict[str, Any]:
    m = {c: _fresh(v) for c, v in zip(ORDER_COLUMNS, o.row, strict=True)}
    m["buyer"] = json.loads(m["buyer"])  # as the JSON column hands it back
    return m


def plain_activations(s: Stack, k: int, now: datetime) -> dict[str, OrderActor]:
    """K activations built as a host builds them, on the same kind of rows, with no database
    or supplier behind them (nothing here is called)."""
    out: dict[str, OrderActor] = {}
    ttl = timedelta(minutes=15)

    def clock() -> datetime:
        return now

    for o in generate(s, k, "py" + uuid.uuid4().hex[:6], now, seed=11):
        hist = [SimpleNamespace(status=h[2], at=_fresh(h[3]), reason=h[4]) for h in o.history]
        order = _to_order(_mapping(o), hist, [])
        actor = OrderActor(order.id, cast(Any, None), cast(Any, None), clock, ttl)
        actor._order = order
        out[order.id] = actor
    return out


def deep_size(obj: object, shared: set[int], seen: set[int] | None = None) -> int:
    """sys.getsizeof over everything `obj` owns, skipping what every activation shares
    (enum members, types, functions, modules, and the ids in `shared`)."""
    seen = set() if seen is None else seen
    if (
        id(obj) in seen
        or id(obj) in shared
        or obj is None
        or isinstance(obj, (bool, Enum, type, FunctionType, ModuleType))
    ):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    children: list[object] = []
    if isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif not isinstance(obj, (str, bytes, int, float, datetime, timedelta)):
        if hasattr(obj, "__dict__"):
            children.append(vars(obj))
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if hasattr(obj, slot):
                    children.append(getattr(obj, slot))
    return size + sum(deep_size(c, shared, seen) for c in children)


def python_level_size(s: Stack, k: int) -> tuple[int, float]:
    """(recursive getsizeof of one activation, tracemalloc bytes per activation over k)."""
    now = datetime.now(UTC)
    one = next(iter(plain_activations(s, 1, now).values()))
    shared = {id(one._repo), id(one._suppliers), id(one._clock), id(one._lock_ttl)}
    single = deep_size(one, shared)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = plain_activations(s, k, now)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(held) == k
    return single, (after - before) / k


# -- the run -------------------------------------------------------------------------------


async def read_sample(s: Stack, ids: list[str], concurrency: int) -> tuple[Timings, dict[str, int]]:
    t = Timings("GET /v1/orders/{id}")
    outcomes: dict[str, int] = {}
    client = FastSignedClient(s.world.base_url, s.world.a.creds, max_connections=concurrency)

    async def one(i: int) -> None:
        r = await timed(t, client.request("GET", f"/v1/orders/{ids[i]}"))
        status = r.json().get("status") if r.status_code == 200 else f"http {r.status_code}"
        key = str(status)
        outcomes[key] = outcomes.get(key, 0) + 1

    try:
        await run_concurrently(len(ids), concurrency, one)
    finally:
        await client.aclose()
    return t, outcomes


async def main_async(s: Stack, n: int, sample: int, concurrency: int) -> bool:
    hosts = s.platform.hosts
    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)

    started = time.perf_counter()
    orders = list(generate(s, n, run, now))
    generated = time.perf_counter() - started
    copied = await bulk_insert(s, orders)
    ids = [o.id for o in orders]
    del orders
    print(
        f"{n:,} LOCKED orders generated in {generated:.1f} s, copied into PostgreSQL in "
        f"{copied:.1f} s (orders + {2 * n:,} history rows)"
    )

    await asyncio.sleep(2.0)  # let the hosts' start-up settle before the baseline
    before = await hosts_rss(hosts)
    started = time.perf_counter()
    held = list(await asyncio.gather(*(h.activate_many(ids) for h in hosts)))
    activated = time.perf_counter() - started
    after = await hosts_rss(hosts)
    stats = list(await asyncio.gather(*(h.stats() for h in hosts)))

    total_held = sum(held)
    total_before, total_after = sum(before), sum(after)
    per_order = (total_after - total_before) / total_held if total_held else float("nan")
    print(
        f"\nactivate_many of all {n:,} ids sent to each of {len(hosts)} hosts: {activated:.1f} s "
        f"({n / activated:,.0f} orders/s)"
    )
    for i, (h, b, a) in enumerate(zip(held, before, after, strict=True)):
        print(
            f"  host {i}: holds {h:7,d} orders   RSS {b / MIB:7.1f} MiB → {a / MIB:7.1f} MiB "
            f"(+{(a - b) / MIB:.1f} MiB)"
        )
    print(f"orders held                  : {total_held:,} (of {n:,})")
    print(f"total host RSS, baseline     : {total_before / MIB:8.1f} MiB  (same hosts, none held)")
    print(f"total host RSS, holding      : {total_after / MIB:8.1f} MiB")
    print(f"bytes per held order         : {per_order:8.0f} B  ((after - before) / held)")
    print(f"ratio after / before         : {total_after / total_before:8.2f}")
    ok_mem = total_after <= TARGET_BYTES and total_held == n
    print(
        f"target ≤ 1 GiB total RSS holding {n:,}: {'MET' if ok_mem else 'NOT MET'} "
        f"({total_after / GIB:.3f} GiB)"
    )

    picked = random.Random(3).sample(ids, min(sample, len(ids)))
    reads, outcomes = await read_sample(s, picked, concurrency)
    again = list(await asyncio.gather(*(h.stats() for h in hosts)))
    print(
        f"\nlive check: {len(picked):,} random held orders read through the signed API, "
        f"concurrency {concurrency}"
    )
    print(reads.line())
    print(f"  answers: {outcomes}")
    active_then = [x["active_orders"] for x in stats]
    active_now = [x["active_orders"] for x in again]
    same = "unchanged: no read needed a new activation" if active_then == active_now else "CHANGED"
    print(f"  activations per host before/after the reads: {active_then} → {active_now} ({same})")
    ok_live = outcomes == {"LOCKED": len(picked)}
    print(f"  every one LOCKED: {'yes' if ok_live else 'NO'}")

    single, traced = python_level_size(s, 10_000)
    print("\ncross-check, one plain OrderActor + Order (LOCKED, two history rows) in this process:")
    print(f"  recursive sys.getsizeof : {single:6,d} B")
    print(f"  tracemalloc over 10,000 : {traced:8,.0f} B each (with the dict slot that holds it)")
    print(
        f"  → {n:,} would take {traced * n / MIB:.0f} MiB of Python objects; the hosts measured "
        f"{per_order * n / MIB:.0f} MiB of RSS for them"
    )
    return ok_mem and ok_live


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--orders", type=int, default=100_000)
    p.add_argument("--sample", type=int, default=1_000)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    with stack(order_hosts=2, settings_overrides={"order_idle_seconds": 3600}) as s:
        ok = asyncio.run(main_async(s, args.orders, args.sample, args.concurrency))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
