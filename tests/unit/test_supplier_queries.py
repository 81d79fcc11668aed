"""A query of an issue or a refund the supplier's service itself still has in flight (queued
for a call slot, or on the wire) answers PENDING without asking the supplier: the supplier
has not heard of the command yet and would say "not issued", and an order whose host was
lost (its node gone) while the command waited would be canceled before it is issued. The
supplier is a scripted gateway (the boundary)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actors.supplier_service import SupplierService
from suppliers.gateway import CallResult, ErrorCode, IssueInfo, Outcome, RefundInfo

AT = datetime(2026, 12, 2, tzinfo=UTC)
ISSUED = IssueInfo(tickets=(), issued_at=AT)
REFUNDED = RefundInfo(refunded_at=AT, initiated_by="platform")


@dataclass
class Box:
    """The supplier: a command is heard (and done) once `go` is set; a query answers what
    it has heard."""

    go: asyncio.Event = field(default_factory=asyncio.Event)
    heard: list[tuple[str, str]] = field(default_factory=list)
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def issue(self, order_id: str, *_: Any) -> CallResult[IssueInfo]:
        await self.go.wait()
        self.heard.append(("issue", order_id))
        return CallResult(Outcome.DONE, ISSUED)

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        await self.go.wait()
        self.heard.append(("refund", order_id))
        return CallResult(Outcome.DONE, REFUNDED)

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        return self._query("issue", order_id, ErrorCode.NOT_ISSUED)

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        return self._query("refund", order_id, ErrorCode.NOT_REFUNDED)

    def _query(self, kind: str, order_id: str, no: ErrorCode) -> CallResult[Any]:
        self.asked.append((kind, order_id))
        if (kind, order_id) in self.heard:
            return CallResult(Outcome.DONE, ISSUED if kind == "issue" else REFUNDED)
        return CallResult(Outcome.FAILED, error=no)

    async def aclose(self) -> None:
        pass


def _service(box: Box, slots: int = 4) -> SupplierService:
    return SupplierService("sup_1", box, max_concurrency=slots)  # type: ignore[arg-type]


async def test_an_issue_in_flight_is_pending_to_a_query_until_it_is_answered() -> None:
    box = Box()
    service = _service(box)
    issuing = asyncio.ensure_future(service.issue("o1"))
    await asyncio.sleep(0)  # (the issue is on its way to the supplier)
    pending = await service.query_issue("o1")
    assert (pending.outcome, pending.error) == (Outcome.UNKNOWN, ErrorCode.PENDING)
    assert box.asked == []  # the supplier was not asked
    other = await service.query_issue("o2")  # another order is asked as usual
    assert (other.outcome, other.error) == (Outcome.FAILED, ErrorCode.NOT_ISSUED)
    box.go.set()
    assert (await issuing).outcome is Outcome.DONE
    after = await service.query_issue("o1")
    assert after.outcome is Outcome.DONE
    assert box.asked == [("issue", "o2"), ("issue", "o1")]


async def test_an_issue_waiting_for_a_call_slot_is_pending_too() -> None:
    box = Box()
    service = _service(box, slots=1)
    first = asyncio.ensure_future(service.issue("o1"))
    queued = asyncio.ensure_future(service.issue("o2"))  # waits for the one slot
    await asyncio.sleep(0)
    assert (await asyncio.wait_for(service.query_issue("o2"), 1.0)).error == ErrorCode.PENDING
    box.go.set()
    await asyncio.gather(first, queued)
    assert box.heard == [("issue", "o1"), ("issue", "o2")]
    assert (await service.query_issue("o2")).outcome is Outcome.DONE


async def test_a_refund_in_flight_is_pending_to_its_query_not_to_the_issue_query() -> None:
    box = Box(heard=[("issue", "o1")])
    service = _service(box)
    refunding = asyncio.ensure_future(service.refund("o1"))
    await asyncio.sleep(0)
    assert (await service.query_refund("o1")).error == ErrorCode.PENDING
    assert (await service.query_issue("o1")).outcome is Outcome.DONE  # issued before
    box.go.set()
    await refunding
    assert (await service.query_refund("o1")).outcome is Outcome.DONE


async def test_a_failed_issue_leaves_nothing_pending() -> None:
    class Failing(Box):
        async def issue(self, order_id: str, *_: Any) -> CallResult[IssueInfo]:
            raise ConnectionError("the wire broke")

    box = Failing()
    service = _service(box)
    try:
        await service.issue("o1")
    except ConnectionError:
        pass
    else:
        raise AssertionError("the issue should have raised")
    assert (await service.query_issue("o1")).error == ErrorCode.NOT_ISSUED
