"""The callback courier: delivers the outbox's status-change messages to distributors,
signed with the platform's Ed25519 key (docs/signing.md, "Callbacks from the platform").

No receiver can stall it (docs/design.md, "Callbacks"):
- each delivery has one deadline for all of it (resolving, connecting, sending, the whole
  answer); a round starts the deliveries it took and waits for them only a moment, so a slow
  receiver holds its own orders' messages, never the next round;
- every failure, whatever raised it, is recorded in a line and retried with backoff; after
  `callback_max_attempts` attempts or `callback_max_age_seconds` the message is dead (ops list
  and redeliver dead messages);
- a round takes the messages of this courier's shard, by due time, at most
  `callback_per_distributor` orders per distributor (`WorkRepository.due_callbacks`);
- it connects only to addresses `domain.callback_urls` allows, checked on every address the
  host name resolves to, and it follows no redirect.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import functools
import logging
import socket
import time
import typing
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from urllib.parse import urlsplit

import httpcore
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.config import OrderHostSettings
from domain.callback_urls import (
    Address,
    CallbackUrlRefused,
    Network,
    address_refusal,
    check_callback_url,
    named_addresses,
    parse_networks,
)
from domain.negotiation import backoff
from domain.signing import KeyType, new_nonce, sign_request
from persistence.work import OutboxMessage, WorkRepository

log = logging.getLogger(__name__)

PLATFORM_KEY_ID = "platform"
# A message being sent is not due again before its deadline and this margin have passed (if
# the courier dies mid-send, the message is sent again then: callbacks are at least once).
LEASE_MARGIN_S = 5.0
ANSWER_LIMIT = 64 * 1024  # bytes of an answer read; the rest is not waited for
# Resolves a host name and port to IP addresses (strings).
Resolver = Callable[[str, int], Awaitable[list[str]]]


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


# Name lookups block a thread each, and a receiver's name server may never answer: they get a
# pool of their own (the event loop's default pool also serves the database driver), at most
# two lookups of one name run at once, and answers are kept a little while.
_DNS_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="dns")
_DNS_PER_NAME = 2
_DNS_TTL_S = 30.0
_dns_cache: dict[tuple[str, int], tuple[float, list[str]]] = {}
_dns_slots: dict[str, asyncio.Semaphore] = {}


async def resolve_host(host: str, port: int) -> list[str]:
    key = (host, port)
    hit = _dns_cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < _DNS_TTL_S:
        return hit[1]
    slots = _dns_slots.setdefault(host, asyncio.Semaphore(_DNS_PER_NAME))
    async with slots:
        loop = asyncio.get_running_loop()
        infos = await loop.run_in_executor(
            _DNS_POOL, functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        )
    found = [str(info[4][0]) for info in infos]
    if len(_dns_cache) > 10_000:
        _dns_cache.clear()
    _dns_cache[key] = (time.monotonic(), found)
    if len(_dns_slots) > 10_000:  # forget the names nobody is looking up now
        for name in [n for n, s in _dns_slots.items() if not s.locked()]:
            del _dns_slots[name]
    return found


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens each connection to an address the host resolves to, once every address it
    resolves to has been checked (so a name that also resolves to an internal address is
    refused, and the address connected to is the one checked)."""

    def __init__(self, networks: Sequence[Network], resolve: Resolver) -> None:
        self._networks = networks
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def _address(self, host: str, port: int) -> Address:
        addresses = list(named_addresses(host))
        if not addresses:
            addresses = [ip_address(a) for a in await self._resolve(host, port)]
        if not addresses:
            raise CallbackUrlRefused(f"{host} resolves to no address")
        for address in addresses:
            refusal = address_refusal(address, self._networks)
            if refusal is not None:
                raise CallbackUrlRefused(f"{host} resolves to {address}, {refusal}")
        return addresses[0]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self._address(host, port)
        return await self._inner.connect_tcp(
            str(address),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise CallbackUrlRefused("callbacks do not go to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over a connection pool whose connections `_GuardedBackend`
    opens (httpx takes no network backend of its own, so its pool is replaced)."""

    def __init__(self, backend: _GuardedBackend, max_connections: int) -> None:
        super().__init__(trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx's transport changed: the callback guard cannot be fitted")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=min(max_connections, 20),
            keepalive_expiry=5.0,
            network_backend=backend,
        )


def _describe(exc: BaseException, deadline_s: float) -> str:
    """A failure in one short line: no traceback, no newline."""
    if isinstance(exc, TimeoutError):
        return f"no complete answer within {deadline_s:g} s"
    if isinstance(exc, CallbackUrlRefused):
        return f"refused: {exc}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class CallbackCourier:
    """Delivers the due messages of the outbox's courier shards that `shards` names when
    asked (an order host's partitions; None: every shard), by rounds (`deliver_due`)."""

    def __init__(
        self,
        work: WorkRepository,
        settings: OrderHostSettings,
        *,
        shards: Callable[[], Collection[int] | None] = lambda: None,
        base_backoff_s: float = 1.0,
        batch: int = 500,
        round_wait_s: float = 1.0,
        resolve: Resolver = resolve_host,
    ) -> None:
        self._work = work
        self._key = Ed25519PrivateKey.from_private_bytes(
            base64.b64decode(settings.platform_seed_b64)
        )
        self._shards = shards
        self._deadline = settings.callback_deadline_seconds
        self._max_attempts = settings.callback_max_attempts
        self._max_age = timedelta(seconds=settings.callback_max_age_seconds)
        self._per_distributor = settings.callback_per_distributor
        self._allowed = settings.callback_allowed_networks
        self._networks = parse_networks(self._allowed)
        self._base_backoff = base_backoff_s
        self._batch = batch
        self._round_wait = round_wait_s
        self._resolve = resolve
        self._http: httpx.AsyncClient | None = None
        self._in_flight: dict[str, asyncio.Task[int]] = {}  # by order id
        self._busy: Counter[str | None] = Counter()  # orders in flight, by distributor

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            transport = _GuardedTransport(
                _GuardedBackend(self._networks, self._resolve), self._batch
            )
            self._http = httpx.AsyncClient(
                transport=transport,
                timeout=self._deadline,  # per step; the deadline bounds the whole
                follow_redirects=False,
                trust_env=False,
            )
        return self._http

    @property
    def in_flight(self) -> int:
        """Orders whose messages are being delivered now."""
        return len(self._in_flight)

    async def deliver_due(self) -> int:
        """One round: start delivering what is due (an order's messages one after the other,
        each order at most once at a time, at most `callback_per_distributor` orders of a
        distributor at a time, at most `batch` in all), wait for those deliveries up to
        `round_wait_s`, and return how many messages were accepted by then. Deliveries still
        running go on after the round, each bounded by its deadline."""
        due = await self._work.due_callbacks(
            datetime.now(UTC),
            shards=self._shards(),
            per_distributor=self._per_distributor,
            limit=self._batch,
            excluding=list(self._in_flight),
        )
        by_order: dict[str, list[OutboxMessage]] = {}
        for m in due:
            if m.order_id not in self._in_flight:
                by_order.setdefault(m.order_id, []).append(m)
        started: list[asyncio.Task[int]] = []
        for order_id, messages in by_order.items():
            distributor = messages[0].distributor_id
            if len(self._in_flight) >= self._batch:
                break
            if self._busy[distributor] >= self._per_distributor:
                continue  # its slow receivers hold its own share, nobody else's
            task = asyncio.create_task(self._deliver_in_order(messages))
            self._in_flight[order_id] = task
            self._busy[distributor] += 1
            task.add_done_callback(functools.partial(self._finished, order_id, distributor))
            started.append(task)
        if not started:
            return 0
        done, _ = await asyncio.wait(started, timeout=self._round_wait)
        return sum(t.result() for t in done)

    def _finished(self, order_id: str, distributor: str | None, _task: object) -> None:
        self._in_flight.pop(order_id, None)
        self._busy[distributor] -= 1
        if self._busy[distributor] <= 0:
            del self._busy[distributor]

    async def drain(self) -> None:
        """Wait until no delivery is running."""
        while self._in_flight:
            await asyncio.wait(list(self._in_flight.values()))

    async def _deliver_in_order(self, messages: list[OutboxMessage]) -> int:
        delivered = 0
        try:
            for m in messages:
                if not await self._deliver(m):
                    break
                delivered += 1
        except Exception:  # the outcome could not be recorded: the message is tried again
            log.exception("recording a callback's outcome failed")
        return delivered

    async def _deliver(self, m: OutboxMessage) -> bool:
        leased_at = datetime.now(UTC)
        lease = leased_at + timedelta(seconds=self._deadline + LEASE_MARGIN_S)
        if not await self._work.lease_callback(m, leased_at, lease):
            return False  # taken by another round (or decided): its later messages wait
        try:
            async with asyncio.timeout(self._deadline):
                status = await self._post(m)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # every failure is the receiver's, and is retried
            error = _describe(exc, self._deadline)
        now = datetime.now(UTC)
        if error is None:
            await self._work.callback_delivered(m, now)
            return True
        dead = m.attempts + 1 >= self._max_attempts or now - m.created_at >= self._max_age
        await self._work.callback_failed(
            m,
            next_at=now + backoff(m.attempts, base_s=self._base_backoff),
            error=error,
            dead_at=now if dead else None,
        )
        if dead:
            log.warning(
                "callback %s of %s is dead after %d attempts: %s",
                m.id,
                m.order_id,
                m.attempts + 1,
                error,
            )
        return False

    async def _post(self, m: OutboxMessage) -> int:
        """POST the message and read its answer (up to `ANSWER_LIMIT` bytes); its status."""
        check_callback_url(m.url, self._allowed)
        body = m.body.encode()
        headers = callback_headers(self._key, m.url, body, int(time.time()))
        async with self._client().stream("POST", m.url, content=body, headers=headers) as resp:
            read = 0
            async for chunk in resp.aiter_raw():
                read += len(chunk)
                if read >= ANSWER_LIMIT:
                    break
            return resp.status_code

    async def aclose(self) -> None:
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
