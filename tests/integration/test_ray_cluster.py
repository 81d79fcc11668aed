"""A real two-node Ray cluster (tests/support/ray_cluster.py) loses its worker node: the GCS
declares the node dead within seconds and the detached actor that lived there restarts on
the head. The cluster is one of its own beside the suite's Ray session, which this test does
not use (no `ray_session`) and leaves alone: the drivers are subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.support.ray_cluster import RayCluster, still_running

T = TypeVar("T")

NAMESPACE = "ray-cluster-test"
ACTOR = "pinned"

# Creates the actor on the node given and prints the node it runs on. The node affinity is
# soft: a resource only the worker node has would keep the actor from restarting elsewhere.
_CREATE = """
import sys
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

address, namespace, name, node_id = sys.argv[1:]
ray.init(address=address, namespace=namespace, log_to_driver=False)


@ray.remote(max_restarts=-1)
class Pinned:
    def node_id(self):
        return ray.get_runtime_context().get_node_id()


actor = Pinned.options(
    name=name,
    lifetime="detached",
    scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=True),
).remote()
print(ray.get(actor.node_id.remote(), timeout=60))
"""

# Finds the actor by name and prints the node it runs on.
_ASK = """
import sys
import ray

address, namespace, name = sys.argv[1:]
ray.init(address=address, namespace=namespace, log_to_driver=False)
print(ray.get(ray.get_actor(name).node_id.remote(), timeout=60))
"""


def _driver(cluster: RayCluster, script: str, *args: str) -> str:
    """Run `script` as a driver of `cluster` in a subprocess; its last line of output."""
    result = subprocess.run(
        [sys.executable, "-c", script, cluster.address, NAMESPACE, ACTOR, *args],
        env=cluster.client_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, f"driver failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def _until(probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float) -> float:
    """Call `probe` until `done(result)`, or raise with the last result; when that was."""
    deadline = time.monotonic() + timeout
    while not done(value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last value: {value!r}")
        time.sleep(0.1)
    return time.monotonic()


def test_losing_the_worker_node_restarts_its_actor_on_the_head(tmp_path: Path) -> None:
    cluster = RayCluster.start(tmp_path, worker_nodes=1)
    try:
        head, worker = cluster.head, cluster.workers[0]
        assert cluster.alive_node_ids() == {head.node_id, worker.node_id}
        assert _driver(cluster, _CREATE, worker.node_id) == worker.node_id
        assert cluster.actors_by_node(NAMESPACE) == {worker.node_id: [ACTOR]}

        worker_pids = worker.pids()
        began = time.monotonic()
        cluster.kill_node(worker)
        killed = time.monotonic() - began
        assert not still_running(worker_pids)
        assert head.pids()

        dead = _until(cluster.alive_node_ids, lambda ids: ids == {head.node_id}, timeout=30) - began
        restarted = (
            _until(
                lambda: cluster.actors_by_node(NAMESPACE),
                lambda actors: actors == {head.node_id: [ACTOR]},
                timeout=30,
            )
            - began
        )
        assert _driver(cluster, _ASK) == head.node_id
    finally:
        pids = cluster.pids()
        cluster.stop()
    assert not still_running(pids)
    assert not cluster.pids()
    assert not cluster.temp_root.exists()
    print(
        f"\nray cluster: started in {cluster.startup_seconds:.1f}s; worker node killed in "
        f"{killed:.2f}s, declared dead after {dead:.1f}s (expected about "
        f"{cluster.node_death_seconds:.1f}s), actor restarted on the head after "
        f"{restarted:.1f}s; stopped in {cluster.stop_seconds:.1f}s"
    )
