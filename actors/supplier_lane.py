"""A pooled supplier's locks and issues made from the order's own process: no second hop.

A lock is the call a distributor waits on before paying, an issue the one after. Through the
supplier's actor each is two Ray hops (order host → supplier host → supplier and back) beside
the supplier's own HTTP call; a `SupplierLane` in the order host calls the supplier's gateway
directly, while the supplier's actor stays the one home of everything else:

- **Statistics.** Each lock's and issue's outcome and latency is sent to the actor, a batch
  at most `flush_s` old (`lock_outcomes`), so its live statistics and polling policy count
  them.
- **The circuit breaker** is the actor's, and counts locks only. A lock that failed as the
  breaker counts failures is sent at once, with those before it, and its answer says whether
  the actor has seen failures since its last success. From the first such failure on, every
  lane routes its locks through the actor (the actor tells every order host:
  `suspect_supplier`), so the actor's breaker counts each one, opens after its threshold,
  fails fast while open and lets its one probe through, exactly as without lanes; the lane
  calls directly again once a lock through the actor succeeded (the breaker closed) or a
  batch's answer says so. An issue is never refused by the breaker, so it is always direct.
- **Limits.** A lane holds at most `max_concurrency` locks in flight (the supplier's limit
  shared among the order hosts), and as many issues, in slots of their own; a lock answers
  `busy` after `slot_wait_s` without a slot, an issue waits its turn.

An issue in flight dies with its order host, as a lock does: the order is `FIXING` on disk,
and the host that takes the order over finds it by its sweep and asks the supplier what
became of it. Refunds, releases and every query go through the actor. A lane is made for a
supplier in the pool that is not retired; a supplier scaled to dedicated replicas is called
through them (actors/directory.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from actors.interfaces import LockRecord, SupplierActorCalls
from actors.supplier_service import busy, take_slot
from domain.identity import Attendee
from domain.negotiation import PollingPolicy
from suppliers.gateway import (
    CallResult,
    IssueInfo,
    LockInfo,
    RefundInfo,
    SupplierGateway,
    breaks_circuit,
)

log = logging.getLogger(__name__)


class SupplierLane:
    def __init__(
        self,
        supplier_id: str,
        gateway: SupplierGateway,
        actor: SupplierActorCalls,
        *,
        max_concurrency: int,
        slot_wait_s: float = 2.0,
        flush_s: float = 0.5,
    ) -> None:
        self.supplier_id = supplier_id
        self._gateway = gateway
        self._actor = actor
        self._slots = asyncio.Semaphore(max(1, max_concurrency))
        # Issues have slots of their own: a slow issue (the buyer has paid, it waits as long
        # as it takes) never holds a lock back until it answers busy.
        self._issue_slots = asyncio.Semaphore(max(1, max_concurrency))
        self.calls = 0  # direct calls in flight: the lane is not closed under them
        self._slot_wait_s = slot_wait_s
        self._flush_s = flush_s
        self._pending: list[LockRecord] = []
        self._flushing: asyncio.Task[None] | None = None
        # Until the actor has said its breaker is closed with no failure since, locks go
        # through it (a new lane knows nothing of the breaker).
        self._through_actor = True
        # When the lane last learned of a failure: an answer to a call sent before that is
        # older news, and never sends the lane direct again.
        self._suspected_at = time.monotonic()
        self.used_at = time.monotonic()

    def suspect(self) -> None:
        """The actor has seen a lock fail: route locks through it until it is healthy."""
        self._through_actor = True
        self._suspected_at = time.monotonic()

    def _healthy_since(self, sent_at: float) -> None:
        """An answer to a call sent at `sent_at` says the breaker is closed, no failure."""
        if sent_at >= self._suspected_at:
            self._through_actor = False

    @property
    def direct(self) -> bool:
        return not self._through_actor

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[Attendee, ...] = (),
    ) -> CallResult[LockInfo]:
        self.used_at = time.monotonic()
        if self._through_actor:
            sent_at = time.monotonic()
            result = await self._actor.lock(order_id, session_ref, tier_ref, quantity, attendees)
            if not breaks_circuit(result.outcome, result.error):
                self._healthy_since(sent_at)  # the actor's breaker has just closed
            return result
        if not await take_slot(self._slots, self._slot_wait_s):
            return busy()
        started = time.perf_counter()
        self.calls += 1
        try:
            result = await self._gateway.lock(order_id, session_ref, tier_ref, quantity, attendees)
        finally:
            self.calls -= 1
            self._slots.release()
        self._note(result, started, "lock")
        if breaks_circuit(result.outcome, result.error):
            await self.flush()  # at once, after those before it: the breaker counts in order
        else:
            self._flush_soon()
        return result

    def _note(self, result: CallResult[Any], started: float, op: str) -> None:
        """A direct call's outcome and latency, for the actor's statistics."""
        latency_ms = (time.perf_counter() - started) * 1000.0
        self._pending.append(LockRecord(result.outcome, result.error, latency_ms, time.time(), op))

    def _flush_soon(self) -> None:
        if self._flushing is None:
            self._flushing = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._flush_s)
        finally:
            self._flushing = None  # outcomes from now on start a timer of their own
        await self.flush()

    async def flush(self) -> None:
        """Send the outcomes not sent yet to the supplier's actor."""
        records, self._pending = self._pending, []
        if not records:
            return
        sent_at = time.monotonic()
        try:
            # Bounded: a failed lock waits for this before it answers, and a stopped actor
            # must not hold the distributor's create longer than the lock's own slot wait.
            state, failures = await asyncio.wait_for(
                self._actor.lock_outcomes(records), self._slot_wait_s
            )
        except Exception as exc:  # the actor cannot count them now: route through it
            log.warning("lock outcomes of %s not delivered: %r", self.supplier_id, exc)
            self.suspect()
            return
        if state != "closed" or failures > 0:
            self.suspect()
        else:
            self._healthy_since(sent_at)

    async def issue(
        self, order_id: str, attendees: tuple[Attendee, ...] = ()
    ) -> CallResult[IssueInfo]:
        """Always direct: the breaker never refuses an issue (the buyer has paid), so there is
        nothing for the actor to decide; it waits for a slot as long as it takes."""
        self.used_at = time.monotonic()
        self.calls += 1
        try:
            async with self._issue_slots:
                started = time.perf_counter()
                result = await self._gateway.issue(order_id, attendees)
        finally:
            self.calls -= 1
        self._note(result, started, "issue")
        self._flush_soon()
        return result

    # -- everything else goes through the supplier's actor -----------------------------------
    async def release(self, order_id: str) -> CallResult[None]:
        return await self._actor.release(order_id)

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        return await self._actor.query_issue(order_id)

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._actor.refund(order_id)

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        return await self._actor.query_refund(order_id)

    async def policy(self) -> PollingPolicy:
        return await self._actor.policy()

    async def aclose(self) -> None:
        """Send what is pending and let the gateway go (the lane is being replaced)."""
        try:
            await self.flush()
        finally:
            await self._gateway.aclose()
