"""The API's short caches: one load per key however many requests miss at once."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.caches import TtlCache


class Source:
    """A slow data source that counts the questions it was asked."""

    def __init__(self) -> None:
        self.asked = 0
        self.value = "v1"
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def load(self) -> str:
        self.asked += 1
        answer = self.value
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return answer


async def asked(src: Source, n: int) -> None:
    """Let the loop run until `src` was asked `n` questions (or a few turns have passed)."""
    for _ in range(20):
        if src.asked >= n:
            return
        await asyncio.sleep(0)


async def test_concurrent_misses_share_one_load() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    src = Source()
    readers = [asyncio.ensure_future(cache.get("k", src.load)) for _ in range(50)]
    await asyncio.sleep(0)
    src.release.set()
    assert await asyncio.gather(*readers) == ["v1"] * 50
    assert src.asked == 1
    assert await cache.get("k", src.load) == "v1"
    assert src.asked == 1


async def test_expired_value_is_loaded_again() -> None:
    cache: TtlCache[str, str] = TtlCache(0.05)
    src = Source()
    src.release.set()
    assert await cache.get("k", src.load) == "v1"
    src.value = "v2"
    await asyncio.sleep(0.06)
    assert await cache.get("k", src.load) == "v2"
    assert src.asked == 2


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    src = Source()
    src.fail = RuntimeError("database down")
    readers = [asyncio.ensure_future(cache.get("k", src.load)) for _ in range(5)]
    await asyncio.sleep(0)
    src.release.set()
    outcomes = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    assert src.asked == 1
    src.fail = None
    assert await cache.get("k", src.load) == "v1"
    assert src.asked == 2


async def test_clear_during_a_load_keeps_its_stale_answer_out() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    src = Source()
    before = asyncio.ensure_future(cache.get("k", src.load))
    await asked(src, 1)  # the load has asked its question
    cache.clear()  # e.g. a key was revoked while its record was being read
    src.value = "v2"
    after = asyncio.ensure_future(cache.get("k", src.load))  # must not join the old load
    await asked(src, 2)
    src.release.set()
    assert await before == "v1"
    assert await after == "v2"
    assert await cache.get("k", src.load) == "v2"
    assert src.asked == 2


async def test_a_caller_that_gives_up_leaves_the_load_to_the_others() -> None:
    cache: TtlCache[str, str] = TtlCache(60)
    src = Source()
    loader = asyncio.ensure_future(cache.get("k", src.load))
    await asyncio.sleep(0)
    waiter = asyncio.ensure_future(cache.get("k", src.load))
    await asyncio.sleep(0)
    loader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loader
    src.release.set()
    assert await waiter == "v1"
    assert src.asked == 1  # the load went on for the waiter: one question, not two


class Clock:
    """The caches' clock, moved by hand (so no test depends on how long a sleep takes)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("serve_app.caches.time", c)
    return c


async def test_a_value_past_half_its_ttl_is_read_again_in_the_background(clock: Clock) -> None:
    cache: TtlCache[str, str] = TtlCache(1.0)
    src = Source()
    src.release.set()
    assert await cache.get("k", src.load) == "v1"
    src.release.clear()  # from now on a load waits until released
    src.value = "v2"
    clock.now += 0.6
    # Answered from the cache at once, though the load it started has not finished.
    readers = [await asyncio.wait_for(cache.get("k", src.load), 1) for _ in range(20)]
    assert readers == ["v1"] * 20
    await asked(src, 2)
    assert src.asked == 2  # twenty requests, one reload
    src.release.set()
    for _ in range(20):
        await asyncio.sleep(0)
    assert await cache.get("k", src.load) == "v2"
    assert src.asked == 2


async def test_a_value_is_never_served_past_its_ttl_even_when_its_reload_failed(
    clock: Clock,
) -> None:
    cache: TtlCache[str, str] = TtlCache(1.0)
    src = Source()
    src.release.set()
    assert await cache.get("k", src.load) == "v1"
    src.fail = RuntimeError("database down")
    clock.now += 0.6
    assert await cache.get("k", src.load) == "v1"  # the reload ahead fails in the background
    await asked(src, 2)
    for _ in range(5):
        await asyncio.sleep(0)
    clock.now += 0.5  # now past the ttl: the request waits for a load of its own
    with pytest.raises(RuntimeError, match="database down"):
        await cache.get("k", src.load)
    src.fail = None
    src.value = "v3"
    assert await cache.get("k", src.load) == "v3"
