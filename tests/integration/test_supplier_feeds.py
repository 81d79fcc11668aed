"""No supplier event is ever dropped, on both databases: a supplier's feeds read by its worker
(`SupplierWorker.read_feeds`) into `supplier_events`, then applied through real order actors
(`OrderHostCore` over the order repository), with a fake gateway and fake supplier calls.

Each event is kept before the feed's cursor passes it; one that cannot apply yet (its order is
FIXING) stays pending and applies once the order can take it, with the money exact; one that
can never apply (another supplier's order, no such order) is refused and leaves every order as
it was."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.interfaces import CreateOrder, OrderHostCalls, SupplierCalls
from actors.order_actor import OrderHostCore
from actors.supplier_service import SupplierService
from actors.supplier_work import SupplierWorker
from domain.identity import Attendee
from domain.ids import order_id_for
from domain.negotiation import NegotiationKind, PollingPolicy
from domain.order import DeliveryMethod
from persistence.orders import OrderRepository
from persistence.tables import flows, supplier_events, supplier_refunds, suppliers
from persistence.work import Feed, FeedEventIn, FeedEventStatus, WorkRepository
from suppliers.gateway import (
    CallResult,
    Catalog,
    DeliveryUpdateEvent,
    IssueInfo,
    LockInfo,
    Outcome,
    RefundInfo,
    SupplierRefundEvent,
    Ticket,
)
from tests.integration.test_persistence import make_distributor, make_supplier

UNKNOWN: CallResult[Any] = CallResult(Outcome.UNKNOWN, error="timeout")
POLICY = PollingPolicy(timedelta(seconds=1), timedelta(minutes=1), adaptive=False)
ISSUED = CallResult(Outcome.DONE, IssueInfo((Ticket("T-1"), Ticket("T-2")), datetime.now(UTC)))
NOT_ISSUED: CallResult[IssueInfo] = CallResult(Outcome.FAILED, error="not_issued")
REFUNDED_AT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)  # the supplier's own time, days ago
# (kind, sign) of the flows of an order locked, issued and refunded: every one booked, once.
REFUNDED_FLOWS = [("receivable", -1), ("receivable", 1), ("settlement", -1), ("settlement", 1)]


# -- fakes -----------------------------------------------------------------------------------
@dataclass
class FakeSupplier:
    """What an order's actor asks its supplier: locks succeed; issues and refunds answer what
    the test sets."""

    issue_answer: CallResult[IssueInfo] = UNKNOWN
    refund_answer: CallResult[RefundInfo] = UNKNOWN

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[Attendee, ...] = (),
    ) -> CallResult[LockInfo]:
        return CallResult(Outcome.DONE, LockInfo(f"L-{order_id}"))

    async def release(self, order_id: str) -> CallResult[None]:
        return CallResult(Outcome.DONE)

    async def issue(
        self, order_id: str, attendees: tuple[Attendee, ...] = ()
    ) -> CallResult[IssueInfo]:
        return self.issue_answer

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        return UNKNOWN

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        return self.refund_answer

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        return UNKNOWN

    async def policy(self) -> PollingPolicy:
        return POLICY


@dataclass
class Directory:
    supplier: FakeSupplier

    async def get(self, supplier_id: str, order_id: str = "") -> SupplierCalls:
        return self.supplier

    def suspect(self, supplier_id: str) -> None:
        pass


@dataclass
class FakeFeeds:
    """A supplier gateway whose feeds say what the test appends (other calls are unused)."""

    refunds: list[SupplierRefundEvent] = field(default_factory=list)
    deliveries: list[DeliveryUpdateEvent] = field(default_factory=list)
    asked: list[tuple[str, int]] = field(default_factory=list)

    def add_refund(self, order_id: str, at: datetime = REFUNDED_AT) -> None:
        self.refunds.append(SupplierRefundEvent(len(self.refunds) + 1, order_id, at))

    def add_delivery(self, order_id: str, status: str) -> None:
        event = DeliveryUpdateEvent(len(self.deliveries) + 1, order_id, status, REFUNDED_AT)
        self.deliveries.append(event)

    async def supplier_refunds(self, since_seq: int) -> CallResult[list[SupplierRefundEvent]]:
        self.asked.append(("refund", since_seq))
        return CallResult(Outcome.DONE, [e for e in self.refunds if e.seq > since_seq])

    async def delivery_updates(self, since_seq: int) -> CallResult[list[DeliveryUpdateEvent]]:
        self.asked.append(("delivery", since_seq))
        return CallResult(Outcome.DONE, [e for e in self.deliveries if e.seq > since_seq])

    async def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: Sequence[Attendee] = (),
    ) -> CallResult[LockInfo]:
        raise NotImplementedError

    async def release(self, order_id: str) -> CallResult[None]:
        raise NotImplementedError

    async def issue(
        self, order_id: str, attendees: Sequence[Attendee] = ()
    ) -> CallResult[IssueInfo]:
        raise NotImplementedError

    async def query_issue(self, order_id: str) -> CallResult[IssueInfo]:
        raise NotImplementedError

    async def refund(self, order_id: str) -> CallResult[RefundInfo]:
        raise NotImplementedError

    async def query_refund(self, order_id: str) -> CallResult[RefundInfo]:
        raise NotImplementedError

    async def catalog(self) -> CallResult[Catalog]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


@dataclass
class Router:
    host: OrderHostCore
    failures: int = 0  # calls to fail before the host answers (a host restarting)

    def for_order(self, order_id: str) -> OrderHostCalls:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the order's host is restarting")
        return cast(OrderHostCalls, self.host)


@dataclass
class Platform:
    engine: AsyncEngine
    host: OrderHostCore
    supplier: FakeSupplier
    distributor_id: str
    supplier_id: str
    other_supplier_id: str
    feeds: FakeFeeds
    other_feeds: FakeFeeds
    router: Router
    worker: SupplierWorker
    other_worker: SupplierWorker
    work: WorkRepository
    orders: OrderRepository

    async def order(self, ref: str, *, express: bool = False, supplier_id: str = "") -> str:
        cmd = CreateOrder(
            order_id=order_id_for(self.distributor_id, ref),
            distributor_id=self.distributor_id,
            distributor_order_id=ref,
            supplier_id=supplier_id or self.supplier_id,
            session_id="ses_x",
            tier_id="tir_x",
            session_ref="S",
            tier_ref="T",
            quantity=2,
            unit_price=36000,
            settlement_price=32400,
            face_value=38000,
            currency="CNY",
            delivery_method=DeliveryMethod.EXPRESS if express else DeliveryMethod.ETICKET,
            delivery_address="上海市黄浦区人民大道1号" if express else None,
            buyer={"name": "张三", "phone": "13800000000"},
            callback_url=None,
            request_hash="ab" * 32,
        )
        reply = await self.host.create(cmd)
        assert reply.order is not None
        assert reply.order.status == "LOCKED"
        return cmd.order_id

    async def fixing(self, ref: str, **kw: Any) -> str:
        """An order whose issue's reply was lost: FIXING, negotiating."""
        order_id = await self.order(ref, **kw)
        self.supplier.issue_answer = UNKNOWN
        await self.host.issue(order_id, self.distributor_id)
        assert await self.status(order_id) == ("FIXING", "NONE")
        return order_id

    async def fixed(self, ref: str, **kw: Any) -> str:
        order_id = await self.order(ref, **kw)
        self.supplier.issue_answer = ISSUED
        await self.host.issue(order_id, self.distributor_id)
        assert (await self.status(order_id))[0] == "FIXED"
        return order_id

    async def status(self, order_id: str) -> tuple[str, str]:
        order = await self.orders.get(order_id)
        assert order is not None
        return order.status.value, order.delivery_status.value

    async def flows_of(self, order_id: str) -> list[tuple[str, int, datetime]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(flows.c.kind, flows.c.sign, flows.c.basis_time)
                .where(flows.c.order_id == order_id)
                .order_by(flows.c.id)
            )
            return [(r.kind, r.sign, r.basis_time) for r in rows]

    async def assert_refunded_money(self, order_id: str) -> None:
        """Receivable + and -, settlement + and -, the minus at the supplier's refund time."""
        got = await self.flows_of(order_id)
        assert sorted((k, s) for k, s, _ in got) == REFUNDED_FLOWS
        assert [t for k, s, t in got if (k, s) == ("settlement", -1)] == [REFUNDED_AT]

    async def events(self, supplier_id: str | None = None) -> list[dict[str, Any]]:
        q = select(supplier_events).order_by(supplier_events.c.id)
        if supplier_id is not None:
            q = q.where(supplier_events.c.supplier_id == supplier_id)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(q))]

    async def cursors(self, supplier_id: str) -> tuple[int, int]:
        return await self.work.feed_cursor(supplier_id)


@pytest.fixture
async def platform(engine: AsyncEngine, now: datetime) -> Platform:
    supplier = FakeSupplier()
    orders = OrderRepository(engine)
    host = OrderHostCore(
        orders, Directory(supplier), lock_ttl=timedelta(minutes=15), idle_seconds=60
    )
    dist = await make_distributor(engine, now)
    sup, other = await make_supplier(engine, now, "A"), await make_supplier(engine, now, "B")
    feeds, other_feeds = FakeFeeds(), FakeFeeds()
    router = Router(host)
    work = WorkRepository(engine)

    def worker(supplier_id: str, gateway: FakeFeeds) -> SupplierWorker:
        service = SupplierService(supplier_id, gateway, max_concurrency=4)
        return SupplierWorker(service, work, router)

    return Platform(
        engine,
        host,
        supplier,
        dist,
        sup,
        other,
        feeds,
        other_feeds,
        router,
        worker(sup, feeds),
        worker(other, other_feeds),
        work,
        orders,
    )


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="actors.supplier_work"):
        yield caplog


# -- kept before the cursor passes -----------------------------------------------------------
async def test_events_are_kept_once_and_the_cursor_moves_past_them_in_the_same_step(
    platform: Platform, now: datetime
) -> None:
    work, sup = platform.work, platform.supplier_id
    first = [FeedEventIn(1, "ord_a", {"refunded_at": now.isoformat()}), FeedEventIn(2, "ord_b", {})]
    await work.store_feed_events(sup, Feed.REFUND, first, now)
    assert await platform.cursors(sup) == (2, 0)
    # The same events again (a supplier repeating itself), one new, and an old one late.
    again = [*first, FeedEventIn(3, "ord_c", {}), FeedEventIn(1, "ord_z", {})]
    await work.store_feed_events(sup, Feed.REFUND, again, now)
    await work.store_feed_events(sup, Feed.DELIVERY, [FeedEventIn(1, "ord_a", {})], now)
    rows = await platform.events(sup)
    assert [(r["feed"], r["seq"], r["order_id"], r["status"]) for r in rows] == [
        ("refund", 1, "ord_a", "pending"),
        ("refund", 2, "ord_b", "pending"),
        ("refund", 3, "ord_c", "pending"),
        ("delivery", 1, "ord_a", "pending"),
    ]
    assert await platform.cursors(sup) == (3, 1)
    await work.store_feed_events(sup, Feed.REFUND, [FeedEventIn(1, "ord_a", {})], now)
    assert await platform.cursors(sup) == (3, 1)  # a cursor never moves back


async def test_an_order_id_that_cannot_be_ours_is_kept_refused_not_lost(
    platform: Platform, now: datetime
) -> None:
    sup = platform.supplier_id
    bad = [FeedEventIn(1, "x" * 500, {}), FeedEventIn(2, "ord\x00nul", {}), FeedEventIn(3, "", {})]
    await platform.work.store_feed_events(sup, Feed.REFUND, bad, now)
    rows = await platform.events(sup)
    assert [r["status"] for r in rows] == ["refused"] * 3
    assert all(len(r["order_id"]) <= 60 and "\x00" not in r["order_id"] for r in rows)
    assert all(r["last_error"].startswith("not an order id of the platform") for r in rows)
    assert await platform.cursors(sup) == (3, 0)
    assert await platform.work.pending_feed_events(sup) == []


async def test_orders_tried_least_come_first_with_all_their_events_in_order(
    platform: Platform, now: datetime
) -> None:
    work, sup = platform.work, platform.supplier_id
    events = [FeedEventIn(1, "stuck", {}), FeedEventIn(2, "stuck", {}), FeedEventIn(3, "new", {})]
    await work.store_feed_events(sup, Feed.DELIVERY, events, now)
    first = (await work.pending_feed_events(sup))[0]
    await work.feed_event_retry(first.id, "not yet: the order is FIXING")
    assert [e.order_id for e in await work.pending_feed_events(sup, orders=1)] == ["new"]
    both = await work.pending_feed_events(sup, orders=2)
    assert [(e.order_id, e.seq) for e in both] == [("stuck", 1), ("stuck", 2), ("new", 3)]
    assert (both[0].attempts, both[0].last_error) == (1, "not yet: the order is FIXING")


async def test_a_flooded_order_feed_is_read_a_bounded_slice_at_a_time(
    platform: Platform, now: datetime
) -> None:
    work, sup = platform.work, platform.supplier_id
    flood = [FeedEventIn(seq, "flooded", {}) for seq in range(1, 121)]
    await work.store_feed_events(sup, Feed.DELIVERY, [*flood, FeedEventIn(121, "other", {})], now)
    read = await work.pending_feed_events(sup, per_order=50)
    assert [(e.order_id, e.seq) for e in read] == [
        *(("flooded", seq) for seq in range(1, 51)),
        ("other", 121),
    ]


# -- refunds ---------------------------------------------------------------------------------
async def test_a_refund_while_fixing_waits_then_ends_refunded_with_exact_money(
    platform: Platform,
) -> None:
    order_id = await platform.fixing("D-fixing")
    platform.feeds.add_refund(order_id)
    assert await platform.worker.read_feeds() == 0
    assert await platform.status(order_id) == ("FIXING", "NONE")
    [event] = await platform.events()
    assert (event["status"], event["attempts"]) == ("pending", 1)
    assert event["last_error"] == "not yet: the order is FIXING"
    assert await platform.cursors(platform.supplier_id) == (1, 0)  # kept, so passed
    assert await platform.worker.read_feeds() == 0  # still FIXING: asked again, still waits
    assert (await platform.events())[0]["attempts"] == 2

    # The negotiation's poll finds it issued: FIXED with its tickets, then the refund applies.
    await platform.host.negotiation_answer(order_id, NegotiationKind.ISSUE, ISSUED)
    assert await platform.status(order_id) == ("FIXED", "DELIVERED")
    assert await platform.worker.read_feeds() == 1
    assert await platform.status(order_id) == ("REFUNDED", "DELIVERED")
    [event] = await platform.events()
    assert event["status"] == "applied"
    assert event["applied_at"] is not None
    await platform.assert_refunded_money(order_id)
    async with platform.engine.connect() as conn:
        record = (
            await conn.execute(
                select(supplier_refunds).where(supplier_refunds.c.order_id == order_id)
            )
        ).one()
    assert (record.refunded_at, record.initiated_by) == (REFUNDED_AT, "supplier")
    assert await platform.worker.read_feeds() == 0  # nothing left, nothing applied twice


async def test_a_refund_while_fixing_is_nothing_to_do_once_the_poll_finds_it_not_issued(
    platform: Platform,
) -> None:
    order_id = await platform.fixing("D-not-issued")
    platform.feeds.add_refund(order_id)
    await platform.worker.read_feeds()
    await platform.host.negotiation_answer(order_id, NegotiationKind.ISSUE, NOT_ISSUED)
    assert await platform.status(order_id) == ("CANCELED", "NONE")
    assert await platform.worker.read_feeds() == 1
    [event] = await platform.events()
    assert event["status"] == "applied"
    assert await platform.status(order_id) == ("CANCELED", "NONE")
    assert sorted((k, s) for k, s, _ in await platform.flows_of(order_id)) == [
        ("receivable", -1),
        ("receivable", 1),
    ]


async def test_a_refund_after_refund_fail_ends_refunded_with_its_flows(platform: Platform) -> None:
    order_id = await platform.fixed("D-refund-fail")
    platform.supplier.refund_answer = CallResult(Outcome.FAILED, error="refused")
    reply = await platform.host.refund(order_id, platform.distributor_id, "buyer")
    assert reply.order is not None
    assert reply.order.status == "REFUND_FAIL"
    assert sorted((k, s) for k, s, _ in await platform.flows_of(order_id)) == [
        ("receivable", 1),
        ("settlement", 1),
    ]
    platform.feeds.add_refund(order_id)
    assert await platform.worker.read_feeds() == 1
    assert await platform.status(order_id) == ("REFUNDED", "DELIVERED")
    order = await platform.orders.get(order_id)
    assert order is not None
    assert [h.status.value for h in order.history][-3:] == ["REFUNDING", "REFUND_FAIL", "REFUNDED"]
    assert order.failure_reason is None
    await platform.assert_refunded_money(order_id)


async def test_a_refund_of_a_fixed_order_applies_at_once(platform: Platform) -> None:
    order_id = await platform.fixed("D-fixed")
    platform.feeds.add_refund(order_id)
    assert await platform.worker.read_feeds() == 1
    assert await platform.status(order_id) == ("REFUNDED", "DELIVERED")


# -- only the feed's own supplier's orders ---------------------------------------------------
async def test_an_event_naming_another_suppliers_order_is_refused_and_touches_nothing(
    platform: Platform, warnings: pytest.LogCaptureFixture
) -> None:
    order_id = await platform.fixed("D-foreign", express=True)
    before = await platform.orders.get(order_id)
    flows_before = await platform.flows_of(order_id)
    platform.other_feeds.add_refund(order_id)
    platform.other_feeds.add_delivery(order_id, "SHIPPED")
    assert await platform.other_worker.read_feeds() == 2
    rows = await platform.events(platform.other_supplier_id)
    assert [(r["feed"], r["status"]) for r in rows] == [
        ("refund", "refused"),
        ("delivery", "refused"),
    ]
    assert {r["last_error"] for r in rows} == {"the order is another supplier's"}
    after = await platform.orders.get(order_id)
    assert after is not None
    assert before is not None
    assert (after.status, after.delivery_status, after.version) == (
        before.status,
        before.delivery_status,
        before.version,
    )
    assert await platform.flows_of(order_id) == flows_before
    assert await platform.work.supplier_refund_of(order_id) is None
    refused = [r for r in warnings.records if "refused" in r.getMessage()]
    assert len(refused) == 2
    assert platform.other_supplier_id in refused[0].getMessage()


async def test_an_event_for_no_order_or_an_order_never_issued_is_refused(
    platform: Platform,
) -> None:
    locked = await platform.order("D-locked")
    platform.feeds.add_refund("ord_nobody")
    platform.feeds.add_refund(locked)
    platform.feeds.add_delivery(locked, "SHIPPED")
    assert await platform.worker.read_feeds() == 3
    assert [(r["status"], r["last_error"]) for r in await platform.events()] == [
        ("refused", "no such order"),
        ("refused", "the order was never issued (LOCKED)"),
        ("refused", "the order was never issued (LOCKED)"),
    ]
    assert await platform.status(locked) == ("LOCKED", "NONE")


# -- deliveries ------------------------------------------------------------------------------
async def test_delivery_steps_while_fixing_wait_and_then_apply_in_order(
    platform: Platform,
) -> None:
    order_id = await platform.fixing("D-express", express=True)
    platform.feeds.add_delivery(order_id, "SHIPPED")
    platform.feeds.add_delivery(order_id, "DELIVERED")
    assert await platform.worker.read_feeds() == 0
    rows = await platform.events()
    # The first waits (one attempt); the second waits behind it, not asked at all.
    assert [(r["status"], r["attempts"]) for r in rows] == [("pending", 1), ("pending", 0)]
    await platform.host.negotiation_answer(order_id, NegotiationKind.ISSUE, ISSUED)
    assert await platform.status(order_id) == ("FIXED", "PENDING")
    assert await platform.worker.read_feeds() == 2
    assert await platform.status(order_id) == ("FIXED", "DELIVERED")
    assert [r["status"] for r in await platform.events()] == ["applied", "applied"]


async def test_a_delivery_step_the_machine_does_not_allow_is_refused_a_repeat_is_applied(
    platform: Platform,
) -> None:
    order_id = await platform.fixed("D-eticket")  # e-tickets are DELIVERED when issued
    platform.feeds.add_delivery(order_id, "DELIVERED")
    platform.feeds.add_delivery(order_id, "SHIPPED")
    assert await platform.worker.read_feeds() == 2
    assert [(r["status"], r["last_error"]) for r in await platform.events()] == [
        ("applied", None),
        ("refused", "delivery DELIVERED does not move to SHIPPED"),
    ]


# -- the order's host unreachable ------------------------------------------------------------
async def test_an_event_whose_host_cannot_be_reached_stays_pending_and_applies_later(
    platform: Platform, warnings: pytest.LogCaptureFixture
) -> None:
    order_id = await platform.fixed("D-host-down")
    platform.feeds.add_refund(order_id)
    platform.router.failures = 1
    assert await platform.worker.read_feeds() == 0
    [event] = await platform.events()
    assert event["status"] == "pending"
    assert event["last_error"].startswith("not delivered: ConnectionError")
    assert "not applied yet" in warnings.text
    assert await platform.worker.read_feeds() == 1
    assert await platform.status(order_id) == ("REFUNDED", "DELIVERED")


async def test_the_cursor_is_kept_on_the_suppliers_row(platform: Platform) -> None:
    order_id = await platform.fixing("D-cursor")
    platform.feeds.add_refund(order_id)
    await platform.worker.read_feeds()
    async with platform.engine.connect() as conn:
        row = (
            await conn.execute(
                select(suppliers.c.refund_feed_seq).where(suppliers.c.id == platform.supplier_id)
            )
        ).one()
    assert row.refund_feed_seq == 1
    await platform.worker.read_feeds()
    assert platform.feeds.asked[-2:] == [("refund", 1), ("delivery", 0)]
    assert [r["status"] for r in await platform.events()] == [FeedEventStatus.PENDING.value]
