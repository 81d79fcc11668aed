"""What every platform actor shares: how it is started, and the loop its timers run in."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Take what this process built to start (its modules, Ray's and the libraries' objects,
    its own setup: 100,000-150,000 objects) out of the cyclic collector's reach, for good.

    Python's full collection walks every object it tracks. In an order host it took 100-260
    ms every few seconds under load, most of it on objects that live as long as the process,
    and each pause stalled every call in flight (eight at once, 120-150 ms, in the lifecycle
    benchmark). Frozen objects are still freed by reference counting; only a cycle among
    them that becomes garbage later is never collected. Called once, when the process's
    start is done (after a collection, so no garbage is frozen). Serve does the same for its
    replicas (`RAY_SERVE_FREEZE_GC_ON_STARTUP`)."""
    gc.collect()
    gc.freeze()


async def every(seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
    """Run ``job`` now and then every ``seconds`` after it finishes, for good; a failing run is
    logged and the next one comes as usual (the jobs are idempotent sweeps and pollers)."""
    while True:
        try:
            await job()
        except Exception:
            log.exception("background job %s failed", getattr(job, "__qualname__", job))
        await asyncio.sleep(seconds)


def target_node(index: int) -> str | None:
    """The node the `index`-th actor of a kind belongs on: the cluster's alive nodes in turn
    (by node id), so each kind's actors spread over every node. None on one node."""
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])  # type: ignore[no-untyped-call]
    return None if len(nodes) <= 1 else nodes[index % len(nodes)]


def node_for(index: int) -> Any:
    """How the `index`-th actor of a kind is scheduled: on its `target_node`, softly, so
    that Ray restarts it on another node when that node is lost. (Soft affinity is best
    effort: `actors.startup` moves an actor that landed elsewhere.) One node: Ray's default."""
    node = target_node(index)
    return "DEFAULT" if node is None else NodeAffinitySchedulingStrategy(node, soft=True)


def named_actor(
    actor_class: Any, name: str, namespace: str, *, max_concurrency: int, spread_index: int = 0
) -> Any:
    """How every platform actor is started: by name, found instead when it already runs,
    detached (it outlives whoever started it), with no CPU reserved (they wait on I/O, many
    to a core), the `spread_index`-th of its kind placed on the cluster's nodes in turn
    (`node_for`: losing a node loses only its share of each kind, which Ray restarts on the
    others). Call ``.remote(...)`` on the result with the class's arguments."""
    return actor_class.options(
        name=name,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached",
        max_concurrency=max_concurrency,
        num_cpus=0,
        scheduling_strategy=node_for(spread_index),
    )
