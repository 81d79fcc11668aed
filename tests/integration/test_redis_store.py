"""Nonces, rate limits and hot stock against a real redis-server, and their in-process twins.

The module starts its own throw-away Redis and stops it at the end; the outage tests stop and
restart it (losing its data), so every test uses keys of its own.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import redis.asyncio
import uvloop

from persistence.nonces import NonceStoreUnavailable
from persistence.redis_pipe import RedisPipe, RedisReplyError
from persistence.redis_store import (
    CachedStock,
    GateUnavailable,
    LocalRateLimiter,
    LocalStockCache,
    RateDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RedisGate,
    RedisStockCache,
    StockCache,
    Verdict,
    redis_client,
)
from tests.support.services import RedisServer

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
T0 = 1_795_000_000.0  # Unix seconds, a fixed "now" for the rate limiters
TTL = timedelta(seconds=600)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def nonce() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    c = redis_client(redis_server.url)
    try:
        yield c
    finally:
        await c.aclose()


class GateNonces:
    """The gate asked for a nonce alone: the NonceStore protocol over Redis."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.gate = RedisGate(client)

    async def claim(self, key_id: str, nonce: str, *, now: datetime, ttl: timedelta) -> bool:
        verdict = await self.gate.admit(key_id, nonce, None, now=now.timestamp(), nonce_ttl=ttl)
        return verdict.nonce_fresh


class GateLimiter:
    """The gate asked for a rate hit alone: the RateLimiter protocol over Redis."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str) -> None:
        self.gate = RedisGate(client, rate_prefix=prefix)

    async def hit(self, key: str, limit_per_s: int, *, now: float) -> RateDecision:
        verdict = await self.gate.admit(key, None, limit_per_s, now=now)
        return RateDecision(verdict.allowed, verdict.retry_after_s)


@pytest.fixture
def nonces(client: redis.asyncio.Redis) -> GateNonces:
    return GateNonces(client)


@pytest.fixture(params=["redis", "local"])
def limiter(request: pytest.FixtureRequest, client: redis.asyncio.Redis) -> RateLimiter:
    if request.param == "redis":
        return GateLimiter(client, prefix=unique("rate") + ":")
    return LocalRateLimiter()


@pytest.fixture(params=["redis", "local"])
def stock_cache(request: pytest.FixtureRequest, client: redis.asyncio.Redis) -> StockCache:
    if request.param == "redis":
        return RedisStockCache(client, prefix=unique("stock") + ":")
    return LocalStockCache()


def stock(*tiers: tuple[str, int]) -> CachedStock:
    return CachedStock(tiers=tiers, as_of=NOW)


async def hits(limiter: RateLimiter, key: str, limit: int, times: list[float]) -> list[bool]:
    return [(await limiter.hit(key, limit, now=t)).allowed for t in times]


def a_silent_port() -> socket.socket:
    """A listening socket that never answers: connections succeed, replies never come."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


# ----------------------------------------------------------------------------- client


async def test_client_answers_and_has_short_timeouts(client: redis.asyncio.Redis) -> None:
    assert await client.ping() is True
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] <= 1
    assert kwargs["socket_connect_timeout"] <= 1
    assert kwargs["health_check_interval"] > 0


# ----------------------------------------------------------------------------- nonces


async def test_nonce_claimed_once(nonces: GateNonces) -> None:
    n = nonce()
    assert await nonces.claim("key_a", n, now=NOW, ttl=TTL) is True
    assert await nonces.claim("key_a", n, now=NOW, ttl=TTL) is False
    assert await nonces.claim("key_a", n, now=NOW + timedelta(seconds=5), ttl=TTL) is False


async def test_nonces_are_per_key(nonces: GateNonces) -> None:
    key_a, key_b, n1, n2 = unique("key"), unique("key"), nonce(), nonce()
    assert await nonces.claim(key_a, n1, now=NOW, ttl=TTL) is True
    assert await nonces.claim(key_b, n1, now=NOW, ttl=TTL) is True
    assert await nonces.claim(key_a, n2, now=NOW, ttl=TTL) is True
    assert await nonces.claim(key_b, n1, now=NOW, ttl=TTL) is False


async def test_nonce_key_layout_and_expiry(nonces: GateNonces, client: redis.asyncio.Redis) -> None:
    key_id, n = unique("key"), nonce()
    assert await nonces.claim(key_id, n, now=NOW, ttl=timedelta(seconds=90)) is True
    assert await client.exists(f"nonce:{key_id}:{n}") == 1
    assert 85 <= await client.ttl(f"nonce:{key_id}:{n}") <= 90


async def test_sub_second_ttl_is_kept_at_least_a_second(
    nonces: GateNonces, client: redis.asyncio.Redis
) -> None:
    key_id, n = unique("key"), nonce()
    assert await nonces.claim(key_id, n, now=NOW, ttl=timedelta(milliseconds=10)) is True
    assert await client.ttl(f"nonce:{key_id}:{n}") == 1


async def test_nonce_ttl_honoured(nonces: GateNonces) -> None:
    key_id, n = unique("key"), nonce()
    ttl = timedelta(seconds=1)
    assert await nonces.claim(key_id, n, now=NOW, ttl=ttl) is True
    assert await nonces.claim(key_id, n, now=NOW, ttl=ttl) is False
    await asyncio.sleep(1.1)
    assert await nonces.claim(key_id, n, now=NOW + ttl, ttl=ttl) is True


async def test_concurrent_claims_of_one_nonce_exactly_one_wins(nonces: GateNonces) -> None:
    key_id, n = unique("key"), nonce()
    results = await asyncio.gather(*(nonces.claim(key_id, n, now=NOW, ttl=TTL) for _ in range(100)))
    assert results.count(True) == 1
    assert results.count(False) == 99


async def test_colon_in_nonce_refused(nonces: GateNonces) -> None:
    with pytest.raises(ValueError, match="':'"):
        await nonces.claim("key_a", "abc:def", now=NOW, ttl=TTL)


async def test_claim_fails_closed_while_redis_down_then_recovers(
    redis_server: RedisServer, nonces: GateNonces
) -> None:
    key_id = unique("key")
    assert await nonces.claim(key_id, nonce(), now=NOW, ttl=TTL) is True  # a pooled connection
    n = nonce()
    with redis_server.down():
        began = time.monotonic()
        with pytest.raises(NonceStoreUnavailable):
            await nonces.claim(key_id, n, now=NOW, ttl=TTL)
        with pytest.raises(NonceStoreUnavailable):
            await nonces.claim(key_id, n, now=NOW, ttl=TTL)
        assert time.monotonic() - began < 2
    # The same store and client, on new connections.
    assert await nonces.claim(key_id, n, now=NOW, ttl=TTL) is True
    assert await nonces.claim(key_id, n, now=NOW, ttl=TTL) is False


async def test_claim_fails_closed_when_redis_hangs() -> None:
    with a_silent_port() as silent:
        port = silent.getsockname()[1]
        c = redis_client(f"redis://127.0.0.1:{port}/0")
        try:
            began = time.monotonic()
            with pytest.raises(NonceStoreUnavailable):
                await GateNonces(c).claim("key_a", nonce(), now=NOW, ttl=TTL)
            assert time.monotonic() - began < 1.5  # one 0.5 s timeout, not retried
        finally:
            await c.aclose()


# ----------------------------------------------------------------------------- rate limits


async def test_burst_up_to_the_limit_then_refused(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("k", 5, now=T0 + i * 0.001) for i in range(20)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 15
    assert all(d.retry_after_s == 0 for d in decisions[:5])
    assert all(d.retry_after_s >= 1 for d in decisions[5:])
    assert decisions[5] == RateDecision(allowed=False, retry_after_s=1)


async def test_window_slides(limiter: RateLimiter) -> None:
    allowed_at = [T0 + i * 0.1 for i in range(5)]  # 5 allowed over 0.4 s
    assert await hits(limiter, "k", 5, allowed_at) == [True] * 5
    assert await hits(limiter, "k", 5, [T0 + 0.999]) == [False]
    # At T0 + 1.0 the first hit leaves the window: exactly one more fits.
    assert await hits(limiter, "k", 5, [T0 + 1.0, T0 + 1.0]) == [True, False]
    # A full second after the burst, all of it has left.
    later = [T0 + 1.5 + i * 0.001 for i in range(6)]
    assert await hits(limiter, "k", 5, later) == [True] * 4 + [False] * 2
    assert await hits(limiter, "k", 5, [T0 + 10.0] * 6) == [True] * 5 + [False]


async def test_refused_hits_are_not_counted(limiter: RateLimiter) -> None:
    assert await hits(limiter, "k", 2, [T0, T0]) == [True, True]
    assert await hits(limiter, "k", 2, [T0 + 0.1 * i for i in range(1, 10)]) == [False] * 9
    assert await hits(limiter, "k", 2, [T0 + 1.0, T0 + 1.0, T0 + 1.0]) == [True, True, False]


async def test_keys_are_independent(limiter: RateLimiter) -> None:
    assert await hits(limiter, "a", 1, [T0, T0]) == [True, False]
    assert await hits(limiter, "b", 1, [T0, T0]) == [True, False]
    assert await hits(limiter, "a", 3, [T0]) == [True]  # a higher limit fits two more
    assert await hits(limiter, "b", 1, [T0 + 0.5]) == [False]


async def test_lowered_limit_waits_for_enough_to_leave(limiter: RateLimiter) -> None:
    assert await hits(limiter, "k", 4, [T0, T0 + 0.2, T0 + 0.4, T0 + 0.6]) == [True] * 4
    refused = await limiter.hit("k", 2, now=T0 + 0.7)
    assert refused == RateDecision(allowed=False, retry_after_s=1)
    # Three of four must leave for one more to fit: the third does so at T0 + 1.4.
    assert await hits(limiter, "k", 2, [T0 + 1.3, T0 + 1.4, T0 + 1.4]) == [False, True, False]


async def test_concurrent_hits_allow_exactly_the_limit(limiter: RateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.hit("k", 10, now=T0) for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10
    assert all(d.retry_after_s >= 1 for d in decisions if not d.allowed)


async def test_limit_must_be_positive(limiter: RateLimiter) -> None:
    with pytest.raises(ValueError, match="limit_per_s"):
        await limiter.hit("k", 0, now=T0)


async def test_real_clock_allows_again_after_a_second(limiter: RateLimiter) -> None:
    assert await hits(limiter, "k", 3, [time.time() for _ in range(4)]) == [True] * 3 + [False]
    await asyncio.sleep(1.05)
    assert await hits(limiter, "k", 3, [time.time() for _ in range(4)]) == [True] * 3 + [False]


async def test_local_and_redis_answer_alike(client: redis.asyncio.Redis) -> None:
    rng = random.Random(20261125)
    sequence: list[tuple[str, int, float]] = []
    now = T0
    for _ in range(600):
        now += rng.choice([0.0, 0.0, 0.001, 0.01, 0.05, 0.2, 0.7, 1.0, 1.3])
        sequence.append((rng.choice("abc"), rng.choice([1, 2, 3, 5, 8]), now))
    remote = GateLimiter(client, prefix=unique("rate") + ":")
    local = LocalRateLimiter()
    remote_decisions = [await remote.hit(k, lim, now=t) for k, lim, t in sequence]
    local_decisions = [await local.hit(k, lim, now=t) for k, lim, t in sequence]
    assert remote_decisions == local_decisions
    allowed = sum(d.allowed for d in local_decisions)
    assert 0 < allowed < len(sequence)  # the sequence exercised both answers


async def test_redis_limiter_unavailable_while_down_then_recovers(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    limiter = GateLimiter(client, prefix=unique("rate") + ":")
    assert (await limiter.hit("k", 5, now=T0)).allowed
    with redis_server.down(), pytest.raises(RateLimiterUnavailable):
        await limiter.hit("k", 5, now=T0)
    # The restarted server has forgotten the script as well as the data: EVAL reloads it.
    assert await hits(limiter, "k", 2, [T0, T0, T0]) == [True, True, False]


async def test_redis_limiter_keys_expire(client: redis.asyncio.Redis) -> None:
    prefix = unique("rate") + ":"
    limiter = GateLimiter(client, prefix=prefix)
    await limiter.hit("k", 5, now=time.time())
    assert 0 < await client.pttl(prefix + "k") <= 2000


async def test_local_limiter_forgets_idle_keys() -> None:
    limiter = LocalRateLimiter()
    for key in "abc":
        await limiter.hit(key, 5, now=T0)
    assert len(limiter) == 3
    await limiter.hit("d", 5, now=T0 + 0.5)
    assert len(limiter) == 4
    await limiter.hit("d", 5, now=T0 + 1.2)
    assert len(limiter) == 1


async def test_local_limiter_is_bounded() -> None:
    limiter = LocalRateLimiter(max_keys=3)
    for i in range(10):
        await limiter.hit(f"k{i}", 5, now=T0)
        assert len(limiter) <= 3
    assert await hits(limiter, "k9", 1, [T0]) == [False]  # the recent keys are kept


# ----------------------------------------------------------------------------- the gate
# What a signed request asks: a rate hit and then a nonce claim, in one round trip.


@pytest.fixture(params=["pipe", "redis-py"])
def gate(request: pytest.FixtureRequest, client: redis.asyncio.Redis) -> Iterator[RedisGate]:
    """The gate on its own pipe (plain TCP), and through redis-py (as for TLS or a cluster)."""
    g = RedisGate(client, rate_prefix=unique("rate") + ":", nonce_prefix=unique("n") + ":")
    if request.param == "redis-py":
        g.close()
        g._pipe = None
    yield g
    g.close()


async def test_gate_admits_then_refuses_a_replayed_nonce(gate: RedisGate) -> None:
    n = nonce()
    assert await gate.admit("k", n, 5, now=T0, nonce_ttl=TTL) == Verdict(True, 0, True)
    assert await gate.admit("k", n, 5, now=T0 + 0.1, nonce_ttl=TTL) == Verdict(True, 0, False)
    assert await gate.admit("other", n, 5, now=T0 + 0.1, nonce_ttl=TTL) == Verdict(True, 0, True)


async def test_gate_rate_refusal_spends_no_nonce(gate: RedisGate) -> None:
    assert (await gate.admit("k", nonce(), 1, now=T0, nonce_ttl=TTL)).nonce_fresh
    n = nonce()
    assert await gate.admit("k", n, 1, now=T0 + 0.5, nonce_ttl=TTL) == Verdict(False, 1, False)
    # The same request, sent again once the window has moved on, is admitted.
    assert await gate.admit("k", n, 1, now=T0 + 1.0, nonce_ttl=TTL) == Verdict(True, 0, True)


async def test_gate_batches_concurrent_checks_and_answers_as_if_one_by_one(
    client: redis.asyncio.Redis,
) -> None:
    """400 concurrent checks (repeated nonces, two keys at a limit of 100) reach Redis in far
    fewer script calls than checks, and each gets the answer a one-at-a-time run would give.
    (A replayed nonce counts against no limit, so ~145 fresh checks a key meet a limit of
    100.)"""
    rng = random.Random(7)
    checks = [(rng.choice("ab"), f"n{rng.randrange(300)}") for _ in range(400)]
    prefix = unique("g")

    def fresh_gate(tag: str) -> RedisGate:
        return RedisGate(client, rate_prefix=f"{prefix}{tag}r:", nonce_prefix=f"{prefix}{tag}n:")

    one_by_one = fresh_gate("s")
    expected = [await one_by_one.admit(k, n, 100, now=T0, nonce_ttl=TTL) for k, n in checks]
    calls_before = await script_calls(client)
    batched = fresh_gate("c")
    got = await asyncio.gather(
        *(batched.admit(k, n, 100, now=T0, nonce_ttl=TTL) for k, n in checks)
    )
    calls = await script_calls(client) - calls_before
    assert list(got) == expected
    assert {v.allowed for v in got} == {True, False}
    assert {v.nonce_fresh for v in got} == {True, False}
    assert calls <= 10, calls  # 400 checks, in batches of up to 128


async def test_gate_answers_the_same_when_redis_runs_a_batch_twice(
    client: redis.asyncio.Redis,
) -> None:
    """The client resends a command whose reply was lost; the script may then have run once
    already. Each check carries a token, so the second run answers as the first and counts
    each hit once."""
    gate = RedisGate(client, rate_prefix=unique("rate") + ":", nonce_prefix=unique("n") + ":")
    real = gate._run

    async def reply_lost_then_resent(keys: list[str], args: list[str]) -> Any:
        await real(keys, args)  # ran, but its reply never arrived
        return await real(keys, args)

    gate._run = reply_lost_then_resent  # type: ignore[method-assign]
    replayed = nonce()
    assert (await gate.admit("k", replayed, 3, now=T0, nonce_ttl=TTL)).nonce_fresh
    verdicts = await asyncio.gather(
        gate.admit("k", nonce(), 3, now=T0, nonce_ttl=TTL),
        gate.admit("k", replayed, 3, now=T0, nonce_ttl=TTL),
        gate.admit("k", nonce(), 3, now=T0, nonce_ttl=TTL),
    )
    assert [v.nonce_fresh for v in verdicts] == [True, False, True]
    # The replay counted nothing; each fresh check counted once though its script ran twice:
    # 3 hits in the window, so the next check is the one over the limit.
    assert [v.allowed for v in verdicts] == [True, True, True]
    assert not (await gate.admit("k", nonce(), 3, now=T0, nonce_ttl=TTL)).allowed
    gate._run = real  # type: ignore[method-assign]
    assert await gate.admit("k", nonce(), 3, now=T0 + 1.0, nonce_ttl=TTL) == Verdict(True, 0, True)


async def script_calls(client: redis.asyncio.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def test_gate_fails_closed_while_redis_down(
    redis_server: RedisServer, gate: RedisGate
) -> None:
    assert (await gate.admit("k", nonce(), 5, now=time.time(), nonce_ttl=TTL)).nonce_fresh
    with redis_server.down():
        outcomes = await asyncio.gather(
            *(gate.admit("k", nonce(), 5, now=time.time(), nonce_ttl=TTL) for _ in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(o, GateUnavailable) for o in outcomes), outcomes
        assert all(isinstance(o, NonceStoreUnavailable) for o in outcomes)
    assert (await gate.admit("k", nonce(), 5, now=time.time(), nonce_ttl=TTL)).nonce_fresh


async def test_gate_survives_a_cancelled_caller(gate: RedisGate) -> None:
    waiting = [
        asyncio.ensure_future(gate.admit("k", nonce(), 100, now=T0, nonce_ttl=TTL))
        for _ in range(10)
    ]
    waiting[3].cancel()
    done = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert sum(isinstance(d, Verdict) and d.nonce_fresh for d in done) == 9
    assert (await gate.admit("k", nonce(), 100, now=T0, nonce_ttl=TTL)).nonce_fresh


async def test_gate_goes_through_the_pipe_and_reloads_a_flushed_script(
    client: redis.asyncio.Redis,
) -> None:
    """Over plain TCP the gate sends its script on its own pipe, not through redis-py: the
    pipe's one connection is the only new one. After Redis lost its scripts (SCRIPT FLUSH,
    as after a restart) the next check is answered: EVALSHA's NOSCRIPT, then EVAL."""
    gate = RedisGate(client, rate_prefix=unique("rate") + ":", nonce_prefix=unique("n") + ":")
    assert gate._pipe is not None
    await client.ping()
    before = int((await client.info("stats"))["total_connections_received"])
    assert (await gate.admit("k", nonce(), 5, now=T0, nonce_ttl=TTL)).nonce_fresh
    assert (await gate.admit("k", nonce(), 5, now=T0, nonce_ttl=TTL)).nonce_fresh
    assert int((await client.info("stats"))["total_connections_received"]) == before + 1
    await client.script_flush()
    calls = await script_calls(client)
    replayed = nonce()
    assert (await gate.admit("k", replayed, 5, now=T0, nonce_ttl=TTL)).nonce_fresh
    assert not (await gate.admit("k", replayed, 5, now=T0, nonce_ttl=TTL)).nonce_fresh
    assert await script_calls(client) == calls + 3  # EVALSHA refused, EVAL, then EVALSHA


async def test_pipe_matches_each_reply_to_its_command_under_concurrency(
    redis_server: RedisServer,
) -> None:
    """Hundreds of commands in flight on one connection, one of them cancelled and one an
    error reply: every other caller gets its own reply."""
    pipe = RedisPipe("127.0.0.1", redis_server.port, timeout_s=2.0)
    try:
        assert await pipe.call("PING") == b"PONG"  # connected: the calls below go at once
        calls = [asyncio.ensure_future(pipe.call("ECHO", f"m{i}")) for i in range(300)]
        bad = asyncio.ensure_future(pipe.call("NO-SUCH-COMMAND"))
        with pytest.raises(TypeError):
            await pipe.call("ECHO", None)  # type: ignore[arg-type]  # (nothing is queued)
        await asyncio.sleep(0)  # every command is written; their replies are on the way
        calls[7].cancel()
        replies = await asyncio.gather(*calls, return_exceptions=True)
        assert isinstance(replies[7], asyncio.CancelledError)
        assert all(replies[i] == f"m{i}".encode() for i in range(300) if i != 7)
        with pytest.raises(RedisReplyError, match="unknown command"):
            await bad
        assert await pipe.call("ECHO", "after") == b"after"
    finally:
        pipe.close()


async def test_pipe_logs_in_and_selects_the_urls_database(redis_server: RedisServer) -> None:
    """URLs with a password, or a user and a password, and a database: the gate's pipe logs
    in as the URL says and writes into that database; a wrong password fails closed."""
    admin = redis_client(redis_server.url)
    password, user = unique("pw"), unique("user")
    await admin.acl_setuser(
        user,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["*"],
        channels=["*"],
        commands=["+@all"],
    )
    await admin.config_set("requirepass", password)
    base = f"127.0.0.1:{redis_server.port}"
    try:
        for url in (f"redis://:{password}@{base}/3", f"redis://{user}:{password}@{base}/3"):
            c = redis_client(url)
            prefix = unique("n") + ":"
            gate = RedisGate(c, rate_prefix=unique("rate") + ":", nonce_prefix=prefix)
            try:
                n = nonce()
                assert (await gate.admit("k", n, 5, now=T0, nonce_ttl=TTL)).nonce_fresh
                assert await c.exists(f"{prefix}k:{n}") == 1  # in database 3
            finally:
                gate.close()
                await c.aclose()
        wrong = redis_client(f"redis://:nope@{base}/3")
        refused = RedisGate(wrong)
        try:
            with pytest.raises(GateUnavailable):
                await refused.admit("k", nonce(), 5, now=T0, nonce_ttl=TTL)
        finally:
            refused.close()
            await wrong.aclose()
    finally:
        authed = redis_client(f"redis://:{password}@{base}/0")
        await authed.config_set("requirepass", "")
        await authed.acl_deluser(user)
        await authed.aclose()
        await admin.aclose()


async def test_gate_sends_again_once_when_its_connection_breaks_under_a_call(
    client: redis.asyncio.Redis,
) -> None:
    """The pipe's connection is cut while a check waits on it (writes paused, then the
    connection killed): the gate sends the batch once more, on a new connection, and the
    check is answered once the pause ends, its nonce claimed once."""
    gate = RedisGate(client, rate_prefix=unique("rate") + ":", nonce_prefix=unique("n") + ":")
    try:
        assert (await gate.admit("k", nonce(), 5, now=T0, nonce_ttl=TTL)).nonce_fresh
        assert gate._pipe is not None
        pipe_id = str(await gate._pipe.call("CLIENT", "ID"))
        await client.client_pause(300, all=False)  # writes (the gate's script) wait
        n = nonce()
        waiting = asyncio.ensure_future(gate.admit("k", n, 5, now=T0, nonce_ttl=TTL))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert await client.client_kill_filter(_id=pipe_id) == 1
        verdict = await waiting
        assert verdict.allowed
        assert verdict.nonce_fresh
        assert not (await gate.admit("k", n, 5, now=T0, nonce_ttl=TTL)).nonce_fresh
        assert str(await gate._pipe.call("CLIENT", "ID")) != pipe_id  # a new connection
    finally:
        gate.close()


async def test_pipe_times_out_every_waiting_command_then_connects_anew() -> None:
    """A server that accepts and never answers: every command in flight fails after the
    timeout, together, and the next one makes a new connection."""
    with a_silent_port() as silent:
        pipe = RedisPipe("127.0.0.1", silent.getsockname()[1], timeout_s=0.3)
        try:
            began = time.monotonic()
            outcomes = await asyncio.gather(
                *(pipe.call("PING") for _ in range(5)), return_exceptions=True
            )
            assert all(isinstance(o, TimeoutError) for o in outcomes), outcomes
            assert time.monotonic() - began < 1.0
            first = pipe._connection
            with pytest.raises(TimeoutError):
                await pipe.call("PING")
            assert pipe._connection is not first
        finally:
            pipe.close()


def test_the_gate_and_its_pipe_run_on_uvloop(redis_server: RedisServer) -> None:
    """The platform's Ray processes run uvloop, whose transports are not asyncio's: the
    gate answers there, on one connection, for concurrent checks."""

    async def checks() -> tuple[list[Verdict], int]:
        c = redis_client(redis_server.url)
        gate = RedisGate(c, rate_prefix=unique("rate") + ":", nonce_prefix=unique("n") + ":")
        try:
            await c.ping()
            before = int((await c.info("stats"))["total_connections_received"])
            replayed = nonce()
            verdicts = await asyncio.gather(
                *(gate.admit("k", n, 100, now=T0, nonce_ttl=TTL) for n in (replayed, replayed)),
                *(gate.admit("k", nonce(), 100, now=T0, nonce_ttl=TTL) for _ in range(20)),
            )
            return verdicts, int((await c.info("stats"))["total_connections_received"]) - before
        finally:
            gate.close()
            await c.aclose()

    verdicts, connections = uvloop.run(checks())
    assert [v.nonce_fresh for v in verdicts[:2]] == [True, False]
    assert all(v.allowed and v.nonce_fresh for v in verdicts[2:])
    assert connections == 1


# ----------------------------------------------------------------------------- hot stock


async def test_stock_round_trip(stock_cache: StockCache) -> None:
    assert await stock_cache.get("ses_1") is None
    cached = stock(("tier_a", 12), ("tier_b", 0))
    await stock_cache.put("ses_1", cached, 30)
    assert await stock_cache.get("ses_1") == cached
    assert await stock_cache.get("ses_2") is None
    newer = CachedStock(tiers=(("tier_a", 11),), as_of=NOW + timedelta(seconds=1))
    await stock_cache.put("ses_1", newer, 30)
    got = await stock_cache.get("ses_1")
    assert got == newer
    assert got is not None
    assert got.as_of.utcoffset() == timedelta(0)


async def test_stock_expires(stock_cache: StockCache) -> None:
    await stock_cache.put("ses_1", stock(("tier_a", 1)), 0.1)
    await stock_cache.put("ses_2", stock(("tier_a", 2)), 30)
    assert await stock_cache.get("ses_1") is not None
    await asyncio.sleep(0.25)
    assert await stock_cache.get("ses_1") is None
    assert await stock_cache.get("ses_2") == stock(("tier_a", 2))


async def test_redis_stock_cache_misses_while_down(
    redis_server: RedisServer, client: redis.asyncio.Redis
) -> None:
    cache = RedisStockCache(client, prefix=unique("stock") + ":")
    await cache.put("ses_1", stock(("tier_a", 3)), 30)
    with redis_server.down():
        assert await cache.get("ses_1") is None
        await cache.put("ses_1", stock(("tier_a", 4)), 30)  # swallowed
    assert await cache.get("ses_1") is None  # the restart lost the data; no error either
    await cache.put("ses_1", stock(("tier_a", 5)), 30)
    assert await cache.get("ses_1") == stock(("tier_a", 5))


async def test_redis_stock_value_is_json_with_expiry(client: redis.asyncio.Redis) -> None:
    prefix = unique("stock") + ":"
    cache = RedisStockCache(client, prefix=prefix)
    await cache.put("ses_1", stock(("tier_a", 7)), 2.5)
    assert await client.get(prefix + "ses_1") == (
        b'{"tiers":[["tier_a",7]],"as_of":"2026-11-25T02:00:00+00:00"}'
    )
    assert 2000 < await client.pttl(prefix + "ses_1") <= 2500


async def test_unreadable_redis_stock_is_a_miss(client: redis.asyncio.Redis) -> None:
    prefix = unique("stock") + ":"
    await client.set(prefix + "ses_1", b"not json")
    assert await RedisStockCache(client, prefix=prefix).get("ses_1") is None


async def test_local_stock_cache_is_bounded() -> None:
    cache = LocalStockCache(max_entries=2)
    for i in range(5):
        await cache.put(f"ses_{i}", stock(("tier_a", i)), 30)
        assert len(cache) <= 2
    assert await cache.get("ses_0") is None
    assert await cache.get("ses_4") == stock(("tier_a", 4))


async def test_local_stock_cache_uses_the_injected_clock() -> None:
    clock = [100.0]
    cache = LocalStockCache(clock=lambda: clock[0])
    await cache.put("ses_1", stock(("tier_a", 1)), 5)
    clock[0] = 104.9
    assert await cache.get("ses_1") is not None
    clock[0] = 105.0
    assert await cache.get("ses_1") is None
    assert len(cache) == 0


def test_cached_stock_as_of_is_utc() -> None:
    cst = timezone(timedelta(hours=8))
    moved = CachedStock(tiers=(), as_of=datetime(2026, 11, 25, 10, 0, tzinfo=cst))
    assert moved.as_of == NOW
    assert moved.as_of.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        CachedStock(tiers=(), as_of=datetime(2026, 11, 25, 2, 0))
