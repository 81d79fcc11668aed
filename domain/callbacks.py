"""The callbacks a distributor is sent, derived from the facts of an order's moves.

A callback is a JSON body posted to the order's `callback_url` (signed by the courier,
`actors/callbacks.py`): `order.status_changed` for every status the order moves to after it
was created (the create's own reply tells of NEW), and `order.delivery_changed` for a
delivery step the supplier reported.

Each message carries a courier shard, `courier_shard(order_id)` of `COURIER_SHARDS`: the
order's partition (`domain.partitions`), whose owning order host delivers it, so a message's
courier follows from the row alone whatever the number of hosts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from domain.ids import stable_shard
from domain.order import DeliveryChanged, Fact, Moved, Order
from domain.partitions import PARTITIONS
from domain.status import OrderStatus

STATUS_CHANGED = "order.status_changed"
DELIVERY_CHANGED = "order.delivery_changed"

# Fixed for good: each outbox row stores its shard, and all messages of an order must share
# one (one courier sends them, in order).
COURIER_SHARDS = PARTITIONS  # the same hash: a message's courier is its order's host


def courier_shard(order_id: str) -> int:
    """The courier shard of an order's messages (the same in every process)."""
    return stable_shard(order_id, COURIER_SHARDS)


def callback_body(order: Order, event: str, status: str, at: datetime) -> str:
    return json.dumps(
        {
            "type": event,
            "order_id": order.id,
            "distributor_order_id": order.distributor_order_id,
            "status": order.status.value if event == DELIVERY_CHANGED else status,
            "delivery_status": order.delivery_status.value,
            "at": at.astimezone(UTC).isoformat(),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def callbacks_implied(order: Order, facts: Iterable[Fact]) -> list[str]:
    """The bodies to post for `facts`, in the order the facts were recorded; none without a
    callback URL. A save that records several delivery steps tells of the last one once."""
    if not order.callback_url:
        return []
    bodies: list[str] = []
    delivery: DeliveryChanged | None = None
    for fact in facts:
        if isinstance(fact, Moved) and fact.entry.status is not OrderStatus.NEW:
            bodies.append(
                callback_body(order, STATUS_CHANGED, fact.entry.status.value, fact.entry.at)
            )
        elif isinstance(fact, DeliveryChanged):
            delivery = fact
    if delivery is not None:
        bodies.append(callback_body(order, DELIVERY_CHANGED, order.status.value, delivery.at))
    return bodies
