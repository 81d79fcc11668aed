"""The signature check of docs/signing.md, in its order, each failure with its own code."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from domain.signing import (
    SignatureError,
    check_timestamp,
    parse_signed_headers,
    string_to_sign,
    verify_signature,
)
from persistence.accounts import AccountRepository, KeyRecord
from persistence.nonces import NonceStoreUnavailable
from persistence.redis_store import RateLimiter, RateLimiterUnavailable, Verdict


class NonceStore(Protocol):
    async def claim(self, key_id: str, nonce: str, *, now: datetime, ttl: timedelta) -> bool: ...
    async def seen(self, key_id: str, nonce: str, *, now: datetime) -> bool: ...


class Admission(Protocol):
    async def admit(
        self,
        key: str,
        nonce: str | None,
        limit_per_s: int,
        *,
        now: float,
        nonce_ttl: timedelta,
        rate_key: str | None = None,
    ) -> Verdict:
        """Claim ``nonce`` for ``key``, then, if it was fresh, count a hit on ``rate_key``
        (default ``key``) against ``limit_per_s``; a refused hit gives the nonce back. Raises
        RateLimiterUnavailable / NonceStoreUnavailable when it cannot tell."""
        ...


class SeparateAdmission:
    """A rate limiter and a nonce store asked one after the other (the embedded default;
    with Redis, ``RedisGate`` does both in one round trip)."""

    def __init__(self, limiter: RateLimiter, nonces: NonceStore) -> None:
        self._limiter = limiter
        self._nonces = nonces

    async def admit(
        self,
        key: str,
        nonce: str | None,
        limit_per_s: int,
        *,
        now: float,
        nonce_ttl: timedelta,
        rate_key: str | None = None,
    ) -> Verdict:
        # A replay is told by a read (it spends nobody's budget); a request the limit refuses
        # writes nothing (an embedded database is not a place to count refusals in).
        at = datetime.fromtimestamp(now, UTC)
        if nonce is not None and await self._nonces.seen(key, nonce, now=at):
            return Verdict(True, 0, False)
        decision = await self._limiter.hit(rate_key or key, limit_per_s, now=now)
        if not decision.allowed:
            return Verdict(False, decision.retry_after_s, False)
        if nonce is None:
            return Verdict(True, 0, False)
        fresh = await self._nonces.claim(key, nonce, now=at, ttl=nonce_ttl)
        return Verdict(True, 0, fresh)


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    owner_kind: str  # "admin" | "distributor"
    distributor_id: str | None


class RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after_s}s")
        self.retry_after_s = retry_after_s


class RequestVerifier:
    def __init__(
        self,
        accounts: AccountRepository,
        admission: Admission,
        *,
        window_seconds: int,
        default_rate_limit: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._accounts = accounts
        self._admission = admission
        self._window = window_seconds
        self._default_rate = default_rate_limit
        self._clock = clock

    async def verify(
        self,
        *,
        method: str,
        path: str,
        raw_query: str,
        headers: Mapping[str, str],
        read_body: Callable[[], Awaitable[bytes]],
    ) -> Caller:
        """The signed caller. The body is read (by `read_body`) only once the signature's
        headers, the key and the timestamp have passed: an unsigned or stale request is refused
        without a byte of its body being read."""
        signed = parse_signed_headers(headers)
        key = await self._accounts.load_key(signed.key_id)
        if key is None:
            raise SignatureError("key_unknown", "no such key")
        now = self._clock()
        self._check_key(key, now)
        check_timestamp(signed.timestamp, now, self._window)
        message = string_to_sign(
            method.upper(),
            path,
            raw_query,
            signed.key_id,
            str(signed.timestamp),
            signed.nonce,
            await read_body(),
        )
        if not verify_signature(key.key_type, key.material, message, signed.signature):
            raise SignatureError("signature_invalid", "the signature does not verify")
        # Limits count authenticated, fresh requests only: a replay is refused before it
        # counts, so nobody can spend another caller's budget by resending what they captured;
        # a request the limit refuses spends no nonce, so the client may send it again as it
        # is. A distributor's limit covers all its keys (more keys are not more budget); an
        # admin key has its own.
        scope = f"dst:{key.distributor_id}" if key.distributor_id else f"key:{key.id}"
        try:
            verdict = await self._admission.admit(
                key.id,
                signed.nonce,
                key.rate_limit_per_s or self._default_rate,
                now=now,
                nonce_ttl=timedelta(seconds=2 * self._window),
                rate_key=scope,
            )
        except NonceStoreUnavailable as exc:
            raise SignatureError(
                "nonce_store_unavailable", "cannot check nonces right now", status=503
            ) from exc
        except RateLimiterUnavailable as exc:
            raise SignatureError(
                "rate_limiter_unavailable", "cannot check rate limits right now", status=503
            ) from exc
        if not verdict.allowed:
            raise RateLimited(verdict.retry_after_s)
        if not verdict.nonce_fresh:
            raise SignatureError("nonce_replayed", "this nonce was already used")
        return Caller(key.id, key.owner_kind, key.distributor_id)

    @staticmethod
    def _check_key(key: KeyRecord, now: float) -> None:
        if key.status == "revoked":
            raise SignatureError("key_revoked", "this key was revoked")
        if key.expires_at is not None and key.expires_at.timestamp() <= now:
            raise SignatureError("key_expired", "this key has expired")
        if key.account_status != "active":
            raise SignatureError("account_suspended", "the account is suspended", status=403)
