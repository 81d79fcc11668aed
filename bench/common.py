"""Shared plumbing for the benchmarks: start PostgreSQL, the sandbox supplier, Ray and the
platform; time calls; print figures."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.proc_cpu import CpuSnapshot
from showdist.client import Credentials, encode_body
from showdist.platform import RunningPlatform, prepare_ray_environment, start_platform
from showdist.settings import Settings
from suppliers.sandbox.process import SandboxAdmin, SandboxProcess
from tests.support.services import PostgresServer, RedisServer, free_port
from tests.support.world import World, seed_world, world_catalog


@dataclass
class Timings:
    name: str
    samples_ms: list[float] = field(default_factory=list)

    def add(self, ms: float) -> None:
        self.samples_ms.append(ms)

    def pct(self, q: float) -> float:
        if not self.samples_ms:
            return 0.0
        s = sorted(self.samples_ms)
        return s[min(len(s) - 1, int(q * len(s)))]

    def line(self) -> str:
        if not self.samples_ms:
            return f"{self.name:>22}: no samples"
        return (
            f"{self.name:>22}: n={len(self.samples_ms):6d}  p50={self.pct(0.50):7.2f} ms  "
            f"p99={self.pct(0.99):7.2f} ms  mean={statistics.fmean(self.samples_ms):7.2f} ms"
        )


async def timed(t: Timings, coro: Awaitable[Any]) -> Any:
    started = time.perf_counter()
    result = await coro
    t.add((time.perf_counter() - started) * 1000.0)
    return result


async def run_concurrently(
    n: int, concurrency: int, job: Callable[[int], Awaitable[None]]
) -> float:
    """Run job(0..n-1) with at most `concurrency` in flight; returns elapsed seconds."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await job(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Stack:
    pg: PostgresServer
    sandbox: SandboxProcess
    admin: SandboxAdmin
    platform: RunningPlatform
    world: World

    def cpu(self) -> CpuSnapshot:
        """CPU by process of everything the benchmark runs, PostgreSQL included."""
        return CpuSnapshot.take(extra_roots=(self.pg.postmaster_pid(),))


@contextmanager
def stack(
    *,
    order_hosts: int = 2,
    serve_replicas: int = 1,
    settings_overrides: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    import ray

    pg = PostgresServer.start()
    redis = RedisServer.start()  # production-like: nonces, rate limits, stock cache in Redis
    sandbox = SandboxProcess.start()
    admin = SandboxAdmin(sandbox.url)
    admin.load_catalog(world_catalog())
    data_dir = Path(tempfile.mkdtemp(prefix="showdist-bench-"))
    try:
        # A loaded machine can take longer than Ray's default 60 s to start a raylet.
        os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")
        prepare_ray_environment()
        ray.init(num_cpus=2, include_dashboard=False, namespace="bench", log_to_driver=False)
        fields: dict[str, Any] = {
            "data_dir": data_dir,
            "database_url": pg.url,
            "redis_url": redis.url,
            "http_port": free_port(),
            "instance": "bench",
            "ray_namespace": "bench",
            "order_hosts": order_hosts,
            "serve_replicas": serve_replicas,
            # The database pools are the platform's own (SHOWDIST_DB_POOL_SIZE, 16 by default):
            # until 2026-12-04 the benchmarks ran 8, past which an order host at c=16 opened
            # and closed about 7 connections a second (each a PostgreSQL backend started).
            # The benchmark drives one key hard: lift the per-key abuse limit.
            "rate_limit_per_s": 1_000_000,
        }
        fields.update(settings_overrides or {})  # a benchmark's own settings win
        settings = Settings(**fields)
        platform = start_platform(settings)
        world = asyncio.run(seed_world(platform.settings, sandbox.url, platform.base_url))
        yield Stack(pg, sandbox, admin, platform, world)
    finally:
        from ray import serve

        if ray.is_initialized():
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
        sandbox.stop()
        redis.stop()
        pg.stop()


class FastSignedClient:
    """A signed client on aiohttp for load generation: the benchmark's own CPU is shared with
    the platform on this machine, and aiohttp spends a fraction of httpx's per request."""

    def __init__(self, base_url: str, creds: Credentials, *, max_connections: int = 64) -> None:
        import aiohttp

        self.creds = creds
        self._session = aiohttp.ClientSession(
            base_url=base_url,
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def request(self, method: str, target: str, data: Any = None) -> Reply:
        body = encode_body(data)
        headers = self.creds.headers(method, target, body)
        if body:
            headers["Content-Type"] = "application/json"
        async with self._session.request(method, target, data=body, headers=headers) as r:
            return Reply(r.status, await r.read())

    async def get(self, target: str) -> Reply:
        async with self._session.get(target) as r:
            return Reply(r.status, await r.read())

    async def aclose(self) -> None:
        await self._session.close()


@dataclass
class Reply:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)
