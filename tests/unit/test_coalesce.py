"""Identical calls in flight at once share one call; calls after it make their own."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.single_flight import SingleFlight


class Host:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.fail = False

    async def issue(self) -> str:
        self.calls += 1
        n = self.calls
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("host restarting")
        return f"reply {n}"


async def test_concurrent_identical_calls_share_one() -> None:
    c: SingleFlight[str, str] = SingleFlight()
    host = Host()
    waiting = [asyncio.ensure_future(c.run("ord_1", host.issue)) for _ in range(200)]
    await asyncio.sleep(0)
    assert len(c) == 1
    host.gate.set()
    assert await asyncio.gather(*waiting) == ["reply 1"] * 200
    assert host.calls == 1
    assert len(c) == 0
    assert await c.run("ord_1", host.issue) == "reply 2"  # a later call is a call of its own


async def test_different_keys_do_not_share() -> None:
    c: SingleFlight[str, str] = SingleFlight()
    host = Host()
    host.gate.set()
    replies = await asyncio.gather(c.run("a", host.issue), c.run("b", host.issue))
    assert sorted(replies) == ["reply 1", "reply 2"]


async def test_a_failure_reaches_every_caller_and_is_not_kept() -> None:
    c: SingleFlight[str, str] = SingleFlight()
    host = Host()
    host.fail = True
    waiting = [asyncio.ensure_future(c.run("k", host.issue)) for _ in range(5)]
    await asyncio.sleep(0)
    host.gate.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    host.fail = False
    assert await c.run("k", host.issue) == "reply 2"


async def test_a_caller_that_gives_up_leaves_the_call_to_the_others() -> None:
    c: SingleFlight[str, str] = SingleFlight()
    host = Host()
    first = asyncio.ensure_future(c.run("k", host.issue))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(c.run("k", host.issue))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    host.gate.set()
    assert await second == "reply 1"
    assert host.calls == 1
