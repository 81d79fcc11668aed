"""What a supplier actor does on its own: poll the supplier about negotiated orders, release
seats of abandoned locks, and read the supplier's feeds (refunds it made, deliveries), keeping
every event until it applies. The work lives in the database, so a restarted actor carries on
where the last one stopped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from actors.catalog_sync import CatalogSyncFailed
from actors.interfaces import EventOutcome, EventResult, OrderHostCalls, SessionStock
from actors.supplier_service import SupplierService
from domain.negotiation import NegotiationKind, backoff
from persistence.catalog import CatalogRepository
from persistence.work import (
    Feed,
    FeedEvent,
    FeedEventIn,
    FeedEventStatus,
    Negotiation,
    PendingRelease,
    WorkRepository,
)
from suppliers.gateway import CallResult, Catalog, DeliveryUpdateEvent, Outcome, SupplierRefundEvent

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
        return await self.poll_due(
            await self._work.due_negotiations(self.supplier_id, self._clock())
        )

    async def poll_due(self, due: Sequence[Negotiation]) -> int:
        """Ask the supplier about these due negotiations (those of this replica's share)."""
        await self.refresh_overrides()
        now = self._clock()
        mine = [n for n in due if self._owns(n.order_id)]
        decided = await asyncio.gather(*(self._poll_one(n, now) for n in mine))
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
        return await self.release_due(
            await self._work.due_releases(self.supplier_id, self._clock())
        )

    async def release_due(self, due_releases: Sequence[PendingRelease]) -> int:
        """Release these seats at the supplier (those of this replica's share)."""
        due = [r for r in due_releases if self._owns(r.order_id)]

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
        """Keep what the supplier's feeds say, then apply every event still pending; returns
        how many events were decided (applied or refused) in this round.

        Each event read is stored (`supplier_events`, pending) in the transaction that moves
        the feed's cursor past it, so an event is never passed without being kept. Pending
        events go to their order's actor, each order's in the order they came; one that cannot
        apply yet (its order is FIXING) stays pending, holds back that order's later events,
        and is asked about again next round; one that can never apply is refused, with its
        reason, and logged."""
        refund_seq, delivery_seq = await self._work.feed_cursor(self.supplier_id)
        # Each feed on its own: one the platform cannot store this round (the database is
        # down, or the supplier sent an event it refuses) holds back neither the other feed
        # nor the events already kept.
        for feed, read, payload in (
            (Feed.REFUND, lambda: self._service.supplier_refunds(refund_seq), _refund_payload),
            (
                Feed.DELIVERY,
                lambda: self._service.delivery_updates(delivery_seq),
                _delivery_payload,
            ),
        ):
            try:
                await self._keep(feed, await read(), payload)
            except Exception:
                log.exception("the %s feed of %s could not be kept", feed, self.supplier_id)
        by_order: dict[str, list[FeedEvent]] = {}
        for ev in await self._work.pending_feed_events(self.supplier_id):
            by_order.setdefault(ev.order_id, []).append(ev)
        slots = asyncio.Semaphore(16)

        async def one_order(events: list[FeedEvent]) -> int:
            async with slots:
                return await self._apply_in_turn(events)

        decided = await asyncio.gather(*(one_order(evs) for evs in by_order.values()))
        return sum(decided)

    async def _keep(
        self, feed: Feed, read: CallResult[Any], payload: Callable[[Any], dict[str, Any]]
    ) -> None:
        if read.outcome is not Outcome.DONE or not read.value:
            return  # the feed could not be read: next round
        # A sequence number the database cannot hold ends what this read can keep; the
        # cursor stops before it (the supplier's feed is at fault, and it is logged).
        events: list[FeedEventIn] = []
        for ev in read.value:
            if not isinstance(ev.seq, int) or not 0 < ev.seq < 2**63:
                log.warning("%s feed of %s: sequence %r refused", feed, self.supplier_id, ev.seq)
                break
            events.append(FeedEventIn(ev.seq, ev.order_id, payload(ev)))
        await self._work.store_feed_events(self.supplier_id, feed, events, self._clock())

    async def _apply_in_turn(self, events: Sequence[FeedEvent]) -> int:
        """One order's pending events, oldest first, until one cannot apply yet."""
        decided = 0
        for ev in events:
            try:
                result = await self._apply(ev)
            except Exception as exc:  # its order's host is restarting: next round
                log.warning("feed event %s for %s not applied yet: %r", ev.seq, ev.order_id, exc)
                await self._work.feed_event_retry(ev.id, f"not delivered: {exc!r}")
                return decided
            if result.outcome is EventOutcome.NOT_YET:
                await self._work.feed_event_retry(ev.id, f"not yet: {result.reason}")
                return decided
            if result.outcome is EventOutcome.REFUSED:
                log.warning(
                    "%s feed event %s of supplier %s for order %r refused: %s",
                    ev.feed,
                    ev.seq,
                    self.supplier_id,
                    ev.order_id,
                    result.reason,
                )
            status = (
                FeedEventStatus.APPLIED
                if result.outcome is EventOutcome.APPLIED
                else FeedEventStatus.REFUSED
            )
            await self._work.feed_event_decided(ev.id, status, result.reason, self._clock())
            decided += 1
        return decided

    async def _apply(self, ev: FeedEvent) -> EventResult:
        host = self._router.for_order(ev.order_id)
        if ev.feed is Feed.REFUND:
            refunded_at = datetime.fromisoformat(ev.payload["refunded_at"])
            return await host.supplier_refunded(ev.order_id, self.supplier_id, refunded_at)
        return await host.delivery_update(ev.order_id, self.supplier_id, ev.payload["status"])


def _refund_payload(ev: SupplierRefundEvent) -> dict[str, Any]:
    return {"refunded_at": ev.refunded_at.isoformat()}


def _delivery_payload(ev: DeliveryUpdateEvent) -> dict[str, Any]:
    return {"status": ev.status, "at": ev.at.isoformat()}
