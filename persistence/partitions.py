"""The assignment of the orders' partitions to order hosts, kept in the database
(`order_partitions`, `order_host_plan`; rules in `domain.partitions`).

A change of the number of hosts is two steps, each a transaction that bumps the version:
`plan` names, for each partition that must move, the host it goes to (`moving_to`); then each
old owner, once it has stopped taking moves for such a partition and finished the ones in
flight, `hand_off`s it (owner := moving_to). A plan is refused while one is still being
carried out, so two never interleave. Whoever dies in between (the old owner, whoever asked),
the rows say what is left to do.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.partitions import PARTITIONS, Assignment, balanced, check_hosts, initial
from persistence.db import statement_reads
from persistence.tables import order_host_plan, order_partitions

_PLAN_ID = 1


class ScalingInProgress(Exception):
    """A change of the order hosts is still being carried out."""

    def __init__(self, assignment: Assignment) -> None:
        super().__init__(f"{len(assignment.moving_to)} partitions are still being handed over")
        self.assignment = assignment


class PartitionRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = statement_reads(engine)  # (the version poll: one row, often)

    async def ensure(self, hosts: int) -> Assignment:
        """The assignment; a database that has none gets one over `hosts` hosts (its first
        start). The number of hosts of an existing one is not changed here (`plan` does)."""
        found = await self.read()
        if found is not None:
            return found
        check_hosts(hosts)
        try:
            async with self._engine.begin() as conn:
                # Two starting processes may race: the plan row's primary key lets one win.
                await conn.execute(
                    insert(order_host_plan).values(id=_PLAN_ID, hosts=hosts, version=1)
                )
                await conn.execute(delete(order_partitions))
                await conn.execute(
                    insert(order_partitions),
                    [{"partition": p, "host": h} for p, h in enumerate(initial(hosts))],
                )
        except IntegrityError:
            pass  # the other one made it
        found = await self.read()
        assert found is not None
        return found

    async def version(self) -> int | None:
        """The assignment's version (one row read): what routers poll."""
        async with self._reads.connect() as conn:
            v = await conn.scalar(
                select(order_host_plan.c.version).where(order_host_plan.c.id == _PLAN_ID)
            )
        return None if v is None else int(v)

    async def read(self) -> Assignment | None:
        async with self._engine.connect() as conn:
            return await _read(conn)

    async def plan(self, hosts: int) -> Assignment:
        """Ask for `hosts` order hosts: the partitions that must move are marked with where
        they go (none, if the partitions already sit so). ScalingInProgress while an earlier
        plan is not carried out."""
        check_hosts(hosts)
        current = await self.read()
        if current is None:
            raise LookupError("the order hosts' assignment was never made (ensure first)")
        if not current.settled:
            raise ScalingInProgress(current)
        async with self._engine.begin() as conn:
            # A compare-and-set on the version read: of two plans (or a plan and a handover)
            # at once, one goes on and the other finds the version moved.
            taken = await conn.execute(
                update(order_host_plan)
                .where(
                    order_host_plan.c.id == _PLAN_ID, order_host_plan.c.version == current.version
                )
                .values(hosts=hosts, version=order_host_plan.c.version + 1)
            )
            if taken.rowcount != 1:
                raise ScalingInProgress(current)
            target = balanced(current.owners, hosts)
            moves = [
                (p, to)
                for p, (h, to) in enumerate(zip(current.owners, target, strict=True))
                if h != to
            ]
            for p, to in moves:
                await conn.execute(
                    update(order_partitions)
                    .where(order_partitions.c.partition == p)
                    .values(moving_to=to)
                )
            after = await _read(conn)
        assert after is not None
        return after

    async def hand_off(self, host: int, partitions: Collection[int]) -> int:
        """`host` has let go of `partitions`: each that it still owns and is moving goes to
        its new owner. Returns how many did."""
        if not partitions:
            return 0
        async with self._engine.begin() as conn:
            # The plan row first (as `plan` takes it): the two never deadlock.
            await conn.execute(
                select(order_host_plan.c.id)
                .where(order_host_plan.c.id == _PLAN_ID)
                .with_for_update()
            )
            c = order_partitions.c
            result = await conn.execute(
                update(order_partitions)
                .where(
                    c.partition.in_(sorted(partitions)),
                    c.host == host,
                    c.moving_to.is_not(None),
                )
                .values(host=c.moving_to, moving_to=None)
            )
            moved = int(result.rowcount or 0)
            if moved:
                await conn.execute(
                    update(order_host_plan)
                    .where(order_host_plan.c.id == _PLAN_ID)
                    .values(version=order_host_plan.c.version + 1)
                )
        return moved


async def _plan_row(conn: AsyncConnection) -> Any:
    return (
        await conn.execute(
            select(order_host_plan.c.hosts, order_host_plan.c.version).where(
                order_host_plan.c.id == _PLAN_ID
            )
        )
    ).first()


async def _read(conn: AsyncConnection) -> Assignment | None:
    """The assignment as of one version: the plan row is read before and after the rows
    (every change bumps the version in the transaction that makes it), and all is read again
    if a change committed in between."""
    c = order_partitions.c
    while True:
        plan = await _plan_row(conn)
        if plan is None:
            return None
        rows = (await conn.execute(select(c.partition, c.host, c.moving_to))).all()
        after = await _plan_row(conn)
        if after is not None and after.version == plan.version:
            break
    owners = [0] * PARTITIONS
    moving: dict[int, int] = {}
    for p, h, to in rows:
        owners[p] = h
        if to is not None:
            moving[p] = to
    if len(rows) != PARTITIONS:
        raise RuntimeError(f"order_partitions holds {len(rows)} rows, not {PARTITIONS}")
    return Assignment(tuple(owners), moving, hosts=int(plan.hosts), version=int(plan.version))
