"""What a supplier actor does on its own: poll the supplier about negotiated orders, release
seats of abandoned locks, and read the supplier's feeds (refunds it made, deliveries). The
work lives in the database, so a restarted actor carries on where the last one stopped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from actors.catalog_sync import CatalogSyncFailed
from actors.interfaces import OrderHostCalls, SessionStock
from actors.supplier_service import SupplierService
from domain.negotiation import NegotiationKind, backoff
from persistence.catalog import CatalogRepository
from persistence.work import Negotiation, WorkRepository
from suppliers.gateway import CallResult, Catalog, Outcome

log = logging.getLogger(__name__)


class OrderRouter(Protocol):
    """Where the supplier's answers about an order go: the host of that order's actor."""

    def for_order(self, order_id: str) -> OrderHostCalls: ...


class SupplierWorker:
    def __init__(
        self,
        service: SupplierService,
        work: WorkRepository,
        router: OrderRouter,
        *,
        catalog: CatalogRepository | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        parallel: int = 16,
        owns: Callable[[str], bool] = lambda _order_id: True,
    ) -> None:
        self._service = service
        self._work = work
        self._router = router
        self._clock = clock
        self._slots = asyncio.Semaphore(parallel)
        self._owns = owns
        self._catalog_repo = catalog
        self._catalog: tuple[float, datetime, Catalog] | None = None  # (monotonic, as_of, value)
        self._catalog_lock = asyncio.Lock()

    @property
    def supplier_id(self) -> str:
        return self._service.supplier_id

    async def _fetch_catalog(self) -> tuple[datetime, Catalog]:
        result = await self._service.catalog()
        if result.outcome is not Outcome.DONE or result.value is None:
            raise CatalogSyncFailed(f"{self.supplier_id}: {result.error} {result.message}")
        as_of = self._clock()
        self._catalog = (time.monotonic(), as_of, result.value)
        return as_of, result.value

    async def sync_catalog(self) -> int:
        """Pull the supplier's catalog and store it; returns the rows that changed."""
        if self._catalog_repo is None:
            return 0
        async with self._catalog_lock:
            as_of, catalog = await self._fetch_catalog()
            return await self._catalog_repo.apply_catalog(self.supplier_id, catalog, as_of)

    async def session_stock(self, session_ref: str, max_age_s: float) -> SessionStock | None:
        """Stock of one session, no older than `max_age_s` (one catalog call serves all the
        sessions asked about meanwhile)."""
        async with self._catalog_lock:
            memo = self._catalog
            if memo is None or time.monotonic() - memo[0] > max_age_s:
                as_of, catalog = await self._fetch_catalog()
            else:
                as_of, catalog = memo[1], memo[2]
        for show in catalog.shows:
            for ses in show.sessions:
                if ses.ref == session_ref:
                    return SessionStock(tuple((t.ref, t.available) for t in ses.tiers), as_of)
        return None

    async def refresh_overrides(self) -> None:
        interval_ms, give_up_ms = await self._work.polling_overrides(self.supplier_id)
        self._service.set_overrides(interval_ms, give_up_ms)

    async def poll_negotiations(self) -> int:
        """Ask the supplier about every due negotiation; returns how many were decided."""
        await self.refresh_overrides()
        now = self._clock()
        due = [
            n
            for n in await self._work.due_negotiations(self.supplier_id, now)
            if self._owns(n.order_id)
        ]
        decided = await asyncio.gather(*(self._poll_one(n, now) for n in due))
        return sum(decided)

    async def _poll_one(self, n: Negotiation, now: datetime) -> bool:
        async with self._slots:
            if n.kind is NegotiationKind.ISSUE:
                result: CallResult[Any] = await self._service.query_issue(n.order_id)
            else:
                result = await self._service.query_refund(n.order_id)
            if result.outcome is not Outcome.UNKNOWN:
                try:
                    await self._router.for_order(n.order_id).negotiation_answer(
                        n.order_id, n.kind, result
                    )
                    return True
                except Exception as exc:  # the order's host is restarting: ask again later
                    log.warning("could not deliver the answer for %s: %r", n.order_id, exc)
            policy = self._service.polling_policy()
            await self._work.record_poll(
                n.order_id,
                n.kind,
                next_poll_at=self._clock() + policy.interval,
                error=result.error,
                # Past the give-up time a person decides; the order is never cancelled blindly.
                flag=now >= n.give_up_at,
            )
            return False

    async def drain_releases(self) -> int:
        now = self._clock()
        due = [
            r
            for r in await self._work.due_releases(self.supplier_id, now)
            if self._owns(r.order_id)
        ]

        async def one(order_id: str, attempts: int) -> bool:
            async with self._slots:
                result = await self._service.release(order_id)
            if result.outcome is Outcome.UNKNOWN:
                await self._work.release_retry(
                    order_id, self._clock() + backoff(attempts), result.error
                )
                return False
            # DONE, or a definite answer that there is nothing to release.
            await self._work.release_done(order_id, self._clock())
            return True

        done = await asyncio.gather(*(one(r.order_id, r.attempts) for r in due))
        return sum(done)

    async def read_feeds(self) -> int:
        """Apply the supplier's own refunds and delivery updates, in order; the cursor only
        passes events that were applied, so an event that could not be is read again."""
        refund_seq, delivery_seq = await self._work.feed_cursor(self.supplier_id)
        refunds = await self._service.supplier_refunds(refund_seq)
        last, handled = await self._apply_events(
            refunds,
            refund_seq,
            lambda ev: self._router.for_order(ev.order_id).supplier_refunded(
                ev.order_id, ev.refunded_at
            ),
        )
        if last != refund_seq:
            await self._work.advance_feed(self.supplier_id, refund_seq=last)
        deliveries = await self._service.delivery_updates(delivery_seq)
        last, more = await self._apply_events(
            deliveries,
            delivery_seq,
            lambda ev: self._router.for_order(ev.order_id).delivery_update(ev.order_id, ev.status),
        )
        if last != delivery_seq:
            await self._work.advance_feed(self.supplier_id, delivery_seq=last)
        return handled + more

    @staticmethod
    async def _apply_events(
        feed: CallResult[Any], since: int, apply: Callable[[Any], Awaitable[str]]
    ) -> tuple[int, int]:
        last, handled = since, 0
        if feed.outcome is not Outcome.DONE or not feed.value:
            return last, handled
        for ev in feed.value:
            try:
                await apply(ev)
            except Exception as exc:  # its order's host is restarting: read it again later
                log.warning("feed event for %s not applied yet: %r", ev.order_id, exc)
                break
            last, handled = ev.seq, handled + 1
        return last, handled
