"""A supplier's lane (actors/supplier_lane.py) beside the supplier's real service, which plays
its actor: the service is called in-process instead of over Ray. The supplier itself is a
scripted gateway (the boundary)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actors.interfaces import LockRecord
from actors.supplier_lane import SupplierLane
from actors.supplier_service import SupplierService
from domain.circuit import CircuitBreaker
from suppliers.gateway import CallResult, ErrorCode, IssueInfo, LockInfo, Outcome


@dataclass
class Box:
    """The supplier: answers locks as `failing` says, holding each `hold_s`."""

    failing: bool = False
    hold_s: float = 0.0
    locks: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    issue_outcome: Outcome = Outcome.DONE

    async def lock(self, order_id: str, *_: Any) -> CallResult[LockInfo]:
        self.locks.append(order_id)
        await asyncio.sleep(self.hold_s)
        if self.failing:
            return CallResult(Outcome.FAILED, error=ErrorCode.HTTP_5XX, message="boom")
        return CallResult(Outcome.DONE, LockInfo(lock_ref=f"L-{order_id}"))

    async def issue(self, order_id: str, *_: Any) -> CallResult[IssueInfo]:
        self.issues.append(order_id)
        await asyncio.sleep(self.hold_s)
        if self.issue_outcome is Outcome.DONE:
            return CallResult(Outcome.DONE, IssueInfo((), datetime(2026, 12, 2, tzinfo=UTC)))
        return CallResult(self.issue_outcome, error=ErrorCode.TIMEOUT, message="no answer")

    async def aclose(self) -> None:
        pass


@dataclass
class ActorOf:
    """The supplier service as its actor answers a lane (the calls a lane makes)."""

    service: SupplierService
    locks_through: int = 0

    async def lock(self, order_id: str, *args: Any) -> CallResult[LockInfo]:
        self.locks_through += 1
        return await self.service.lock(order_id, *args)

    async def lock_outcomes(self, records: list[LockRecord]) -> tuple[str, int]:
        return self.service.absorb_locks(records)

    async def issue(self, order_id: str, *args: Any) -> CallResult[IssueInfo]:
        raise AssertionError("a lane's issue does not go through the actor")


def _lane(box: Box, *, failures: int = 3, slots: int = 8) -> tuple[SupplierLane, ActorOf]:
    service = SupplierService(
        "sup_1",
        box,  # type: ignore[arg-type]
        max_concurrency=64,
        breaker=CircuitBreaker(failures, cooldown_s=60.0),
    )
    actor = ActorOf(service)
    lane = SupplierLane("sup_1", box, actor, max_concurrency=slots, flush_s=0.05)  # type: ignore[arg-type]
    return lane, actor


async def _lock(lane: SupplierLane, order_id: str) -> CallResult[LockInfo]:
    return await lane.lock(order_id, "s", "t", 1)


async def test_a_new_lane_asks_through_the_actor_then_calls_directly() -> None:
    box = Box()
    lane, actor = _lane(box)
    routes = [lane.direct]
    assert (await _lock(lane, "o1")).outcome is Outcome.DONE
    routes.append(lane.direct)
    assert routes == [False, True]  # through the actor, then direct
    assert actor.locks_through == 1
    for i in range(5):
        assert (await _lock(lane, f"o{i + 2}")).outcome is Outcome.DONE
    assert actor.locks_through == 1  # the five went straight to the supplier
    assert len(box.locks) == 6


async def test_direct_outcomes_reach_the_actors_statistics_in_a_batch() -> None:
    box = Box()
    lane, actor = _lane(box)
    await _lock(lane, "o0")  # (through the actor)
    calls = actor.service.current_stats().calls
    await asyncio.gather(*(_lock(lane, f"o{i}") for i in range(1, 11)))
    assert actor.service.current_stats().calls == calls  # not sent yet
    await asyncio.sleep(0.15)
    stats = actor.service.current_stats()
    assert (stats.calls, stats.done) == (calls + 10, calls + 10)


async def test_a_failed_lock_is_counted_before_it_answers_and_the_breaker_opens() -> None:
    box = Box()
    lane, actor = _lane(box, failures=3)
    await _lock(lane, "o0")
    box.failing = True
    failed = await _lock(lane, "o1")  # direct: reported at once
    assert failed.outcome is Outcome.FAILED
    assert actor.service.current_stats().failed == 1
    assert not lane.direct  # from now on through the actor, whose breaker counts each
    await _lock(lane, "o2")
    await _lock(lane, "o3")
    assert actor.service.current_stats().circuit == "open"
    called = len(box.locks)
    short = await _lock(lane, "o4")
    assert (short.outcome, short.error) == (Outcome.FAILED, ErrorCode.CIRCUIT_OPEN)
    assert len(box.locks) == called  # the supplier was not asked


async def test_a_suspected_lane_goes_through_the_actor_until_a_lock_succeeds() -> None:
    box = Box()
    lane, actor = _lane(box)
    await _lock(lane, "o0")
    lane.suspect()  # (another host's lane saw a failure)
    await _lock(lane, "o1")
    assert actor.locks_through == 2
    await _lock(lane, "o2")
    assert actor.locks_through == 2


async def test_an_old_success_does_not_close_what_a_newer_failure_counted() -> None:
    service = SupplierService(
        "sup_1",
        Box(),  # type: ignore[arg-type]
        max_concurrency=4,
        breaker=CircuitBreaker(2, 60.0),
    )
    fail = LockRecord(Outcome.FAILED, ErrorCode.TIMEOUT, 5.0, at=100.0)
    old_ok = LockRecord(Outcome.DONE, None, 5.0, at=99.0)
    assert service.absorb_locks([fail]) == ("closed", 1)
    assert service.absorb_locks([old_ok]) == ("closed", 1)  # older news: still one failure
    assert service.absorb_locks([fail]) == ("open", 2)


async def test_a_full_lane_answers_busy() -> None:
    box = Box(hold_s=0.5)
    lane, _ = _lane(box, slots=2)
    lane._slot_wait_s = 0.05  # (a test's patience)
    await _lock(lane, "warm")  # through the actor, then direct
    answers = await asyncio.gather(*(_lock(lane, f"o{i}") for i in range(3)))
    assert sorted(a.error or "ok" for a in answers) == ["busy", "ok", "ok"]


async def test_a_host_lets_go_of_lanes_unused_for_a_while() -> None:
    from actors.config import PlatformConfig
    from actors.directory import RaySupplierDirectory

    platform = PlatformConfig("unit", "unit", "sqlite+aiosqlite:///:memory:")
    directory = RaySupplierDirectory(None, platform)  # type: ignore[arg-type]
    old, fresh = _lane(Box())[0], _lane(Box())[0]
    old.used_at -= 300.0
    directory._lanes = {"sup_old": ("{}", old), "sup_fresh": ("{}", fresh)}
    assert directory.drop_idle_lanes(120.0) == 1
    assert set(directory._lanes) == {"sup_fresh"}
    await asyncio.sleep(0.01)  # (its gateway is closed by a task of its own)


async def test_a_stopped_actor_holds_a_failed_lock_no_longer_than_the_slot_wait() -> None:
    box = Box()
    lane, actor = _lane(box)
    await _lock(lane, "o0")  # (through the actor: the lane is direct now)
    lane._slot_wait_s = 0.2

    async def never(records: list[LockRecord]) -> tuple[str, int]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    actor.lock_outcomes = never  # type: ignore[method-assign]
    box.failing = True
    started = asyncio.get_running_loop().time()
    failed = await _lock(lane, "o1")
    assert failed.outcome is Outcome.FAILED
    assert asyncio.get_running_loop().time() - started < 1.0
    assert lane.direct is False  # the actor could not be told: locks go through it


async def test_an_answer_older_than_a_suspicion_does_not_send_the_lane_direct() -> None:
    box = Box()
    lane, actor = _lane(box)
    await _lock(lane, "o0")  # (through the actor: direct now)
    absorb = actor.lock_outcomes

    async def slow(records: list[LockRecord]) -> tuple[str, int]:
        answer = await absorb(records)  # computed now: closed, no failure
        await asyncio.sleep(0.2)  # ... and delivered late
        return answer

    actor.lock_outcomes = slow  # type: ignore[method-assign]
    await _lock(lane, "o1")
    flushing = asyncio.ensure_future(lane.flush())
    await asyncio.sleep(0.05)
    lane.suspect()  # another host's lane saw a failure meanwhile
    await flushing
    assert lane.direct is False


async def test_an_issue_goes_direct_and_is_counted_in_the_actors_statistics() -> None:
    box = Box()
    lane, actor = _lane(box)
    lane.suspect()  # even while locks go through the actor: the breaker never refuses one
    calls = actor.service.current_stats().calls
    answers = await asyncio.gather(*(lane.issue(f"o{i}") for i in range(5)))
    assert all(a.outcome is Outcome.DONE for a in answers)
    assert box.issues == [f"o{i}" for i in range(5)]  # (ActorOf.issue would have raised)
    await asyncio.sleep(0.15)  # (the batch)
    stats = actor.service.current_stats()
    assert (stats.calls, stats.done) == (calls + 5, 5)


async def test_unknown_issues_are_counted_but_never_open_the_breaker() -> None:
    box = Box(issue_outcome=Outcome.UNKNOWN)
    lane, actor = _lane(box, failures=2)
    await _lock(lane, "warm")  # (through the actor: the lane is direct now)
    for i in range(4):
        assert (await lane.issue(f"o{i}")).outcome is Outcome.UNKNOWN
    await lane.flush()
    stats = actor.service.current_stats()
    assert (stats.unknown, stats.circuit) == (4, "closed")
    assert lane.direct  # the batch's answer: no lock failed
    assert (await _lock(lane, "o9")).outcome is Outcome.DONE


async def test_an_issue_waits_for_a_slot_rather_than_answer_busy() -> None:
    box = Box(hold_s=0.2)
    lane, _ = _lane(box, slots=1)
    lane._slot_wait_s = 0.05  # (a lock would give up after this)
    answers = await asyncio.gather(*(lane.issue(f"o{i}") for i in range(3)))
    assert [a.outcome for a in answers] == [Outcome.DONE] * 3


async def test_an_issue_in_flight_never_makes_a_lock_answer_busy() -> None:
    box = Box(hold_s=0.3)
    lane, _ = _lane(box, slots=1)
    lane._slot_wait_s = 0.05
    await _lock(lane, "warm")  # (through the actor: the lane is direct now)
    issuing = asyncio.ensure_future(lane.issue("o1"))
    await asyncio.sleep(0.01)
    assert lane.calls == 1
    assert (await _lock(lane, "o2")).outcome is Outcome.DONE  # its own slot, not busy
    assert (await issuing).outcome is Outcome.DONE
    assert lane.calls == 0


async def test_a_lane_let_go_is_closed_only_once_its_issue_has_answered() -> None:
    from actors.directory import _close_later

    closed: list[bool] = []

    class Closing(Box):
        async def aclose(self) -> None:
            closed.append(True)

    box = Closing(hold_s=0.4)
    lane, _ = _lane(box)
    issuing = asyncio.ensure_future(lane.issue("o1"))
    await asyncio.sleep(0.01)
    await _close_later(lane, 0.0)
    assert issuing.done()  # the close waited for the issue's answer
    assert len(closed) == 1
    assert (await issuing).outcome is Outcome.DONE
