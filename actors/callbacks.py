"""The callback courier: delivers the outbox's status-change messages to distributors,
signed with the platform's Ed25519 key (docs/signing.md, "Callbacks from the platform"), retried
with exponential backoff until the receiver answers 2xx."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.negotiation import backoff
from domain.signing import KeyType, new_nonce, sign_request
from persistence.work import OutboxMessage, WorkRepository

log = logging.getLogger(__name__)

PLATFORM_KEY_ID = "platform"


def callback_headers(
    private_key: Ed25519PrivateKey, url: str, body: bytes, timestamp: int
) -> dict[str, str]:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = sign_request(
        method="POST",
        target=target,
        body=body,
        key_id=PLATFORM_KEY_ID,
        key_type=KeyType.ED25519,
        private_key=private_key,
        timestamp=timestamp,
        nonce=new_nonce(),
    )
    headers["Content-Type"] = "application/json"
    return headers


class CallbackCourier:
    def __init__(
        self,
        work: WorkRepository,
        platform_seed_b64: str,
        *,
        owns: Callable[[str], bool] = lambda _order_id: True,
        timeout_s: float = 5.0,
        base_backoff_s: float = 1.0,
    ) -> None:
        self._work = work
        self._key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(platform_seed_b64))
        self._owns = owns
        self._timeout = timeout_s
        self._base_backoff = base_backoff_s
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout, trust_env=False)
        return self._http

    async def deliver_due(self) -> int:
        """Deliver what is due; returns how many were delivered. Messages of one order go in
        order: once one of them fails, the order's later messages wait for the next round."""
        now = datetime.now(UTC)
        due = [m for m in await self._work.due_callbacks(now) if self._owns(m.order_id)]
        by_order: dict[str, list[OutboxMessage]] = {}
        for m in due:
            by_order.setdefault(m.order_id, []).append(m)
        results = await asyncio.gather(*(self._deliver_in_order(ms) for ms in by_order.values()))
        return sum(results)

    async def _deliver_in_order(self, messages: list[OutboxMessage]) -> int:
        delivered = 0
        for m in messages:
            if not await self._deliver(m):
                break
            delivered += 1
        return delivered

    async def _deliver(self, m: OutboxMessage) -> bool:
        body = m.body.encode()
        headers = callback_headers(self._key, m.url, body, int(time.time()))
        error: str
        try:
            resp = await self._client().post(m.url, content=body, headers=headers)
            if 200 <= resp.status_code < 300:
                await self._work.callback_delivered(m.id, datetime.now(UTC))
                return True
            error = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        next_at = datetime.now(UTC) + backoff(m.attempts, base_s=self._base_backoff)
        await self._work.callback_retry(m.id, next_at, error)
        return False

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
