"""Supplier actors, hosted like orders.

A supplier's actor (`SupplierActor`: its `SupplierService`, through which every call to the
supplier goes, and its `SupplierWorker`, the background work of negotiations, releases, feeds
and catalog) is a plain object living in a `SupplierHost`, a Ray actor process:

- **The pool.** Every supplier with one replica lives in pool host
  `pool_index(supplier_id, pool_hosts)`, one of a few processes (`suppliers.pool_hosts`,
  default 2) that host all such suppliers: an actor is activated on its first call and
  passivated after `idle_seconds` unused. A pool host's background work costs the same however
  many suppliers it hosts: each tick it asks the database once for the due negotiations and
  releases of every pooled supplier (and activates the suppliers that have some); it reads the
  feeds of the suppliers in use each tick, and of idle ones only when they have orders a feed
  event can still change (every `idle_feed_seconds`); it pulls catalogs every
  `catalog_sync_seconds` for suppliers in use and every `idle_sync_seconds` for idle ones. One
  database pool per host, however many suppliers.
- **Dedicated replicas.** Ops who scale a busy supplier to n > 1 replicas give it n hosts of
  its own, one replica each; each polls and releases for its share of the orders, replica 0
  reads the feeds and the catalog.

Calls are not retried by Ray after a crash (max_task_retries=0): a lock or an issue whose
outcome is unknown is decided by the order's own logic, never re-sent blindly.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import ray
from sqlalchemy.engine import make_url

from actors.config import SupplierActorConfig, SupplierHostConfig, SupplierSettings
from actors.interfaces import (
    LockRecord,
    SessionStock,
    SupplierActorCalls,
    SupplierHostCalls,
    SupplierStats,
)
from actors.routing import OrderHosts, pool_index, pooled, supplier_replica
from actors.runtime import every, freeze_startup_objects
from actors.supplier_service import SupplierService
from actors.supplier_work import SupplierWorker
from domain.circuit import CircuitBreaker
from domain.identity import Attendee
from domain.negotiation import PollingPolicy
from persistence.catalog import RETIRED, CatalogRepository, Supplier, SupplierPlacement
from persistence.db import make_engine
from persistence.partitions import PartitionRepository
from persistence.secretbox import SecretBox
from persistence.work import Negotiation, PendingRelease, WorkRepository
from suppliers.gateway import (
    CallResult,
    Catalog,
    DeliveryUpdateEvent,
    IssueInfo,
    LockInfo,
    RefundInfo,
    SupplierRefundEvent,
)
from suppliers.registry import build_gateway

log = logging.getLogger(__name__)
T = TypeVar("T")

_NEVER = float("-inf")
_JOBS = 16  # a pool host's background jobs at once (each one supplier's)
_DUE_LIMIT = 1000  # (persistence.work's default limit of the pooled due queries)
_UNREACHABLE_BACKOFF = timedelta(seconds=60)  # work of a supplier that cannot be activated
_PLACEMENT_GRACE_S = 30.0  # a dedicated host younger than this may precede its count
_SYNC_RETRY_S = 30.0  # a failed catalog pull of a pooled supplier is tried again after this


def secrets_sealer(settings: SupplierSettings) -> SecretBox | None:
    """What opens the suppliers' sealed secrets (a pretix token)."""
    key = settings.secrets_key_b64
    return SecretBox(base64.b64decode(key)) if key else None


class NotHostedHere(LookupError):
    """A call for a supplier this host does not (or cannot) host."""


class SupplierActor(SupplierService):
    """One supplier's actor (one replica of it), inside its host."""

    def __init__(
        self,
        config: SupplierActorConfig,
        replicas: int,
        *,
        work: WorkRepository,
        catalog: CatalogRepository,
        router: OrderHosts,
    ) -> None:
        settings = config.settings
        super().__init__(
            config.supplier_id,
            build_gateway(config.gateway, config.gateway_config, sealer=secrets_sealer(settings)),
            max_concurrency=settings.max_concurrency,
            breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_seconds),
        )
        self.config = config
        self.replicas = replicas
        self.worker = SupplierWorker(self, work, router, catalog=catalog, owns=self._owns)
        self.used_at = _NEVER  # the last order call (lock, issue, refund and their queries)
        self.touched_at = time.monotonic()  # the last call of any kind from outside
        self.busy = 0  # background jobs running on it
        self.retiring = False  # its host is letting it go: no background work
        self.lanes_suspect = False  # the order hosts' lanes were told of a lock failure

    def _owns(self, order_id: str) -> bool:
        """With several replicas, each polls and releases for its share of the orders (the
        same stable hash that routes the orders' calls to it)."""
        return supplier_replica(order_id, self.replicas) == self.config.replica

    def in_use(self, now: float, idle_seconds: float) -> bool:
        return now - self.used_at < idle_seconds

    async def run(self, job: Callable[[SupplierActor], Awaitable[T]]) -> T:
        """Background work on this actor (it is not passivated meanwhile)."""
        self.busy += 1
        try:
            return await job(self)
        finally:
            self.busy -= 1


class SupplierHost:
    """A Ray actor hosting supplier actors (`SupplierHostCalls`): a pool host or a supplier
    replica's dedicated host."""

    async def __init__(self, config: SupplierHostConfig) -> None:  # type: ignore[misc]
        self._config = config
        settings = config.settings
        self._settings = settings
        engine = make_engine(config.platform.database_url, pool_size=settings.db_pool_size)
        self._catalog = CatalogRepository(engine)
        self._work = WorkRepository(engine)
        self._router = OrderHosts(config.platform, PartitionRepository(engine))
        self._actors: dict[str, SupplierActor] = {}
        self._activating: dict[str, asyncio.Task[SupplierActor]] = {}
        self._known: dict[str, SupplierPlacement] = {}  # pool: the placements last read
        self._next_sync: dict[str, float] = {}  # pool: when each supplier's catalog is due
        # ... the same as a heap, so a tick looks only at what is due (an entry the dict no
        # longer holds at that time is stale and skipped).
        self._sync_due: list[tuple[float, str]] = []
        # pool: the suppliers that had an order call lately (a tick reads their feeds); a
        # tick's work follows these, not the count of suppliers hosted.
        self._recent: set[str] = set()
        self._idle_feeds: set[str] = set()  # pool: idle suppliers whose feeds are worth reading
        self._syncs = asyncio.Semaphore(4)
        self._jobs: set[asyncio.Task[Any]] = set()
        self._running: set[tuple[str, str]] = set()  # (supplier, job kind) running now
        self._job_slots = asyncio.Semaphore(_JOBS)
        self._started = time.monotonic()
        self._letting_go: set[str] = set()  # suppliers being retired from this host
        self._closing = False  # a dedicated host on its way out
        tick = settings.tick_seconds
        loop = asyncio.get_running_loop()
        jobs: list[tuple[float, Callable[[], Awaitable[Any]]]]
        if config.supplier_id is None:
            jobs = [
                (settings.idle_feed_seconds, self._refresh_pool),
                (tick, self._pool_tick),
                (max(1.0, settings.idle_seconds / 4), self._passivate_idle),
            ]
        else:
            # A dedicated replica starts its supplier at once, so that work left by an
            # earlier run resumes without waiting for traffic.
            await self._activate(config.supplier_id)
            jobs = [(tick, self._dedicated_tick)]
            if config.replica == 0:
                jobs.append((settings.catalog_sync_seconds, self._dedicated_sync))
        self._tasks = [loop.create_task(every(t, job)) for t, job in jobs]
        freeze_startup_objects()

    # -- activation ------------------------------------------------------------------------
    async def _activate(self, supplier_id: str) -> SupplierActor:
        actor = self._actors.get(supplier_id)
        if actor is not None:
            return actor
        task = self._activating.get(supplier_id)
        if task is None:
            task = self._activating[supplier_id] = asyncio.ensure_future(self._load(supplier_id))
            task.add_done_callback(lambda _t: self._activating.pop(supplier_id, None))
        return await asyncio.shield(task)

    async def _load(self, supplier_id: str) -> SupplierActor:
        dedicated = self._config.supplier_id
        if dedicated is not None and supplier_id != dedicated:
            raise NotHostedHere(f"this host serves supplier {dedicated} only")
        supplier = await self._catalog.get_supplier(supplier_id)
        if supplier is None:
            raise NotHostedHere(f"no supplier {supplier_id}")
        actor = SupplierActor(
            SupplierActorConfig(
                self._config.platform,
                supplier.id,
                supplier.gateway,
                dict(supplier.config),
                self._config.replica if dedicated else 0,
            ),
            max(1, supplier.replicas) if dedicated else 1,
            work=self._work,
            catalog=self._catalog,
            router=self._router,
        )
        # A pooled actor of a supplier that has dedicated replicas (a router's cache was
        # stale) answers calls, and leaves the background work to those replicas.
        actor.retiring = dedicated is None and not pooled(supplier.replicas)
        self._actors[supplier_id] = actor
        if dedicated is None:
            self._known[supplier_id] = _placement(supplier, self._known.get(supplier_id))
            if supplier_id not in self._next_sync and supplier.status != RETIRED:
                synced, _ = await self._catalog.sync_report(supplier_id)
                self._sync_at(supplier_id, self._due_at(synced))
        return actor

    async def _use(self, supplier_id: str) -> SupplierActor:
        """The supplier's actor for an order call: it counts as in use (its feeds are read
        every tick while it is)."""
        actor = await self._touch(supplier_id)
        actor.used_at = actor.touched_at
        self._recent.add(supplier_id)
        return actor

    def _sync_at(self, supplier_id: str, at: float) -> None:
        """The supplier's catalog is due at `at` (monotonic)."""
        self._next_sync[supplier_id] = at
        heapq.heappush(self._sync_due, (at, supplier_id))

    async def _touch(self, supplier_id: str) -> SupplierActor:
        """The supplier's actor for any other call (ops, stock, stats)."""
        if self._closing:
            raise NotHostedHere("this dedicated host is letting its supplier go")
        actor = self._actors.get(supplier_id) or await self._activate(supplier_id)
        actor.touched_at = time.monotonic()
        return actor

    async def _passivate_idle(self) -> None:
        now = time.monotonic()
        idle = self._settings.idle_seconds
        for sid, actor in list(self._actors.items()):
            if (
                sid not in self._letting_go
                and now - actor.touched_at >= idle
                and not actor.busy
                and not actor.calls_open
            ):
                await self._deactivate(sid)

    async def _deactivate(self, supplier_id: str) -> None:
        actor = self._actors.pop(supplier_id, None)
        if actor is not None:
            await actor.aclose()

    # -- the pool's background work --------------------------------------------------------
    def _mine(self, supplier_id: str) -> bool:
        index = self._config.pool_index
        return index is not None and pool_index(supplier_id, self._settings.pool_hosts) == index

    def _due_at(self, synced_at: datetime | None) -> float:
        """When a catalog pull is due (monotonic), from the last one: at once if there was
        none, else an idle interval after it, spread so that a restarted host does not pull
        every catalog at once."""
        if synced_at is None:
            return time.monotonic()
        age = (datetime.now(UTC) - synced_at).total_seconds()
        wait = max(0.0, self._settings.idle_sync_seconds - age)
        return time.monotonic() + wait + random.uniform(0, self._settings.tick_seconds * 10)

    async def _refresh_pool(self) -> None:
        """Re-read which suppliers this pool host serves, and which idle ones have feeds
        worth reading."""
        placements = {p.id: p for p in await self._catalog.placements() if self._mine(p.id)}
        self._known = placements
        serving = {
            sid for sid, p in placements.items() if pooled(p.replicas) and p.status != RETIRED
        }
        for sid in serving - self._next_sync.keys():
            self._sync_at(sid, self._due_at(placements[sid].last_sync_at))
        for sid in self._next_sync.keys() - serving:
            del self._next_sync[sid]
        for sid, actor in self._actors.items():
            p = placements.get(sid)
            actor.retiring = sid in self._letting_go or p is None or not pooled(p.replicas)
        now = time.monotonic()
        idle = [
            sid
            for sid in serving
            if sid not in self._actors or not self._actors[sid].in_use(now, self._idle_s)
        ]
        self._idle_feeds = await self._work.with_issued_orders(idle, datetime.now(UTC))

    @property
    def _idle_s(self) -> float:
        return self._settings.idle_seconds

    def _serving(self, supplier_id: str) -> bool:
        p = self._known.get(supplier_id)
        return p is not None and pooled(p.replicas) and p.status != RETIRED

    async def _pool_tick(self) -> None:
        """One round of the pool's background work. Each supplier's job runs as a task of
        its own (one of each kind per supplier at a time, at most `_JOBS` at once in the
        host), so a slow or unreachable supplier holds back no other."""
        now = datetime.now(UTC)
        # One cheap query for every pooled supplier's due work; only when that comes back
        # full (the other hosts' suppliers might crowd this one's out) is this host's asked
        # for by name.
        negotiations = await self._work.due_negotiations_pooled(now)
        if len(negotiations) >= _DUE_LIMIT:
            negotiations = await self._work.due_negotiations_pooled(now, self._pooled_here())
        releases = await self._work.due_releases_pooled(now)
        if len(releases) >= _DUE_LIMIT:
            releases = await self._work.due_releases_pooled(now, self._pooled_here())
        negotiations = [n for n in negotiations if self._mine(n.supplier_id)]
        releases = [r for r in releases if self._mine(r.supplier_id)]
        mono = time.monotonic()
        feeds: set[str] = set()
        for sid in list(self._recent):
            a = self._actors.get(sid)
            if a is None or not a.in_use(mono, self._idle_s):
                self._recent.discard(sid)  # (a call makes it recent again)
            elif not a.retiring and self._serving(sid):
                feeds.add(sid)
        if self._idle_feeds:  # idle suppliers' feeds, once per refresh
            feeds |= self._idle_feeds
            self._idle_feeds = set()
        for sid, due_n in _by_supplier(negotiations).items():
            self._job(sid, "poll", _polling(due_n), self._poll_later(due_n))
        for sid, due_r in _by_supplier(releases).items():
            self._job(sid, "release", _releasing(due_r), self._release_later(due_r))
        for sid in feeds:
            self._job(sid, "feeds", _reading_feeds)
        while self._sync_due and self._sync_due[0][0] <= mono:
            at, sid = heapq.heappop(self._sync_due)
            if self._next_sync.get(sid) != at:
                continue  # rescheduled since, or no longer this host's
            if not self._serving(sid):
                self._sync_at(sid, mono + 1.0)  # due still: looked at again in a second
                continue
            active = sid in self._actors and self._actors[sid].in_use(mono, self._idle_s)
            interval = (
                self._settings.catalog_sync_seconds if active else self._settings.idle_sync_seconds
            )
            self._sync_at(sid, mono + interval)
            self._spawn(self._sync(sid))

    def _pooled_here(self) -> list[str]:
        return [sid for sid, p in self._known.items() if pooled(p.replicas)]

    def _job(
        self,
        supplier_id: str,
        kind: str,
        job: Callable[[SupplierActor], Awaitable[Any]],
        if_unreachable: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        key = (supplier_id, kind)
        if key in self._running:
            return  # the last round's is still at it
        self._running.add(key)

        async def run() -> None:
            try:
                async with self._job_slots:
                    try:
                        actor = await self._activate(supplier_id)
                    except Exception as exc:
                        # Its configuration no longer builds, or it is gone: its rows wait
                        # (pushed back, so they hold back nothing) and it is logged.
                        log.warning("supplier %s cannot be activated: %r", supplier_id, exc)
                        if if_unreachable is not None:
                            await if_unreachable()
                        return
                    await actor.run(job)
            except Exception:
                log.exception("background %s of supplier %s failed", kind, supplier_id)
            finally:
                self._running.discard(key)

        self._spawn(run())

    def _poll_later(self, due: list[Negotiation]) -> Callable[[], Awaitable[None]]:
        async def later() -> None:
            at = datetime.now(UTC) + _UNREACHABLE_BACKOFF
            for n in due:
                await self._work.record_poll(
                    n.order_id, n.kind, next_poll_at=at, error="activation_failed", flag=False
                )

        return later

    def _release_later(self, due: list[PendingRelease]) -> Callable[[], Awaitable[None]]:
        async def later() -> None:
            at = datetime.now(UTC) + _UNREACHABLE_BACKOFF
            for r in due:
                await self._work.release_retry(r.order_id, at, "activation_failed")

        return later

    async def _sync(self, supplier_id: str) -> None:
        async with self._syncs:
            try:
                actor = await self._activate(supplier_id)
                if not actor.retiring:
                    await actor.run(lambda a: a.worker.sync_catalog())
            except Exception as exc:
                # A supplier that cannot be read now is tried again soon, not a whole
                # interval later (a catalog never pulled sells nothing meanwhile).
                log.warning("catalog sync of %s failed: %r", supplier_id, exc)
                due = self._next_sync.get(supplier_id)
                retry = time.monotonic() + _SYNC_RETRY_S
                if due is not None and retry < due:
                    self._sync_at(supplier_id, retry)

    def _spawn(self, job: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    # -- a dedicated replica's background work ---------------------------------------------
    async def _dedicated_tick(self) -> None:
        sid = self._config.supplier_id
        actor = self._actors.get(sid) if sid is not None else None
        if actor is None or sid is None or sid in self._letting_go:
            return
        supplier = await self._catalog.get_supplier(actor.supplier_id)
        placed_here = (
            supplier is not None
            and supplier.status != RETIRED
            and not pooled(supplier.replicas)
            and self._config.replica < supplier.replicas
        )
        if supplier is not None:
            actor.replicas = max(1, supplier.replicas)
        # A host may start before its supplier's count says it exists (a scale-up starts the
        # hosts first): it waits. Past that grace, a host its supplier no longer counts (a
        # retire call that never came) lets it go by itself.
        actor.retiring = not placed_here
        if not placed_here:
            if time.monotonic() - self._started > _PLACEMENT_GRACE_S:
                self._spawn(self.retire(sid, 2 * self._settings.tick_seconds))
            return
        jobs: list[Callable[[SupplierActor], Awaitable[Any]]] = [
            lambda a: a.worker.poll_negotiations(),
            lambda a: a.worker.drain_releases(),
        ]
        if self._config.replica == 0:  # one reader of the supplier's feeds
            jobs.append(lambda a: a.worker.read_feeds())
        for job in jobs:
            try:
                await actor.run(job)
            except Exception:
                log.exception("background work for supplier %s failed", actor.supplier_id)

    async def _dedicated_sync(self) -> None:
        sid = self._config.supplier_id
        actor = self._actors.get(sid) if sid is not None else None
        if actor is not None and not actor.retiring:
            await actor.run(lambda a: a.worker.sync_catalog())

    # -- SupplierActorCalls, the supplier's id first ---------------------------------------
    async def lock(
        self,
        supplier_id: str,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[Attendee, ...] = (),
    ) -> CallResult[LockInfo]:
        actor = await self._use(supplier_id)
        result = await actor.lock(order_id, session_ref, tier_ref, quantity, attendees)
        await self._lanes_told(actor)
        return result

    async def lock_outcomes(self, supplier_id: str, records: list[LockRecord]) -> tuple[str, int]:
        """Locks the supplier's lanes made (actors/supplier_lane.py), for its statistics and
        its breaker; answers the breaker's state and failures since its last success."""
        actor = await self._use(supplier_id)
        state = actor.absorb_locks(records)
        await self._lanes_told(actor)
        return state

    async def _tell_hosts(self, supplier_id: str) -> list[Any]:
        hosts = await self._router.hosts()
        return await asyncio.gather(
            *(h.suspect_supplier(supplier_id) for h in hosts.values()), return_exceptions=True
        )

    async def _lanes_told(self, actor: SupplierActor) -> None:
        """The first lock failure since the supplier's last success sends every order host's
        lane of it through this actor, so that its breaker counts every lock from then on
        (answered once they are told, or after 2 s). Only pooled suppliers have lanes."""
        if self._config.supplier_id is not None or not self._settings.lanes:
            return
        failing = actor.lock_failures > 0
        if failing and not actor.lanes_suspect:
            actor.lanes_suspect = True
            try:
                told = await asyncio.wait_for(self._tell_hosts(actor.supplier_id), 2.0)
                missed = [r for r in told if isinstance(r, BaseException)]
            except Exception as exc:  # (no host list, or past the 2 s)
                missed = [exc]
            if missed:
                # Told again at the next failure; a host restarting starts its lanes suspect.
                log.warning(
                    "order hosts not all told of %s's failing locks: %r",
                    actor.supplier_id,
                    missed[0],
                )
                actor.lanes_suspect = False
        elif not failing:
            actor.lanes_suspect = False

    async def release(self, supplier_id: str, order_id: str) -> CallResult[None]:
        return await (await self._use(supplier_id)).release(order_id)

    async def issue(
        self, supplier_id: str, order_id: str, attendees: tuple[Attendee, ...] = ()
    ) -> CallResult[IssueInfo]:
        return await (await self._use(supplier_id)).issue(order_id, attendees)

    async def query_issue(self, supplier_id: str, order_id: str) -> CallResult[IssueInfo]:
        return await (await self._use(supplier_id)).query_issue(order_id)

    async def refund(self, supplier_id: str, order_id: str) -> CallResult[RefundInfo]:
        return await (await self._use(supplier_id)).refund(order_id)

    async def query_refund(self, supplier_id: str, order_id: str) -> CallResult[RefundInfo]:
        return await (await self._use(supplier_id)).query_refund(order_id)

    async def policy(self, supplier_id: str) -> PollingPolicy:
        actor = await self._touch(supplier_id)
        await actor.worker.refresh_overrides()
        return await actor.policy()

    async def catalog(self, supplier_id: str) -> CallResult[Catalog]:
        return await (await self._touch(supplier_id)).catalog()

    async def supplier_refunds(
        self, supplier_id: str, since_seq: int
    ) -> CallResult[list[SupplierRefundEvent]]:
        return await (await self._touch(supplier_id)).supplier_refunds(since_seq)

    async def delivery_updates(
        self, supplier_id: str, since_seq: int
    ) -> CallResult[list[DeliveryUpdateEvent]]:
        return await (await self._touch(supplier_id)).delivery_updates(since_seq)

    async def stats(self, supplier_id: str) -> SupplierStats:
        actor = await self._touch(supplier_id)
        await actor.worker.refresh_overrides()
        return actor.current_stats()

    async def sync_catalog(self, supplier_id: str) -> int:
        actor = await self._touch(supplier_id)
        return await actor.run(lambda a: a.worker.sync_catalog())

    async def session_stock(
        self, supplier_id: str, session_ref: str, max_age_s: float
    ) -> SessionStock | None:
        actor = await self._touch(supplier_id)
        return await actor.worker.session_stock(session_ref, max_age_s)

    async def run_work_now(self, supplier_id: str) -> dict[str, int]:
        """Run each background job of a supplier once (ops and tests)."""
        actor = await self._touch(supplier_id)
        return {
            "decided": await actor.run(lambda a: a.worker.poll_negotiations()),
            "released": await actor.run(lambda a: a.worker.drain_releases()),
            "feed_events": await actor.run(lambda a: a.worker.read_feeds()),
        }

    async def retire(self, supplier_id: str, grace_s: float) -> str:
        """Let a supplier's actor go without losing a call: stop its background work, keep
        answering its calls while routers still send them (`grace_s`, past their routing
        cache), wait for the calls in flight, then passivate it (a pool host) or exit (a
        dedicated host), unless the supplier was placed here again meanwhile. A dedicated
        host, once letting its supplier go, refuses new calls (their callers find the
        supplier's new placement)."""
        actor = self._actors.get(supplier_id)
        if self._config.supplier_id is None:
            found = await self._catalog.get_supplier(supplier_id)
            if found is not None:  # no background work for it here from now on
                self._known[supplier_id] = _placement(found, self._known.get(supplier_id))
        if actor is None:
            return "not_active"
        if supplier_id in self._letting_go:
            return "retiring"
        self._letting_go.add(supplier_id)
        actor.retiring = True
        try:
            await asyncio.sleep(grace_s)
            s = await self._catalog.get_supplier(supplier_id)
            live = s is not None and s.status != RETIRED
            if self._config.supplier_id is None:
                keep = live and s is not None and pooled(s.replicas)
            else:
                keep = (
                    live
                    and s is not None
                    and not pooled(s.replicas)
                    and self._config.replica < s.replicas
                )
            if keep:
                actor.retiring = False
                return "kept"
            if self._config.supplier_id is not None:
                self._closing = True  # no new call from here on
            # No await between the last look at the calls in flight and letting it go.
            while actor.calls_open or actor.busy:
                await asyncio.sleep(0.05)
            if self._actors.get(supplier_id) is actor:  # (not a newer activation)
                del self._actors[supplier_id]
        finally:
            self._letting_go.discard(supplier_id)
        await actor.aclose()
        if self._config.supplier_id is None:
            return "passivated"
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]
        return "exited"  # not reached

    async def config(self, supplier_id: str) -> SupplierActorConfig:
        """The configuration a supplier's actor runs with (the database password hidden)."""
        actor = await self._touch(supplier_id)
        platform = actor.config.platform
        url = make_url(platform.database_url).render_as_string(hide_password=True)
        return replace(actor.config, platform=replace(platform, database_url=url))

    async def ping(self, supplier_id: str) -> str:
        return (await self._touch(supplier_id)).supplier_id

    async def pid(self, supplier_id: str) -> int:
        await self._touch(supplier_id)
        return os.getpid()

    # -- the host's own --------------------------------------------------------------------
    async def hosted(self) -> list[str]:
        """The suppliers whose actors are active here."""
        return sorted(self._actors)

    async def host_pid(self) -> int:
        return os.getpid()

    async def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


def _polling(due: list[Negotiation]) -> Callable[[SupplierActor], Awaitable[int]]:
    return lambda actor: actor.worker.poll_due(due)


def _releasing(due: list[PendingRelease]) -> Callable[[SupplierActor], Awaitable[int]]:
    return lambda actor: actor.worker.release_due(due)


async def _reading_feeds(actor: SupplierActor) -> int:
    return await actor.worker.read_feeds()


K = TypeVar("K", Negotiation, PendingRelease)


def _by_supplier(items: Iterable[K]) -> dict[str, list[K]]:
    grouped: dict[str, list[K]] = {}
    for item in items:
        grouped.setdefault(item.supplier_id, []).append(item)
    return grouped


def _placement(supplier: Supplier, known: SupplierPlacement | None) -> SupplierPlacement:
    return SupplierPlacement(
        supplier.id,
        supplier.replicas,
        supplier.status,
        None if known is None else known.last_sync_at,
    )


if TYPE_CHECKING:
    _host_implements: type[SupplierHostCalls] = SupplierHost
    _actor_calls: type[SupplierActorCalls]  # (each supplier's view: actors.remote.bound)

# The Ray actor class (restarted on failure, never retrying a call).
SupplierHostRemote = ray.remote(max_restarts=-1, max_task_retries=0)(SupplierHost)
