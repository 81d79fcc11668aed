"""The sandbox supplier's own books: catalog, stock, locks, issues, refunds and its two feeds
(the refunds it made on its own, and the express delivery updates of paper tickets).

Plain synchronous Python with no I/O and no awaits, so that every method runs to completion on
the event loop without interleaving: a stock check and its decrement are atomic, and no order can
be oversold however many requests arrive at once. Every command is idempotent by order id.

Each command answers a `Reply`, an HTTP status and a JSON body, which the server sends as is.

A lock moves HELD → ISSUED (issue) or HELD → RELEASED (release) or HELD → VOIDED (the supplier
cancelled the show). A release of an order the supplier has never seen leaves a RELEASED
tombstone, so that a lock that arrives late (after the platform gave up on it and released it)
is refused instead of holding seats nobody will ever release. Locks do not expire by themselves.

Express delivery of an issued order is recorded by the admin (`set_delivery`) as SHIPPED or
DELIVERED events in the delivery feed. The sandbox does not enforce SHIPPED before DELIVERED;
each status is recorded at most once per order (a repeat answers the event already recorded).

To play a faulty supplier integration, a catalog loaded with `"check_prices": false` keeps
prices as given (negative, or out of order: the platform must refuse them), and
`inject_feed_event` appends an event to a feed without looking at the books (an order the
supplier never saw, another supplier's order).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from suppliers.sandbox.faults import OPS

Reply = tuple[int, dict[str, Any]]
Clock = Callable[[], datetime]

MAX_QUANTITY = 100
MAX_ID_LENGTH = 200
FEED_PAGE_MAX = 10_000
DELIVERY_STATUSES = ("SHIPPED", "DELIVERED")


class CatalogError(ValueError):
    """A catalog that cannot be loaded."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def refusal(status: int, error: str, message: str) -> Reply:
    return status, {"error": error, "message": message}


class HoldStatus(Enum):
    HELD = "held"
    ISSUED = "issued"
    RELEASED = "released"
    VOIDED = "voided"


@dataclass(slots=True)
class Tier:
    ref: str
    name: str
    face_value: int
    price: int
    settlement_price: int
    currency: str
    stock: int
    available: int
    locked: int = 0
    sold: int = 0
    seat_seq: int = 0


@dataclass(slots=True)
class Session:
    ref: str
    show_ref: str
    starts_at: str
    status: str
    tiers: dict[str, Tier]
    real_name_required: bool = False  # 实名制: a lock names one attendee per ticket
    tickets_per_id: int = 1


@dataclass(slots=True)
class Show:
    ref: str
    title: str
    city: str
    category: str
    venue: str
    starts_at: str
    status: str
    sessions: dict[str, Session]


@dataclass(slots=True)
class Hold:
    order_id: str
    lock_ref: str
    session_ref: str
    tier_ref: str
    quantity: int
    status: HoldStatus
    attendees: tuple[tuple[str, str, str], ...] = ()  # (name, id_type, id_number) per ticket


@dataclass(slots=True)
class Issued:
    tickets: list[dict[str, str]]
    issued_at: str


@dataclass(slots=True)
class Refunded:
    refunded_at: str
    initiated_by: str


@dataclass(slots=True)
class Counters:
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPS, 0))
    # Calls received per order and operation: lets a test check "at most one issue call".
    per_order: dict[str, dict[str, int]] = field(default_factory=dict)
    locks_performed: int = 0
    releases_performed: int = 0
    issue_effects: int = 0
    refunds_performed: int = 0
    supplier_refunds: int = 0
    injected: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("injected_error", "injected_refuse", "injected_hang", "injected_lost_response"), 0
        )
    )


class SupplierBook:
    """The supplier's whole state. `load` replaces the catalog; `reset` restores its stock."""

    def __init__(self, *, clock: Clock = utc_now, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._spec: dict[str, Any] = {"shows": []}
        self.shows: dict[str, Show] = {}
        self.sessions: dict[str, Session] = {}
        self.holds: dict[str, Hold] = {}
        self.issues: dict[str, Issued] = {}
        self.refunds: dict[str, Refunded] = {}
        self.feed: list[dict[str, Any]] = []
        self.delivery_feed: list[dict[str, Any]] = []
        self._deliveries: dict[tuple[str, str], dict[str, Any]] = {}
        self._refund_events: dict[str, dict[str, Any]] = {}
        self.counters = Counters()
        self._lock_seq = 0
        self._ticket_seq = 0

    # -- catalog --------------------------------------------------------------------------

    def load(self, spec: object) -> None:
        """Replace the catalog (validated first) and clear every order, lock and counter."""
        shows = _parse_catalog(spec)
        self._spec = copy.deepcopy(dict(spec)) if isinstance(spec, Mapping) else {"shows": []}
        self._install(shows)

    def reset(self) -> None:
        """Forget every lock, issue, refund and delivery, zero the counters, restore the stock."""
        self._install(_parse_catalog(self._spec))

    def _install(self, shows: dict[str, Show]) -> None:
        self.shows = shows
        self.sessions = {s.ref: s for show in shows.values() for s in show.sessions.values()}
        self.holds = {}
        self.issues = {}
        self.refunds = {}
        self.feed = []
        self.delivery_feed = []
        self._deliveries = {}
        self._refund_events = {}
        self.counters = Counters()

    def catalog(self) -> dict[str, Any]:
        return {
            "shows": [
                {
                    "ref": show.ref,
                    "title": show.title,
                    "city": show.city,
                    "category": show.category,
                    "venue": show.venue,
                    "starts_at": show.starts_at,
                    "status": show.status,
                    "sessions": [
                        {
                            "ref": ses.ref,
                            "starts_at": ses.starts_at,
                            "status": ses.status,
                            "real_name_required": ses.real_name_required,
                            "tickets_per_id": ses.tickets_per_id,
                            "tiers": [
                                {
                                    "ref": t.ref,
                                    "name": t.name,
                                    "face_value": t.face_value,
                                    "price": t.price,
                                    "settlement_price": t.settlement_price,
                                    "currency": t.currency,
                                    "available": t.available,
                                }
                                for t in ses.tiers.values()
                            ],
                        }
                        for ses in show.sessions.values()
                    ],
                }
                for show in self.shows.values()
            ]
        }

    def inventory(self) -> dict[str, dict[str, int]]:
        return {
            t.ref: {"stock": t.stock, "available": t.available, "locked": t.locked, "sold": t.sold}
            for ses in self.sessions.values()
            for t in ses.tiers.values()
        }

    # -- commands -------------------------------------------------------------------------

    def lock(
        self,
        order_id: str,
        session_ref: str,
        tier_ref: str,
        quantity: int,
        attendees: tuple[tuple[str, str, str], ...] = (),
    ) -> Reply:
        hold = self.holds.get(order_id)
        if hold is not None:
            if (hold.session_ref, hold.tier_ref, hold.quantity) != (
                session_ref,
                tier_ref,
                quantity,
            ):
                return refusal(409, "refused", "order already locked with other parameters")
            if hold.status in (HoldStatus.RELEASED, HoldStatus.VOIDED):
                return refusal(409, "refused", f"the lock of this order was {hold.status.value}")
            return 200, {"lock_ref": hold.lock_ref}
        session = self.sessions.get(session_ref)
        if session is None:
            return refusal(404, "not_found", f"unknown session {session_ref!r}")
        tier = session.tiers.get(tier_ref)
        if tier is None:
            return refusal(404, "not_found", f"unknown tier {tier_ref!r} in this session")
        if session.status != "online" or self.shows[session.show_ref].status != "online":
            return refusal(409, "refused", "the session is not on sale")
        if session.real_name_required and len(attendees) != quantity:
            return refusal(
                422, "invalid_request", "a real-name session's lock names one attendee per ticket"
            )
        if tier.available < quantity:
            return refusal(409, "sold_out", f"only {tier.available} left")
        tier.available -= quantity
        tier.locked += quantity
        self._lock_seq += 1
        lock_ref = f"sbxlk_{self._lock_seq:08d}"
        self.holds[order_id] = Hold(
            order_id, lock_ref, session_ref, tier_ref, quantity, HoldStatus.HELD, attendees
        )
        self.counters.locks_performed += 1
        return 200, {"lock_ref": lock_ref}

    def release(self, order_id: str) -> Reply:
        hold = self.holds.get(order_id)
        if hold is None:
            self.holds[order_id] = Hold(order_id, "", "", "", 0, HoldStatus.RELEASED)
            return 200, {"state": "released"}
        if hold.status is HoldStatus.ISSUED:
            return refusal(409, "refused", "the order is issued; refund it instead")
        if hold.status is HoldStatus.HELD:
            tier = self._tier(hold)
            tier.locked -= hold.quantity
            tier.available += hold.quantity
            hold.status = HoldStatus.RELEASED
            self.counters.releases_performed += 1
        return 200, {"state": "released"}

    def issue(self, order_id: str) -> Reply:
        issued = self.issues.get(order_id)
        if issued is not None:
            return 200, {"tickets": issued.tickets, "issued_at": issued.issued_at}
        hold = self.holds.get(order_id)
        if hold is None:
            return refusal(409, "refused", "no lock for this order")
        if hold.status is not HoldStatus.HELD:
            return refusal(409, "refused", f"the lock of this order was {hold.status.value}")
        tier = self._tier(hold)
        tier.locked -= hold.quantity
        tier.sold += hold.quantity
        tickets: list[dict[str, Any]] = []
        for i in range(hold.quantity):
            self._ticket_seq += 1
            tier.seat_seq += 1
            code = f"SBX{self._ticket_seq:08d}{self._rng.getrandbits(32):08X}"
            ticket: dict[str, Any] = {"code": code, "seat": f"{tier.name} {tier.seat_seq}号"}
            if hold.attendees:  # a real-name ticket names its attendee (checked at the gate)
                name, id_type, id_number = hold.attendees[i]
                ticket["attendee"] = {"name": name, "id_type": id_type, "id_number": id_number}
            tickets.append(ticket)
        hold.status = HoldStatus.ISSUED
        issued = Issued(tickets, self._clock().isoformat())
        self.issues[order_id] = issued
        self.counters.issue_effects += 1
        return 200, {"tickets": issued.tickets, "issued_at": issued.issued_at}

    def query_issue(self, order_id: str) -> Reply:
        issued = self.issues.get(order_id)
        if issued is None:
            return 200, {"state": "not_issued"}
        return 200, {"state": "issued", "tickets": issued.tickets, "issued_at": issued.issued_at}

    def refund(self, order_id: str, *, initiated_by: str = "platform") -> Reply:
        done = self.refunds.get(order_id)
        if done is not None:
            return 200, {"refunded_at": done.refunded_at, "initiated_by": done.initiated_by}
        hold = self.holds.get(order_id)
        if hold is None or not hold.quantity:
            return refusal(404, "not_found", "unknown order")
        if hold.status is not HoldStatus.ISSUED:
            return refusal(409, "refused", "the order is not issued")
        tier = self._tier(hold)
        tier.sold -= hold.quantity
        tier.available += hold.quantity
        done = Refunded(self._clock().isoformat(), initiated_by)
        self.refunds[order_id] = done
        self.counters.refunds_performed += 1
        return 200, {"refunded_at": done.refunded_at, "initiated_by": done.initiated_by}

    def query_refund(self, order_id: str) -> Reply:
        done = self.refunds.get(order_id)
        if done is None:
            return 200, {"state": "not_refunded"}
        return 200, {
            "state": "refunded",
            "refunded_at": done.refunded_at,
            "initiated_by": done.initiated_by,
        }

    def supplier_refund(self, order_id: str) -> Reply:
        """The supplier refunds one issued order on its own and reports it in its refund feed;
        answers the feed event (the existing one when it already did)."""
        existing = self._refund_events.get(order_id)
        if existing is not None:
            return 200, existing
        refused = self._unless_issued(order_id)
        if refused is not None:
            return refused
        self.refund(order_id, initiated_by="supplier")
        self.counters.supplier_refunds += 1
        event = self._append_refund_event(order_id, self.refunds[order_id].refunded_at)
        self._refund_events[order_id] = event
        return 200, event

    def inject_feed_event(self, feed: str, order_id: str, status: str | None = None) -> Reply:
        """Append an event to a feed (`supplier-refunds` or `delivery-updates`) without looking
        at the books: a faulty integration reporting an order it never saw."""
        now = self._clock().isoformat()
        if feed == "supplier-refunds":
            return 200, self._append_refund_event(order_id, now)
        if feed != "delivery-updates":
            return refusal(404, "not_found", f"unknown feed {feed!r}")
        if status not in DELIVERY_STATUSES:
            return refusal(422, "invalid_request", f"status must be one of {DELIVERY_STATUSES}")
        return 200, self._append_delivery_event(order_id, str(status))

    def _unless_issued(self, order_id: str) -> Reply | None:
        """The refusal of a step that needs the order issued and not refunded, if it is not."""
        hold = self.holds.get(order_id)
        if hold is None or hold.status is not HoldStatus.ISSUED:
            return refusal(409, "refused", "the order is not issued")
        if order_id in self.refunds:
            return refusal(409, "refused", "the order is refunded")
        return None

    def _append_refund_event(self, order_id: str, refunded_at: str) -> dict[str, Any]:
        event = {"seq": len(self.feed) + 1, "order_id": order_id, "refunded_at": refunded_at}
        self.feed.append(event)
        return event

    def _append_delivery_event(self, order_id: str, status: str) -> dict[str, Any]:
        event = {
            "seq": len(self.delivery_feed) + 1,
            "order_id": order_id,
            "status": status,
            "at": self._clock().isoformat(),
        }
        self.delivery_feed.append(event)
        return event

    def cancel_show(self, show_ref: str) -> Reply:
        """The supplier cancels a show: offline, held seats back, every issued order refunded."""
        show = self.shows.get(show_ref)
        if show is None:
            return refusal(404, "not_found", f"unknown show {show_ref!r}")
        show.status = "offline"
        for session in show.sessions.values():
            session.status = "offline"
        refunded: list[str] = []
        voided = 0
        for hold in self.holds.values():
            if hold.session_ref not in show.sessions:
                continue
            if hold.status is HoldStatus.HELD:
                tier = self._tier(hold)
                tier.locked -= hold.quantity
                tier.available += hold.quantity
                hold.status = HoldStatus.VOIDED
                voided += 1
            elif hold.status is HoldStatus.ISSUED and hold.order_id not in self.refunds:
                self.supplier_refund(hold.order_id)
                refunded.append(hold.order_id)
        return 200, {"show_ref": show_ref, "refunded": refunded, "voided_locks": voided}

    def supplier_refunds(self, since_seq: int, limit: int) -> Reply:
        start = max(since_seq, 0)
        events = self.feed[start : start + limit]
        return 200, {"events": events, "last_seq": len(self.feed)}

    def set_delivery(self, order_id: str, status: str) -> Reply:
        """Record an express delivery step of an issued order (idempotent per order and status)."""
        if status not in DELIVERY_STATUSES:
            return refusal(422, "invalid_request", f"status must be one of {DELIVERY_STATUSES}")
        existing = self._deliveries.get((order_id, status))
        if existing is not None:
            return 200, existing
        refused = self._unless_issued(order_id)
        if refused is not None:
            return refused
        event = self._append_delivery_event(order_id, status)
        self._deliveries[(order_id, status)] = event
        return 200, event

    def delivery_updates(self, since_seq: int, limit: int) -> Reply:
        start = max(since_seq, 0)
        events = self.delivery_feed[start : start + limit]
        return 200, {"events": events, "last_seq": len(self.delivery_feed)}

    def counter_values(self) -> dict[str, int]:
        c = self.counters
        return {
            **c.calls,
            "locks_performed": c.locks_performed,
            "releases_performed": c.releases_performed,
            "issues_performed": len(self.issues),
            "issue_effects": c.issue_effects,
            "refunds_performed": c.refunds_performed,
            "supplier_refunds_performed": c.supplier_refunds,
            **c.injected,
        }

    def _tier(self, hold: Hold) -> Tier:
        return self.sessions[hold.session_ref].tiers[hold.tier_ref]


# -- catalog validation -------------------------------------------------------------------


def _parse_catalog(spec: object) -> dict[str, Show]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("shows"), list):
        raise CatalogError('the catalog must be an object with a "shows" list')
    check_prices = spec.get("check_prices", True)
    if not isinstance(check_prices, bool):
        raise CatalogError("check_prices must be true or false")
    shows: dict[str, Show] = {}
    session_refs: set[str] = set()
    tier_refs: set[str] = set()
    for i, raw in enumerate(spec["shows"]):
        where = f"shows[{i}]"
        show = _obj(raw, where)
        ref = _text(show, "ref", where)
        if ref in shows:
            raise CatalogError(f"{where}.ref: duplicate show {ref!r}")
        sessions: dict[str, Session] = {}
        raw_sessions = show.get("sessions")
        if not isinstance(raw_sessions, list):
            raise CatalogError(f"{where}.sessions must be a list")
        for j, raw_ses in enumerate(raw_sessions):
            ses_where = f"{where}.sessions[{j}]"
            ses = _obj(raw_ses, ses_where)
            ses_ref = _text(ses, "ref", ses_where)
            if ses_ref in session_refs:
                raise CatalogError(f"{ses_where}.ref: duplicate session {ses_ref!r}")
            session_refs.add(ses_ref)
            tiers: dict[str, Tier] = {}
            raw_tiers = ses.get("tiers")
            if not isinstance(raw_tiers, list):
                raise CatalogError(f"{ses_where}.tiers must be a list")
            for k, raw_tier in enumerate(raw_tiers):
                tier = _parse_tier(raw_tier, f"{ses_where}.tiers[{k}]", check_prices)
                if tier.ref in tier_refs:
                    raise CatalogError(f"{ses_where}.tiers[{k}].ref: duplicate tier {tier.ref!r}")
                tier_refs.add(tier.ref)
                tiers[tier.ref] = tier
            real_name = ses.get("real_name_required", False)
            if not isinstance(real_name, bool):
                raise CatalogError(f"{ses_where}.real_name_required must be a boolean")
            per_id = ses.get("tickets_per_id", 1)
            if type(per_id) is not int or not 1 <= per_id <= 10:
                raise CatalogError(f"{ses_where}.tickets_per_id must be an integer from 1 to 10")
            sessions[ses_ref] = Session(
                ses_ref,
                ref,
                _time(ses, "starts_at", ses_where),
                _status(ses, ses_where),
                tiers,
                real_name,
                per_id,
            )
        shows[ref] = Show(
            ref,
            _text(show, "title", where),
            _text(show, "city", where),
            _text(show, "category", where),
            _text(show, "venue", where),
            _time(show, "starts_at", where),
            _status(show, where),
            sessions,
        )
    return shows


def _parse_tier(raw: object, where: str, check_prices: bool = True) -> Tier:
    tier = _obj(raw, where)
    face_value = _int(tier, "face_value", where, signed=not check_prices)
    price = _int(tier, "price", where, signed=not check_prices)
    settlement_price = _int(tier, "settlement_price", where, signed=not check_prices)
    stock = _int(tier, "stock", where)
    if check_prices and not settlement_price <= price <= face_value:
        raise CatalogError(f"{where}: expected settlement_price <= price <= face_value")
    return Tier(
        ref=_text(tier, "ref", where),
        name=_text(tier, "name", where),
        face_value=face_value,
        price=price,
        settlement_price=settlement_price,
        currency=_text(tier, "currency", where),
        stock=stock,
        available=stock,
    )


def _obj(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where} must be an object")
    return raw


def _text(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise CatalogError(f"{where}.{name} must be a non-empty string")
    return value


def _int(obj: Mapping[str, Any], name: str, where: str, *, signed: bool = False) -> int:
    value = obj.get(name)
    if type(value) is not int or (value < 0 and not signed):
        raise CatalogError(f"{where}.{name} must be a non-negative integer (minor units)")
    return value


def _time(obj: Mapping[str, Any], name: str, where: str) -> str:
    text = _text(obj, name, where)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CatalogError(f"{where}.{name} must be an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise CatalogError(f"{where}.{name} must carry an offset")
    return parsed.isoformat()


def _status(obj: Mapping[str, Any], where: str) -> str:
    status = obj.get("status", "online")
    if status not in ("online", "offline"):
        raise CatalogError(f'{where}.status must be "online" or "offline"')
    return str(status)
