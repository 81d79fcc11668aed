"""JSON shapes of what the API returns. Times are RFC 3339 in the platform's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from domain.order import Order


def ts(value: datetime | None, tz: tzinfo) -> str | None:
    """RFC 3339 in the platform's zone; in UTC for an instant at which the zone's offset was
    not whole minutes (local mean time, as Asia/Shanghai's +08:05:43 before 1901), which RFC
    3339 cannot write."""
    if value is None:
        return None
    local = value.astimezone(tz)
    if local.year < 1973:  # (no zone's offset has had seconds since Monrovia's, in 1972)
        offset = local.utcoffset()
        if offset is not None and offset.seconds % 60:
            local = value.astimezone(UTC)
    return local.isoformat()


def order_view(order: Order, tz: tzinfo) -> dict[str, Any]:
    return {
        "id": order.id,
        "distributor_order_id": order.distributor_order_id,
        "status": order.status.value,
        "delivery_status": order.delivery_status.value,
        "delivery": {"method": order.delivery_method.value, "address": order.delivery_address},
        "supplier_id": order.supplier_id,
        "session_id": order.session_id,
        "tier_id": order.tier_id,
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "amount": order.amount.amount,
        "currency": order.currency,
        "lock_expires_at": ts(order.lock_expires_at, tz),
        "tickets": [
            {"code": t.code, "seat": t.seat, **_attendee_of(order, i)}
            for i, t in enumerate(order.tickets)
        ],
        # Real-name orders: each document masked (the supplier alone receives it whole).
        "attendees": [a.masked() for a in order.attendees],
        "failure_reason": order.failure_reason,
        "callback_url": order.callback_url,
        "created_at": ts(order.created_at, tz),
        "updated_at": ts(order.updated_at, tz),
        "history": [
            {
                "status": h.status.value,
                "at": ts(h.at, tz),
                **({"reason": h.reason} if h.reason else {}),
            }
            for h in order.history
        ],
    }


def _attendee_of(order: Order, index: int) -> dict[str, Any]:
    """A real-name ticket's attendee (ticket i is attendee i's), masked."""
    if index < len(order.attendees):
        return {"attendee": order.attendees[index].masked()}
    return {}


def show_view(row: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    return {
        "id": row["id"],
        "supplier_id": row["supplier_id"],
        "title": row["title"],
        "city": row["city"],
        "category": row["category"],
        "venue": row["venue"],
        "starts_at": ts(row["starts_at"], tz),
        "status": row["status"],
        "updated_at": ts(row["updated_at"], tz),
    }


def show_detail_view(detail: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    view = show_view(detail, tz)
    view["sessions"] = [
        {
            "id": s["id"],
            "starts_at": ts(s["starts_at"], tz),
            "status": s["status"],
            "real_name_required": bool(s["real_name_required"]),
            "tickets_per_id": s["tickets_per_id"],
            "tiers": [
                {
                    "id": t["id"],
                    "name": t["name"],
                    "face_value": t["face_value"],
                    "price": t["price"],
                    "currency": t["currency"],
                    "available": t["available"],
                }
                for t in s["tiers"]
            ],
        }
        for s in detail["sessions"]
    ]
    return view
