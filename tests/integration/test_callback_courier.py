"""The callback courier (actors/callbacks.py) against real HTTP receivers on 127.0.0.1 and a
real outbox (SQLite and PostgreSQL), its rows written by real order moves.

- a receiver that trickles its answer and 600 poison callbacks of one distributor do not delay
  another distributor's callbacks by more than two rounds;
- every kind of failure (a URL httpx cannot even send, a refused address, no DNS answer, a
  refused connection, a 5xx, a redirect, an answer slower than the deadline) is rescheduled
  with backoff and recorded in one short line;
- a message is dead after the configured attempts, or age, and can be sent again;
- an order's messages go in order, a later one waiting while an earlier one fails;
- two couriers with two shards deliver disjoint sets that make up the whole;
- the due query gives each distributor its share (rows without a distributor as one).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.callbacks import CallbackCourier
from actors.config import OrderHostSettings
from domain.callbacks import courier_shard
from domain.order import IssuedTicket, Order
from domain.partitions import PARTITIONS
from domain.signing import ed25519_public_key_b64
from persistence.orders import OrderRepository
from persistence.tables import outbox
from persistence.work import WorkRepository
from tests.integration.test_persistence import make_distributor, make_supplier, new_order
from tests.support.callbacks import CallbackReceiver
from tests.support.services import free_port

SEED = bytes(range(32, 64))
SEED_B64 = base64.b64encode(SEED).decode()
PLATFORM_KEY = ed25519_public_key_b64(Ed25519PrivateKey.from_private_bytes(SEED))
LOCAL = ("127.0.0.0/8",)  # the receivers of these tests


def settings(**overrides: Any) -> OrderHostSettings:
    values: dict[str, Any] = {
        "platform_seed_b64": SEED_B64,
        "callback_deadline_seconds": 1.0,
        "callback_allowed_networks": LOCAL,
        **overrides,
    }
    return OrderHostSettings(**values)


# -- receivers ---------------------------------------------------------------------------------


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 answering every POST by `mode`: "ok" (204), "fail"
    (500), "redirect" (302 to `redirect_to`) or "trickle" (200 headers, then a byte every
    0.5 s of a body that never ends)."""

    mode: str
    redirect_to: str = ""
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    hits: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        body = await request.read()
        if self.mode == "ok":
            self.arrivals.append((time.monotonic(), json.loads(body)))
            return web.Response(status=204)
        if self.mode == "fail":
            return web.Response(status=500, text="no")
        if self.mode == "redirect":
            raise web.HTTPFound(self.redirect_to)
        resp = web.StreamResponse(status=200)
        resp.content_length = 1_000_000
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b"x")
                await asyncio.sleep(0.5)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return resp

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    started: list[Receiver] = []

    async def start(mode: str, **kw: Any) -> Receiver:
        r = await Receiver(mode, **kw).start()
        started.append(r)
        return r

    yield start
    for r in started:
        await r.stop()


# -- orders whose moves write the outbox ------------------------------------------------------


class Orders:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.repo = OrderRepository(engine)
        self.n = 0

    async def locked(
        self, distributor_id: str, supplier_id: str, url: str, at: datetime | None = None
    ) -> Order:
        """A new order, saved, then locked: its LOCKED callback is written by the move."""
        at = at or datetime.now(UTC)
        self.n += 1
        order = new_order(distributor_id, supplier_id, f"D-{self.n}", at, callback_url=url)
        assert await self.repo.insert_new(order)
        order.mark_locked(at, f"L-{self.n}", at + timedelta(minutes=15))
        await self.repo.save(order)
        return order

    async def fixed(self, order: Order) -> None:
        """Two more moves: FIXING, then FIXED (two more callbacks)."""
        order.start_fixing(datetime.now(UTC))
        await self.repo.save(order)
        order.mark_fixed(datetime.now(UTC), (IssuedTicket("C-1", "A-1"),))
        await self.repo.save(order)


@pytest.fixture
async def parties(engine: AsyncEngine) -> tuple[Orders, str, str, str]:
    now = datetime.now(UTC)
    sup = await make_supplier(engine, now)
    poisoner = await make_distributor(engine, now, "poisoner")
    good = await make_distributor(engine, now, "good")
    return Orders(engine), sup, poisoner, good


async def rows(engine: AsyncEngine, *where: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        found = await conn.execute(select(outbox).where(*where).order_by(outbox.c.id))
        return [dict(r._mapping) for r in found.all()]


async def one_round(courier: CallbackCourier) -> int:
    delivered = await courier.deliver_due()
    await courier.drain()
    return delivered


# -- no one can stall it -----------------------------------------------------------------------


async def test_a_tarpit_and_600_poison_callbacks_do_not_delay_another_distributor(
    engine: AsyncEngine,
    parties: tuple[Orders, str, str, str],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    orders, sup, poisoner, good = parties
    tarpit = await receivers("trickle")
    failing = await receivers("fail")
    fine = await receivers("ok")
    # The poisoner's 600: to a receiver that trickles its answer (each holds a delivery for
    # the whole deadline), to a URL httpx cannot even send (an invalid port), and to a
    # receiver that always answers 500; retried almost at once, so they are always due.
    kinds = [tarpit.url + "/slow", "http://a.com:abc/", failing.url + "/cb"]
    for i in range(600):
        await orders.locked(poisoner, sup, kinds[i % 3])
    assert len(await rows(engine, outbox.c.distributor_id == poisoner)) == 600

    per_distributor, batch = 10, 100
    courier = CallbackCourier(
        WorkRepository(engine),
        settings(callback_per_distributor=per_distributor),
        base_backoff_s=0.01,
        batch=batch,  # a round takes at most 100 messages, and 100 orders are in flight
        round_wait_s=0.2,
    )
    interval = 0.25
    rounds: list[float] = []
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            rounds.append(time.monotonic())
            await courier.deliver_due()
            assert courier.in_flight <= 2 * per_distributor
            await asyncio.sleep(interval)

    loop_task = asyncio.create_task(run())
    try:
        await asyncio.sleep(1.0)  # the poisoner's backlog is met first
        sent: dict[str, float] = {}
        for _ in range(12):
            order = await orders.locked(good, sup, fine.url + "/hooks")
            sent[order.id] = time.monotonic()
            await asyncio.sleep(0.3)
        deadline = time.monotonic() + 10
        while len(fine.arrivals) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await loop_task
        await courier.aclose()

    arrived = {body["order_id"]: at for at, body in fine.arrivals}
    assert set(arrived) == set(sent)
    delays = [arrived[o] - t for o, t in sent.items()]
    # Rounds that began after the save and up to the arrival: at most two.
    waited = [sum(1 for r in rounds if t < r <= arrived[o]) for o, t in sent.items()]
    round_s = interval + 0.2  # the sleep between rounds and the round's own wait, at most
    print(
        f"good distributor: delay max {max(delays):.3f} s, mean {sum(delays) / len(delays):.3f}"
        f" s, rounds waited max {max(waited)} (a round is at most {round_s} s + its query)"
    )
    assert max(waited) <= 2, waited
    assert max(delays) <= 2 * round_s + 0.5, delays

    # Meanwhile the poisoner's messages were tried and failed, each rescheduled (or dead),
    # none delivered; the tarpit's ones failed on the deadline.
    mine = await rows(engine, outbox.c.distributor_id == poisoner)
    tried = [r for r in mine if r["attempts"] > 0]
    assert len(tried) >= 3 * per_distributor
    assert {r["status"] for r in mine} <= {"pending", "dead"}
    assert all(r["last_error"] for r in tried)
    errors = {r["url"]: r["last_error"] for r in tried}
    assert errors == {
        kinds[0]: "no complete answer within 1 s",
        kinds[1]: "refused: has no valid port (a number from 1 to 65535)",
        kinds[2]: "HTTP 500",
    }
    assert tarpit.hits >= 1


# -- every failure is rescheduled -------------------------------------------------------------


async def test_every_kind_of_failure_is_rescheduled_with_backoff(
    engine: AsyncEngine,
    parties: tuple[Orders, str, str, str],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    orders, sup, dist, _ = parties
    fine = await receivers("ok")
    failing = await receivers("fail")
    redirecting = await receivers("redirect", redirect_to=fine.url + "/elsewhere")
    tarpit = await receivers("trickle")
    closed = free_port()  # nothing listens there

    async def resolve(host: str, port: int) -> list[str]:
        answers = {"metadata.test": ["169.254.169.254"], "mixed.test": ["127.0.0.1", "10.0.0.7"]}
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    cases = {
        "http://a.com:abc/": "refused: has no valid port (a number from 1 to 65535)",
        "http://xn--/": "refused: has an invalid host name 'xn--'",
        "http://10.0.0.1/cb": "refused: 10.0.0.1 is a private address",
        f"http://metadata.test:{fine.port}/": (
            "refused: metadata.test resolves to 169.254.169.254, a link-local address"
        ),
        f"http://mixed.test:{fine.port}/": (
            "refused: mixed.test resolves to 10.0.0.7, a private address"
        ),
        "http://nowhere.test/": "gaierror: [Errno -2] Name or service not known",
        f"http://127.0.0.1:{closed}/": "ConnectError: All connection attempts failed",
        failing.url + "/cb": "HTTP 500",
        redirecting.url + "/cb": "HTTP 302",
        tarpit.url + "/cb": "no complete answer within 1 s",
    }
    by_url = {url: (await orders.locked(dist, sup, url)).id for url in cases}
    base = 3.0  # well past a round (the tarpit's deadline is 1 s), even on a loaded machine
    courier = CallbackCourier(
        WorkRepository(engine), settings(), base_backoff_s=base, resolve=resolve
    )
    try:
        for attempt in (1, 2):
            started = datetime.now(UTC)
            assert await one_round(courier) == 0
            ended = datetime.now(UTC)
            found = {
                url: (await rows(engine, outbox.c.order_id == o))[0] for url, o in by_url.items()
            }
            for url, expected in cases.items():
                row = found[url]
                assert row["status"] == "pending"
                assert row["attempts"] == attempt
                assert row["last_error"] == expected, url
                assert "\n" not in row["last_error"]
                assert len(row["last_error"]) <= 300
                wait = timedelta(seconds=base * 2 ** (attempt - 1))
                assert started + wait <= row["next_attempt_at"] <= ended + wait, url
            # Nothing is tried again before its backoff has passed.
            assert await one_round(courier) == 0
            assert [r["attempts"] for r in await rows(engine)] == [attempt] * len(cases)
            latest = max(r["next_attempt_at"] for r in found.values())
            await asyncio.sleep((latest - datetime.now(UTC)).total_seconds() + 0.05)
    finally:
        await courier.aclose()
    assert fine.arrivals == []  # the redirect was not followed, no refused name was reached
    assert (redirecting.hits, failing.hits, tarpit.hits) == (2, 2, 2)


async def test_a_host_name_is_delivered_to_the_address_that_was_checked(
    engine: AsyncEngine,
    parties: tuple[Orders, str, str, str],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    """The guard is in the connection path: a name only the courier's resolver knows reaches
    the receiver when its address is allowed, and is refused when it is not."""
    orders, sup, dist, _ = parties
    fine = await receivers("ok")

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "receiver.test"
        return ["127.0.0.1"]

    order = await orders.locked(dist, sup, f"http://receiver.test:{fine.port}/cb")
    strict = CallbackCourier(
        WorkRepository(engine), settings(callback_allowed_networks=()), resolve=resolve
    )
    try:
        assert await one_round(strict) == 0
    finally:
        await strict.aclose()
    (row,) = await rows(engine, outbox.c.order_id == order.id)
    assert row["last_error"] == "refused: receiver.test resolves to 127.0.0.1, a loopback address"
    await engine_update(engine, order.id, next_attempt_at=datetime.now(UTC))
    allowing = CallbackCourier(WorkRepository(engine), settings(), resolve=resolve)
    try:
        assert await one_round(allowing) == 1
    finally:
        await allowing.aclose()
    assert [b["order_id"] for _, b in fine.arrivals] == [order.id]


async def engine_update(engine: AsyncEngine, order_id: str, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(outbox).where(outbox.c.order_id == order_id).values(**values))


# -- dead letters ------------------------------------------------------------------------------


async def test_a_message_dies_after_its_attempts_or_its_age_and_can_be_sent_again(
    engine: AsyncEngine,
    parties: tuple[Orders, str, str, str],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    orders, sup, dist, _ = parties
    receiver = await receivers("fail")
    young = await orders.locked(dist, sup, receiver.url + "/young")
    old = await orders.locked(
        dist, sup, receiver.url + "/old", at=datetime.now(UTC) - timedelta(hours=25)
    )
    work = WorkRepository(engine)
    courier = CallbackCourier(work, settings(callback_max_attempts=3), base_backoff_s=0.01)
    try:
        await one_round(courier)
        (o,) = await rows(engine, outbox.c.order_id == old.id)
        assert (o["status"], o["attempts"], o["last_error"]) == ("dead", 1, "HTTP 500")
        assert o["dead_at"] is not None
        for _ in range(2):
            await asyncio.sleep(0.05)
            await one_round(courier)
        (y,) = await rows(engine, outbox.c.order_id == young.id)
        assert (y["status"], y["attempts"]) == ("dead", 3)
        assert y["dead_at"] is not None
        # Dead messages are not tried again.
        await asyncio.sleep(0.05)
        assert await work.due_callbacks(datetime.now(UTC) + timedelta(days=1)) == []
        await one_round(courier)
        assert receiver.hits == 4

        dead = await work.list_callbacks(status="dead")
        assert {d["order_id"] for d in dead} == {young.id, old.id}
        assert await work.redeliver_callback(y["id"], datetime.now(UTC)) is None
        assert await work.redeliver_callback(y["id"], datetime.now(UTC)) == "pending"
        assert await work.redeliver_callback(10**12, datetime.now(UTC)) == "missing"
        # Redelivered, the old one's age counts from now: failing again, it is not dead yet.
        assert await work.redeliver_callback(o["id"], datetime.now(UTC)) is None
        await engine_update(engine, young.id, next_attempt_at=datetime.now(UTC) + timedelta(1))
        await one_round(courier)
        (o,) = await rows(engine, outbox.c.order_id == old.id)
        assert (o["status"], o["attempts"], o["dead_at"]) == ("pending", 1, None)
        await engine_update(engine, young.id, next_attempt_at=datetime.now(UTC))
        await engine_update(engine, old.id, next_attempt_at=datetime.now(UTC) + timedelta(1))
        receiver.mode = "ok"
        assert await one_round(courier) == 1
        (y,) = await rows(engine, outbox.c.order_id == young.id)
        assert (y["status"], y["attempts"], y["dead_at"]) == ("delivered", 1, None)
        assert await work.redeliver_callback(y["id"], datetime.now(UTC)) == "delivered"
    finally:
        await courier.aclose()


# -- order, shards, shares ---------------------------------------------------------------------


async def test_an_orders_messages_go_in_order_a_later_one_waiting_for_a_failing_one(
    engine: AsyncEngine, parties: tuple[Orders, str, str, str]
) -> None:
    orders, sup, dist, _ = parties
    with CallbackReceiver(fail_first=2, platform_key_b64=PLATFORM_KEY) as receiver:
        order = await orders.locked(dist, sup, receiver.url + "/hooks?x=1")
        await orders.fixed(order)  # LOCKED, FIXING, FIXED are waiting
        work = WorkRepository(engine)
        courier = CallbackCourier(work, settings(), base_backoff_s=0.3)
        try:
            assert await one_round(courier) == 0  # LOCKED refused (503)
            # LOCKED backs off, and holds FIXING and FIXED back with it.
            assert await work.due_callbacks(datetime.now(UTC)) == []
            assert await one_round(courier) == 0
            deadline = time.monotonic() + 10
            while len(receiver.accepted) < 3 and time.monotonic() < deadline:
                await one_round(courier)
                await asyncio.sleep(0.1)
        finally:
            await courier.aclose()
    assert [m["status"] for m in receiver.accepted] == ["LOCKED", "FIXING", "FIXED"]
    assert (receiver.rejected, receiver.bad_signatures) == (2, 0)


async def test_two_couriers_with_two_shards_deliver_disjoint_sets(
    engine: AsyncEngine,
    parties: tuple[Orders, str, str, str],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    orders, sup, dist, good = parties
    fine = await receivers("ok")
    placed = [await orders.locked(d, sup, fine.url + "/cb") for d in [dist, good] * 20]
    stored = await rows(engine)
    assert {(r["order_id"], r["shard"], r["distributor_id"]) for r in stored} == {
        (o.id, courier_shard(o.id), o.distributor_id) for o in placed
    }
    assert len({r["shard"] % 2 for r in stored}) == 2  # both shards have work
    work = WorkRepository(engine)
    couriers = [CallbackCourier(work, settings(), shards=_half(i)) for i in (0, 1)]
    got: list[set[str]] = []
    try:
        for c in couriers:
            before = {b["order_id"] for _, b in fine.arrivals}
            await one_round(c)
            got.append({b["order_id"] for _, b in fine.arrivals} - before)
    finally:
        for c in couriers:
            await c.aclose()
    assert not got[0] & got[1]
    assert got[0] | got[1] == {o.id for o in placed}
    for i, ids in enumerate(got):
        assert all(courier_shard(o) % 2 == i for o in ids)


async def test_each_distributor_gets_its_share_of_a_round(
    engine: AsyncEngine, parties: tuple[Orders, str, str, str]
) -> None:
    orders, sup, many, few = parties
    url = "https://dist.example/cb"
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    backlog = [await orders.locked(many, sup, url, at=t0 + timedelta(seconds=i)) for i in range(30)]
    late = [
        await orders.locked(few, sup, url, at=t0 + timedelta(seconds=100 + i)) for i in range(3)
    ]
    # Rows written before the outbox knew its distributors count as one more distributor.
    legacy = [
        await orders.locked(many, sup, url, at=t0 + timedelta(seconds=200 + i)) for i in range(8)
    ]
    for o in legacy:
        await engine_update(engine, o.id, distributor_id=None)
    for o in backlog[:2]:
        await orders.fixed(o)  # an order's later messages come with it, in order
    work = WorkRepository(engine)
    due = await work.due_callbacks(datetime.now(UTC), per_distributor=5, limit=100)
    taken = list(dict.fromkeys(m.order_id for m in due))
    assert taken == [o.id for o in backlog[:5] + late + legacy[:5]]  # by due time
    first = [m for m in due if m.order_id == backlog[0].id]
    assert [json.loads(m.body)["status"] for m in first] == ["LOCKED", "FIXING", "FIXED"]
    # The limit cuts the round, never the order of an order's messages.
    assert [m.order_id for m in await work.due_callbacks(datetime.now(UTC), limit=2)] == [
        backlog[0].id,
        backlog[0].id,
    ]


async def test_two_couriers_of_one_shard_at_once_send_each_message_once(
    engine: AsyncEngine,
    parties: tuple[Orders, str, str, str],
    receivers: Callable[..., Awaitable[Receiver]],
) -> None:
    """Rounds that overlap (a courier restarted while the old one still sends, or an ops
    `deliver_callbacks_now` beside the loop) take each message by a lease before sending it:
    every message arrives exactly once, and an order's in order."""
    orders, sup, dist, good = parties
    fine = await receivers("ok")
    placed = [await orders.locked(d, sup, fine.url + "/cb") for d in [dist, good] * 15]
    for o in placed[:10]:
        await orders.fixed(o)  # two more messages each: LOCKED, FIXING, FIXED
    work = WorkRepository(engine)
    couriers = [CallbackCourier(work, settings()) for _ in range(3)]
    try:
        for _ in range(4):
            await asyncio.gather(*(one_round(c) for c in couriers))
    finally:
        for c in couriers:
            await c.aclose()
    sent = [(b["order_id"], b["status"]) for _, b in fine.arrivals]
    assert len(sent) == len(set(sent)) == 30 + 2 * 10  # each message once
    for o in placed[:10]:
        assert [s for oid, s in sent if oid == o.id] == ["LOCKED", "FIXING", "FIXED"]
    assert {r["status"] for r in await rows(engine)} == {"delivered"}


def _half(i: int) -> Callable[[], frozenset[int]]:
    """Courier shards of one of two order hosts (half the partitions each)."""
    shards = frozenset(p for p in range(PARTITIONS) if p % 2 == i)
    return lambda: shards
