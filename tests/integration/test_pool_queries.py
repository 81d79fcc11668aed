"""The supplier pool's due-work queries: every pooled supplier's due negotiations and
releases at once, at most a share of each supplier's, or those of named suppliers only; a
supplier with dedicated replicas is left to them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.negotiation import PollingPolicy
from persistence.catalog import CatalogRepository
from persistence.orders import OrderRepository
from persistence.work import Negotiation, PendingRelease, WorkRepository
from tests.integration.test_persistence import make_distributor, make_supplier, new_order


async def test_pooled_due_work_is_read_per_supplier_with_a_share_each(
    engine: AsyncEngine, now: datetime
) -> None:
    orders, work = OrderRepository(engine), WorkRepository(engine)
    d = await make_distributor(engine, now)
    busy = await make_supplier(engine, now, "busy")
    quiet = await make_supplier(engine, now, "quiet")
    scaled = await make_supplier(engine, now, "big")
    await CatalogRepository(engine).set_replicas(scaled, 3)
    policy = PollingPolicy(timedelta(seconds=1), timedelta(hours=1), adaptive=True)

    async def negotiating(sup: str, ref: str) -> None:
        order = new_order(d, sup, ref, now)
        await orders.insert_new(order)
        order.mark_locked(now, "L", now + timedelta(minutes=15))
        order.start_fixing(now)
        order.negotiate(now, policy, poll_at=now)
        await orders.save(order)

    async def releasing(sup: str, ref: str) -> None:
        order = new_order(d, sup, ref, now)
        await orders.insert_new(order)
        order.mark_lock_failed(now, "timeout", seats_may_be_held=True)
        await orders.save(order)

    for i in range(5):
        await negotiating(busy, f"N-{i}")
        await releasing(busy, f"R-{i}")
    await negotiating(quiet, "N-q")
    await releasing(quiet, "R-q")
    await negotiating(scaled, "N-s")
    await releasing(scaled, "R-s")
    later = now + timedelta(seconds=5)

    def count(rows: Sequence[Negotiation | PendingRelease]) -> dict[str, int]:
        found: dict[str, int] = {}
        for r in rows:
            found[r.supplier_id] = found.get(r.supplier_id, 0) + 1
        return found

    assert count(await work.due_negotiations_pooled(later)) == {busy: 5, quiet: 1}
    assert count(await work.due_releases_pooled(later)) == {busy: 5, quiet: 1}
    capped = await work.due_negotiations_pooled(later, per_supplier=2)
    assert count(capped) == {busy: 2, quiet: 1}
    assert count(await work.due_releases_pooled(later, per_supplier=2, limit=2)) in (
        {busy: 2},
        {busy: 1, quiet: 1},
    )
    assert count(await work.due_negotiations_pooled(later, [quiet, scaled])) == {quiet: 1}
    assert count(await work.due_releases_pooled(later, [quiet])) == {quiet: 1}
    assert await work.due_negotiations_pooled(now - timedelta(seconds=1)) == []
