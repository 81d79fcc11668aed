"""The CPU cost of recording the platform's metrics (actors/metrics.py), inside a Ray actor.

    python -m bench.metrics_cost [--records 20000] [--rounds 5]

A Ray actor (a worker process like the order and supplier hosts, with Ray's metrics recorder
running) times, in thread CPU time, each kind of record the hot paths make, against a loop
that records nothing, and the records of one lock + issue lifecycle:

- `order_created` (none -> NEW) and `moves_committed` of one move (`unsaved_moves` included);
- one supplier call through `MeteredGateway` (a counter and a histogram), over a gateway that
  answers at once, against the same call made without the wrapper;
- `request_refused` (the API's door);
- Ray's own `Counter.inc` with a tag dictionary built on each call, for comparison with the
  dictionaries `actors.metrics` builds once.

A lifecycle records: the create (none -> NEW), NEW -> LOCKED, LOCKED -> FIXING, FIXING -> FIXED
and two supplier calls (lock, issue). The figures are the median over `rounds`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import ray

from actors import metrics
from suppliers.gateway import CallResult, IssueInfo, Outcome, Ticket
from tests.unit.test_order import locked_order

_ISSUED: CallResult[IssueInfo] = CallResult(
    Outcome.DONE, IssueInfo((Ticket("T-1", "A1"),), datetime(2026, 1, 1, tzinfo=UTC))
)


class _Answering:
    """A gateway that answers every issue at once (what is timed is the wrapper around it)."""

    async def issue(self, order_id: str, attendees: Any = ()) -> CallResult[IssueInfo]:
        return _ISSUED


def _per_call_us(n: int, fn: Callable[[], None]) -> float:
    started = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - started) / n * 1e6


async def _per_await_us(n: int, fn: Callable[[], Awaitable[object]]) -> float:
    started = time.thread_time()
    for _ in range(n):
        await fn()
    return (time.thread_time() - started) / n * 1e6


@ray.remote(num_cpus=0)
class MetricsBench:
    async def run(self, n: int) -> dict[str, float]:
        from ray.util.metrics import Counter

        order = locked_order()  # one move (to LOCKED) not saved yet
        plain = _Answering()
        metered = metrics.MeteredGateway("bench_supplier", plain)  # type: ignore[arg-type]
        adhoc = Counter("showdist_bench_adhoc", "a counter tagged ad hoc", ("from", "to"))

        def move() -> None:
            metrics.moves_committed(metrics.unsaved_moves(order))

        def adhoc_inc() -> None:
            adhoc.inc(1, {"from": "NEW", "to": "LOCKED"})

        nothing = _per_call_us(n, lambda: None)
        out = {
            "empty loop": nothing,
            "order_created": _per_call_us(n, metrics.order_created) - nothing,
            "one move (unsaved_moves + moves_committed)": _per_call_us(n, move) - nothing,
            "request_refused": _per_call_us(n, lambda: metrics.request_refused("bench")) - nothing,
            "Ray Counter.inc, tags built per call": _per_call_us(n, adhoc_inc) - nothing,
        }
        bare = await _per_await_us(n, lambda: plain.issue("o-1"))
        wrapped = await _per_await_us(n, lambda: metered.issue("o-1"))
        out["supplier call through MeteredGateway (counter + histogram)"] = wrapped - bare
        out["lifecycle (create, 3 moves, 2 supplier calls)"] = (
            out["order_created"]
            + 3 * out["one move (unsaved_moves + moves_committed)"]
            + 2 * out["supplier call through MeteredGateway (counter + histogram)"]
        )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ray.init(include_dashboard=False, log_to_driver=False)
    try:
        bench = MetricsBench.remote()  # type: ignore[attr-defined]
        runs = [ray.get(bench.run.remote(args.records)) for _ in range(args.rounds)]
    finally:
        ray.shutdown()
    medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    for name, us in medians.items():
        print(f"{name:62s} {us:7.2f} us CPU")
    print(json.dumps({"records": args.records, "rounds": args.rounds, "us": medians}))


if __name__ == "__main__":
    main()
