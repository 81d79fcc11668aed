"""Redis-backed nonces, rate limits and hot stock, with in-process twins for the embedded default.

The gate: one round trip per signed request, one script call per burst
    ``RedisGate.admit`` counts a rate hit and, if it is allowed, claims the nonce, in one Lua
    script; checks queued while a call is in flight go together in the next call (up to 128),
    which Redis runs in queue order, atomically, as if each were its own script. A refused hit
    spends no nonce. Every Redis error is raised as ``GateUnavailable`` (a
    ``NonceStoreUnavailable`` and a ``RateLimiterUnavailable``): nothing is admitted unless
    Redis said so (fail closed). The key layout assumes one Redis, not Redis Cluster (a batch's
    keys would span slots).

Nonces
    ``SET nonce:{key_id}:{nonce} 1 NX EX <ttl>``: the first claim of a nonce sets the key and
    wins; any later claim within the retention finds it and loses. Redis expires the key itself,
    so nothing needs purging.

Rate limits: a sliding-window log over the last second
    Each key keeps the instants of the hits it *allowed* during the trailing window
    ``(now - 1 s, now]``. A hit first forgets instants at or before ``now - 1 s``; it is allowed
    (and its instant recorded) when fewer than ``limit_per_s`` remain, refused otherwise. So any
    one-second span holds at most ``limit_per_s`` allowed hits, a burst of ``limit_per_s`` at once
    is fine, and refused hits cost the caller nothing (they are not recorded). A refusal's
    ``retry_after_s`` is the wait, rounded up to whole seconds and at least 1, until enough
    recorded instants leave the window for one more hit to fit.

    Instants are integer microseconds of the caller's ``now`` (injected, like every clock here),
    so both implementations compare exact integers and answer the same for the same sequence.
    ``RedisGate`` runs the algorithm in Lua over a
    sorted set (``rate:{key}``; the score is the instant, the member the check's unique token,
    which makes a resent batch count each hit once), so concurrent hits from
    any number of processes are serialised by Redis; the key expires two windows after its last
    allowed hit.
    Absolute instants travel to the script as decimal strings and the script only compares
    them, never prints them, since Lua would format large numbers with 14 significant digits.
    ``LocalRateLimiter`` keeps the same log per key in a sorted list, per process; its memory is
    bounded by forgetting idle keys (no recorded instant left in the window) and, past
    ``max_keys``, the least recently hit ones (which only makes the limiter more lenient).

Hot stock
    A cache, never the truth: ``RedisStockCache`` keeps ``stock:{session_id}`` as JSON with a
    millisecond expiry; a Redis error on ``get`` is a miss and on ``put`` is logged and dropped.
    ``LocalStockCache`` keeps a dict with expiry times, bounded by dropping the entry written
    longest ago.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import json
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from persistence.nonces import NonceStoreUnavailable
from persistence.redis_pipe import RedisPipe, RedisReplyError

__all__ = [
    "CachedStock",
    "GateUnavailable",
    "LocalRateLimiter",
    "LocalStockCache",
    "RateDecision",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisGate",
    "RedisStockCache",
    "StockCache",
    "Verdict",
    "redis_client",
]

log = logging.getLogger(__name__)

#: What a Redis call can fail with when the server is down, slow or refusing writes.
_REDIS_FAILURES: Final = (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)

WINDOW_US: Final = 1_000_000
_MICROS: Final = 1_000_000


# ----------------------------------------------------------------------------- client


def redis_client(
    url: str, *, timeout_s: float = 0.5, max_connections: int = 64
) -> redis.asyncio.Redis:
    """A client that notices an outage within about a second instead of hiding it.

    Connecting and each reply are bounded by ``timeout_s``. A command whose connection broke is
    retried once, after a few milliseconds: enough to replace a pooled connection that a server
    restart closed, too little to mask a server that is gone. A timeout is not retried, so a
    hung server costs one ``timeout_s`` per command, not several.
    """
    # A blocking pool: under a burst, callers wait (up to timeout_s) for a free connection
    # instead of failing; redis-py's default pool raises once 100 are in use.
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=15,
        retry=Retry(
            ExponentialBackoff(cap=0.05, base=0.01),
            retries=1,
            supported_errors=(redis.exceptions.ConnectionError,),
        ),
    )
    return redis.asyncio.Redis(connection_pool=pool)


# ----------------------------------------------------------------------------- rate limits


class RateLimiterUnavailable(Exception):
    """The shared rate limiter could not be reached."""


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after_s: int  # >= 1 when refused, 0 when allowed


class RateLimiter(Protocol):
    async def hit(self, key: str, limit_per_s: int, *, now: float) -> RateDecision:
        """Count one hit on ``key`` at ``now`` (Unix seconds) against ``limit_per_s``."""
        ...


def _micros(now: float) -> int:
    return round(now * _MICROS)


def _check_limit(limit_per_s: int) -> None:
    if limit_per_s < 1:
        raise ValueError("limit_per_s must be at least 1")


def _retry_after(wait_us: int) -> int:
    return max(1, -(-wait_us // _MICROS))


_GATE_LUA: Final = """
-- A batch of checks, each a nonce claim and then a sliding-window rate hit, in order. The
-- nonce comes first so that a replayed request spends nobody's rate budget; a request the
-- limit refuses gives its nonce back, so the client may send it again as it is.
-- KEYS, in pairs per check: the rate key (a sorted set of allowed instants, integer
--   microseconds) and the nonce key; '' for either means "no such check".
-- ARGV[1]: the window in microseconds; ARGV[2]: the rate key's expiry in milliseconds;
-- then five per check: now and now - window (decimal strings, compared, never printed),
--   the limit, the nonce's expiry in seconds, and the check's unique token.
-- The token is the check's member in the rate set and the nonce key's value, so running the
-- same batch twice (a client resending it after a lost reply) answers the same and counts
-- each hit once.
-- Returns two numbers per check: 1 admitted / 0 rate-limited / 2 nonce already used; and the
-- seconds to wait when rate-limited.
local window = tonumber(ARGV[1])
local out = {}
for i = 0, #KEYS / 2 - 1 do
  local rkey, nkey = KEYS[2 * i + 1], KEYS[2 * i + 2]
  local now, since = ARGV[3 + 5 * i], ARGV[4 + 5 * i]
  local limit = tonumber(ARGV[5 + 5 * i])
  local token = ARGV[7 + 5 * i]
  local code, wait = 1, 0
  local claimed = false
  if nkey ~= '' then
    if redis.call('SET', nkey, token, 'NX', 'EX', ARGV[6 + 5 * i]) then
      claimed = true
    elseif redis.call('GET', nkey) ~= token then
      code = 2
    end
  end
  if code == 1 and rkey ~= '' then
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', since)
    if not redis.call('ZSCORE', rkey, token) then
      local count = redis.call('ZCARD', rkey)
      if count < limit then
        redis.call('ZADD', rkey, now, token)
        redis.call('PEXPIRE', rkey, ARGV[2])
      else
        -- Refused: wait until the instant at (count - limit) leaves the window.
        local entry = redis.call('ZRANGE', rkey, count - limit, count - limit, 'WITHSCORES')
        wait = math.ceil((tonumber(entry[2]) + window - tonumber(now)) / 1000000)
        if wait < 1 then
          wait = 1
        end
        code = 0
        if claimed then
          redis.call('DEL', nkey)
        end
      end
    end
  end
  out[2 * i + 1] = code
  out[2 * i + 2] = wait
end
return out
"""
_GATE_SHA: Final = hashlib.sha1(_GATE_LUA.encode(), usedforsecurity=False).hexdigest()


class GateUnavailable(NonceStoreUnavailable, RateLimiterUnavailable):
    """Redis could not be asked; nothing may be admitted (fail closed). Reported as the nonce
    store being unavailable: the nonce is the check a request can never skip."""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool  # within the rate limit (always True when no limit was asked)
    retry_after_s: int  # >= 1 when refused, 0 when allowed
    nonce_fresh: bool  # the nonce was claimed now (False when refused or already used)


@dataclass(frozen=True, slots=True)
class _Check:
    rate_key: str
    nonce_key: str
    args: tuple[str, str, str, str, str]
    reply: asyncio.Future[Verdict]


class RedisGate:
    """Rate limit and nonce of a signed request in one Redis round trip, and the checks of
    concurrent requests in one script call.

    Each check waits in a queue; one sender at a time takes everything queued (up to
    ``max_batch``) and runs it as one EVALSHA, so under load a request costs a share of a round
    trip instead of two round trips, and an idle gate adds no delay. The script runs the checks
    in queue order, atomically, exactly as if each had been a script of its own.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        rate_prefix: str = "rate:",
        nonce_prefix: str = "nonce:",
        max_batch: int = 128,
    ) -> None:
        self._rate_prefix = rate_prefix
        self._nonce_prefix = nonce_prefix
        self._max_batch = max_batch
        # register_script sends EVALSHA and falls back to EVAL when Redis lost the script;
        # over plain TCP the pipe does the same for much less CPU (persistence/redis_pipe.py).
        self._script = client.register_script(_GATE_LUA)
        self._pipe = RedisPipe.from_client(client)
        self._queue: list[_Check] = []
        self._sender: asyncio.Task[None] | None = None
        # Unique per check across processes: this gate's random prefix and a counter.
        self._token_prefix = uuid.uuid4().hex[:12]
        self._tokens = itertools.count()

    async def admit(
        self,
        key: str,
        nonce: str | None,
        limit_per_s: int | None,
        *,
        now: float,
        nonce_ttl: timedelta = timedelta(seconds=1),
        rate_key: str | None = None,
    ) -> Verdict:
        """Claim ``nonce`` for ``key`` (None: no nonce), then, if it was fresh, count a hit on
        ``rate_key`` (default ``key``) against ``limit_per_s`` (None: no rate check); a hit the
        limit refuses gives the nonce back."""
        if limit_per_s is not None:
            _check_limit(limit_per_s)
        if nonce is not None and ":" in nonce:
            # The last colon separates key id and nonce; a colon in the nonce could collide.
            raise ValueError("a nonce cannot contain ':'")
        now_us = _micros(now)
        ttl_s = max(1, math.ceil(nonce_ttl.total_seconds()))
        loop = asyncio.get_running_loop()
        check = _Check(
            self._rate_prefix + (rate_key or key) if limit_per_s is not None else "",
            f"{self._nonce_prefix}{key}:{nonce}" if nonce is not None else "",
            (
                str(now_us),
                str(now_us - WINDOW_US),
                str(limit_per_s or 0),
                str(ttl_s),
                f"{self._token_prefix}.{next(self._tokens)}",
            ),
            loop.create_future(),
        )
        self._queue.append(check)
        sender = self._sender
        if sender is None or sender.done() or sender.get_loop() is not loop:
            # (A sender of a loop that has gone away would never run again.)
            self._queue = [c for c in self._queue if c.reply.get_loop() is loop]
            self._sender = loop.create_task(self._send())
        return await check.reply

    async def _send(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            keys: list[str] = []
            args: list[str] = [str(WINDOW_US), str(2 * WINDOW_US // 1000)]
            for check in batch:
                keys += (check.rate_key, check.nonce_key)
                args += check.args
            try:
                reply: Any = await self._run(keys, args)
                verdicts = [
                    Verdict(code != 0, int(reply[2 * i + 1]), code == 1 and check.nonce_key != "")
                    for i, check in enumerate(batch)
                    for code in (int(reply[2 * i]),)
                ]
            except (*_REDIS_FAILURES, ValueError, TypeError, IndexError) as exc:
                for check in batch:
                    if not check.reply.done():
                        check.reply.set_exception(GateUnavailable(f"redis: {exc!r}"))
                continue
            except BaseException as exc:  # cancelled: nobody may wait forever
                for check in batch + self._queue:
                    if not check.reply.done():
                        check.reply.set_exception(GateUnavailable(f"redis: {exc!r}"))
                self._queue.clear()
                raise
            for check, verdict in zip(batch, verdicts, strict=True):
                if not check.reply.done():  # the caller may have been cancelled meanwhile
                    check.reply.set_result(verdict)

    async def _run(self, keys: list[str], args: list[str]) -> Any:
        if self._pipe is None:
            return await self._script(keys=keys, args=args)
        try:
            return await self._evaluate(self._pipe, keys, args)
        except ConnectionError:
            # Once more, a few milliseconds later, as redis_client retries: enough to replace a
            # connection a server restart closed. A resent batch counts each check once (its
            # tokens), and a timeout is not retried.
            await asyncio.sleep(0.01)
            return await self._evaluate(self._pipe, keys, args)

    @staticmethod
    async def _evaluate(pipe: RedisPipe, keys: list[str], args: list[str]) -> Any:
        try:
            return await pipe.call("EVALSHA", _GATE_SHA, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await pipe.call("EVAL", _GATE_LUA, len(keys), *keys, *args)

    def close(self) -> None:
        """Close the gate's own connection (the client's are the client's to close)."""
        if self._pipe is not None:
            self._pipe.close()


class LocalRateLimiter:
    """The same sliding-window log in this process's memory: the embedded default."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        # Least recently hit first; each value sorted ascending.
        self._logs: OrderedDict[str, list[int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many keys are held now."""
        return len(self._logs)

    async def hit(self, key: str, limit_per_s: int, *, now: float) -> RateDecision:
        _check_limit(limit_per_s)
        now_us = _micros(now)
        with self._lock:
            self._forget_idle(now_us)
            instants = self._logs.get(key)
            if instants is None:
                instants = self._logs[key] = []
                while len(self._logs) > self._max_keys:
                    self._logs.popitem(last=False)
            else:
                self._logs.move_to_end(key)
            del instants[: bisect.bisect_right(instants, now_us - WINDOW_US)]
            count = len(instants)
            if count < limit_per_s:
                bisect.insort(instants, now_us)
                return RateDecision(allowed=True, retry_after_s=0)
            wait_us = instants[count - limit_per_s] + WINDOW_US - now_us
            return RateDecision(allowed=False, retry_after_s=_retry_after(wait_us))

    def _forget_idle(self, now_us: int) -> None:
        # Keys are ordered by their last hit, so idle ones gather at the front: stop at the
        # first key still in use, which keeps the sweep amortised O(1) per hit.
        cutoff = now_us - WINDOW_US
        while self._logs:
            key, instants = next(iter(self._logs.items()))
            if instants and instants[-1] > cutoff:
                return
            del self._logs[key]


# ----------------------------------------------------------------------------- hot stock


@dataclass(frozen=True, slots=True)
class CachedStock:
    tiers: tuple[tuple[str, int], ...]  # (tier_id, available)
    as_of: datetime  # tz-aware UTC

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None or self.as_of.utcoffset() is None:
            raise ValueError("as_of must be timezone-aware")
        if self.as_of.utcoffset() != timedelta(0):
            object.__setattr__(self, "as_of", self.as_of.astimezone(UTC))

    def to_json(self) -> str:
        return json.dumps(
            {"tiers": [[tier, n] for tier, n in self.tiers], "as_of": self.as_of.isoformat()},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachedStock:
        data = json.loads(raw)
        tiers = tuple((str(tier), int(n)) for tier, n in data["tiers"])
        return cls(tiers=tiers, as_of=datetime.fromisoformat(data["as_of"]))


class StockCache(Protocol):
    async def get(self, session_id: str) -> CachedStock | None: ...

    async def put(self, session_id: str, stock: CachedStock, ttl_s: float) -> None: ...


def _ttl_ms(ttl_s: float) -> int:
    return max(1, math.ceil(ttl_s * 1000))


class RedisStockCache:
    """Hot stock shared by every replica; a Redis outage only makes it miss."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = "stock:") -> None:
        self._client = client
        self._prefix = prefix

    async def get(self, session_id: str) -> CachedStock | None:
        try:
            raw: bytes | str | None = await self._client.get(self._prefix + session_id)
        except _REDIS_FAILURES as exc:
            log.warning("stock cache get failed for %s: %s", session_id, exc)
            return None
        if raw is None:
            return None
        try:
            return CachedStock.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("stock cache entry for %s unreadable: %s", session_id, exc)
            return None

    async def put(self, session_id: str, stock: CachedStock, ttl_s: float) -> None:
        try:
            await self._client.set(self._prefix + session_id, stock.to_json(), px=_ttl_ms(ttl_s))
        except _REDIS_FAILURES as exc:
            log.warning("stock cache put failed for %s: %s", session_id, exc)


class LocalStockCache:
    """Hot stock in this process: a bounded dict of (expires at, stock)."""

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedStock]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, session_id: str) -> CachedStock | None:
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        expires_at, stock = entry
        if self._clock() >= expires_at:
            del self._entries[session_id]
            return None
        return stock

    async def put(self, session_id: str, stock: CachedStock, ttl_s: float) -> None:
        now = self._clock()
        self._entries.pop(session_id, None)
        self._entries[session_id] = (now + _ttl_ms(ttl_s) / 1000, stock)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)  # the one written longest ago
