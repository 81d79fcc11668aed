"""Pure mapping between showdist and pretix (no I/O): the pretix order code and idempotency keys
an order gets, refs of sessions and tiers, money in minor units, the catalog built from
pretix's event, products, dates and quotas, and what an order's pretix state says.

docs/pretix.md describes the mapping; tests/unit/test_pretix_mapping.py checks it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from suppliers.gateway import Catalog, CatalogSession, CatalogShow, CatalogTier, Ticket

__all__ = [
    "CODE_ALPHABET",
    "EVENT_SESSION_REF",
    "UNLIMITED_STOCK",
    "CatalogInput",
    "CatalogView",
    "OrderState",
    "TierRef",
    "build_catalog",
    "feed_seq",
    "idempotency_key",
    "minor_units",
    "order_code",
    "parse_session_ref",
    "parse_tier_ref",
    "scaled_price",
    "seq_time",
    "session_ref",
    "tickets_of",
    "tier_ref",
]

# The characters pretix allows in an order code (no I, no O).
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ1234567890"
CODE_LENGTH = 16  # pretix's maximum: about 81 bits
EVENT_SESSION_REF = "event"  # the one session of a pretix event without dates
UNLIMITED_STOCK = 1_000_000  # what a quota without a size reports
META_KEY = "showdist_order_id"  # where a pretix order keeps the showdist order id
_SEQ_SHIFT = 8  # a feed sequence number: microseconds << 8 | 8 bits of the order code

# ISO 4217 minor-unit exponents that are not 2 (every other active code has 2).
_EXPONENTS: dict[str, int] = {
    **{c: 0 for c in ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG")},
    **{c: 0 for c in ("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF")},
    **{c: 3 for c in ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")},
    **{c: 4 for c in ("CLF", "UYW")},
}


def order_code(order_id: str) -> str:
    """The pretix order code of a showdist order: derived from its id, so a retried or
    repeated lock can never make a second pretix order (pretix refuses a code in use), and
    every later call finds the order without a lookup."""
    digest = int.from_bytes(hashlib.blake2b(order_id.encode(), digest_size=16).digest(), "big")
    chars = []
    for _ in range(CODE_LENGTH):
        digest, index = divmod(digest, len(CODE_ALPHABET))
        chars.append(CODE_ALPHABET[index])
    return "".join(chars)


def idempotency_key(step: str, order_id: str) -> str:
    """The `X-Idempotency-Key` of one step (`lock`, `release`, `issue`, `refund`) of an order.
    pretix answers a repeated key with the first answer, without acting again; a request with
    the key of a step that never reached pretix *claims* it (see `PretixGateway._fence`)."""
    return f"showdist-{step}-{order_code(order_id)}"


# -- refs ------------------------------------------------------------------------------------


def session_ref(subevent_id: int | None) -> str:
    return EVENT_SESSION_REF if subevent_id is None else f"date-{subevent_id}"


def parse_session_ref(ref: str) -> int | None:
    """The pretix date (subevent) id of a session ref, None for an event's one session;
    ValueError for a ref this gateway never made."""
    if ref == EVENT_SESSION_REF:
        return None
    prefix, _, number = ref.partition("-")
    if prefix != "date" or not _id(number):
        raise ValueError("not a pretix session ref")
    return int(number)


@dataclass(frozen=True, slots=True)
class TierRef:
    item: int
    variation: int | None = None

    def __str__(self) -> str:
        base = f"item-{self.item}"
        return base if self.variation is None else f"{base}-var-{self.variation}"


def tier_ref(item: int, variation: int | None = None) -> str:
    return str(TierRef(item, variation))


def parse_tier_ref(ref: str) -> TierRef:
    parts = ref.split("-")
    if len(parts) == 2 and parts[0] == "item" and _id(parts[1]):
        return TierRef(int(parts[1]))
    shape = len(parts) == 4 and (parts[0], parts[2]) == ("item", "var")
    if shape and _id(parts[1]) and _id(parts[3]):
        return TierRef(int(parts[1]), int(parts[3]))
    raise ValueError("not a pretix tier ref")


def _id(text: str) -> bool:
    return text.isdigit() and text.isascii() and len(text) <= 18


# -- money -----------------------------------------------------------------------------------


def minor_units(amount: Any, currency: str) -> int:
    """A pretix money value (a decimal string such as "38.00") as integer minor units of
    `currency` (ISO 4217 exponent); ValueError when it is not a whole number of them."""
    if not isinstance(amount, str):
        raise ValueError("a price is a decimal string")
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise ValueError("not a decimal price") from exc
    if not value.is_finite():
        raise ValueError("not a finite price")
    scaled = value.scaleb(_EXPONENTS.get(currency.upper(), 2))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"not a whole number of {currency} minor units")
    return int(scaled)


def scaled_price(face_value: int, basis_points: int) -> int:
    """`basis_points` / 10,000 of a price, rounded down (exact integers)."""
    return face_value * basis_points // 10_000


# -- orders ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderState:
    """What a pretix order says, as far as the gateway needs it."""

    code: str
    status: str  # n pending, p paid, e expired, c canceled
    ever_paid: bool  # a payment was confirmed (then maybe refunded or the order cancelled)
    paid_amount: Decimal  # confirmed payments less refunds done
    showdist_order_id: str | None
    cancelled_at: datetime | None
    paid_at: datetime | None
    last_modified: datetime | None
    refunded_by_us: bool  # a refund of ours (its comment) is done
    payment: tuple[int, str] | None  # (local_id, provider) of the last confirmed payment
    tickets: tuple[Ticket, ...]

    @classmethod
    def of(cls, body: Any) -> OrderState:
        """Raises KeyError/TypeError/ValueError on a body that is not a pretix order."""
        if not isinstance(body, dict):
            raise TypeError("an order is an object")
        code = body["code"]
        status = body["status"]
        if not isinstance(code, str) or status not in ("n", "p", "e", "c", "r"):
            raise ValueError("not a pretix order")
        payments = [p for p in body.get("payments") or [] if isinstance(p, dict)]
        refunds = [r for r in body.get("refunds") or [] if isinstance(r, dict)]
        confirmed = [p for p in payments if p.get("state") in ("confirmed", "refunded")]
        paid = sum((Decimal(str(p.get("amount", "0"))) for p in confirmed), Decimal(0))
        done_refunds = [r for r in refunds if r.get("state") == "done"]
        refunded = sum((Decimal(str(r.get("amount", "0"))) for r in done_refunds), Decimal(0))
        meta = body.get("api_meta")
        showdist_id = meta.get(META_KEY) if isinstance(meta, dict) else None
        last_paid = max(confirmed, key=lambda p: int(p.get("local_id", 0)), default=None)
        return cls(
            code=code,
            status="c" if status == "r" else status,
            ever_paid=bool(confirmed) or status == "p",
            paid_amount=paid - refunded,
            showdist_order_id=showdist_id if isinstance(showdist_id, str) else None,
            cancelled_at=_opt_time(body.get("cancellation_date")),
            paid_at=_opt_time(last_paid.get("payment_date")) if last_paid else None,
            last_modified=_opt_time(body.get("last_modified")),
            refunded_by_us=any(
                isinstance(r.get("comment"), str) and r["comment"].startswith(REFUND_COMMENT)
                for r in done_refunds
            ),
            payment=(int(last_paid["local_id"]), str(last_paid["provider"])) if last_paid else None,
            tickets=tickets_of(body),
        )


REFUND_COMMENT = "showdist refund"


def tickets_of(body: Mapping[str, Any]) -> tuple[Ticket, ...]:
    """The order's tickets: each position's secret (what pretix's check-in scans) and seat."""
    tickets = []
    for pos in body.get("positions") or []:
        if not isinstance(pos, dict) or pos.get("canceled"):
            continue
        secret = pos["secret"]
        if not isinstance(secret, str) or not secret:
            raise ValueError("a position without a secret")
        seat = pos.get("seat")
        name = seat.get("name") if isinstance(seat, dict) else None
        tickets.append(Ticket(code=secret, seat=name if isinstance(name, str) else None))
    return tuple(tickets)


def feed_seq(last_modified: datetime, code: str) -> int:
    """A refund event's sequence number: the order's last change in microseconds, and 8 bits
    of its code (two orders changed in the same microsecond stay two events)."""
    micros = int(last_modified.timestamp()) * 1_000_000 + last_modified.microsecond
    low = hashlib.blake2b(code.encode(), digest_size=1).digest()[0]
    return (micros << _SEQ_SHIFT) | low


def seq_time(seq: int) -> datetime | None:
    """The time a sequence number stands for (None for 0: read from the start)."""
    if seq <= 0:
        return None
    micros = seq >> _SEQ_SHIFT
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


# -- catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogView:
    """How the gateway's config reads pretix's catalog."""

    sales_channel: str = "web"
    distribution_bp: int = 10_000
    settlement_bp: int = 10_000
    timezone: str | None = None
    locale: str | None = None
    city: str | None = None
    category: str | None = None


@dataclass(frozen=True, slots=True)
class CatalogInput:
    event: Mapping[str, Any]
    items: Sequence[Mapping[str, Any]]
    subevents: Sequence[Mapping[str, Any]]
    quotas: Sequence[Mapping[str, Any]]


@dataclass(slots=True)
class BuiltCatalog:
    catalog: Catalog
    skipped: list[str] = field(default_factory=list)  # tiers left out, with why


def build_catalog(data: CatalogInput, view: CatalogView, now: datetime) -> BuiltCatalog:
    """One show for the event: its dates as sessions (an event without dates: one session),
    its admission products (and their variations) on the configured sales channel as tiers,
    priced at pretix's price (a date's own price where it has one) in minor units, with the
    stock of the quotas that govern each. Raises KeyError/TypeError/ValueError on data that
    is not pretix's; a tier whose price is not a whole number of minor units is left out
    (`skipped`)."""
    event = data.event
    locale = view.locale or _first_locale(event)
    zone = ZoneInfo(view.timezone or str(event.get("timezone") or "UTC"))
    currency = _str(event["currency"])
    raw_meta = event.get("meta_data")
    meta: Mapping[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    city = view.city if view.city is not None else str(meta.get("city") or "")
    category = view.category if view.category is not None else str(meta.get("category") or "")
    skipped: list[str] = []
    live = bool(event.get("live"))
    sessions: list[CatalogSession] = []
    if event.get("has_subevents"):
        for sub in data.subevents:
            sessions.append(
                _session(
                    data, view, sub, event, _int(sub["id"]), currency, locale, zone, now, skipped
                )
            )
    else:
        sessions.append(
            _session(data, view, None, event, None, currency, locale, zone, now, skipped)
        )
    starts = _time(event["date_from"]).astimezone(zone)
    location = _text(event.get("location"), locale)
    venue = location.strip().splitlines()[0].strip() if location.strip() else ""
    show = CatalogShow(
        ref=_str(event["slug"]),
        title=_text(event["name"], locale),
        city=city,
        category=category or "live",
        venue=venue,
        starts_at=min((s.starts_at for s in sessions), default=starts),
        status="online" if live and any(s.status == "online" for s in sessions) else "offline",
        sessions=tuple(sessions),
    )
    return BuiltCatalog(Catalog(shows=(show,)), skipped)


def _session(
    data: CatalogInput,
    view: CatalogView,
    sub: Mapping[str, Any] | None,
    event: Mapping[str, Any],
    sub_id: int | None,
    currency: str,
    locale: str,
    zone: ZoneInfo,
    now: datetime,
    skipped: list[str],
) -> CatalogSession:
    source = sub if sub is not None else event
    starts = _time(source["date_from"])
    ends = _opt_time(source.get("date_to")) or starts
    presale_start = _opt_time(source.get("presale_start")) or (
        _opt_time(event.get("presale_start")) if sub is not None else None
    )
    presale_end = _opt_time(source.get("presale_end")) or (
        _opt_time(event.get("presale_end")) if sub is not None else None
    )
    on_sale = (
        bool(event.get("live"))
        and (sub is None or bool(sub.get("active")))
        and (presale_start is None or presale_start <= now)
        and (presale_end is None or now < presale_end)
        and now < ends
    )
    item_over = {_int(o["item"]): o for o in (sub or {}).get("item_price_overrides") or []}
    var_over = {_int(o["variation"]): o for o in (sub or {}).get("variation_price_overrides") or []}
    tiers: list[CatalogTier] = []
    for item in data.items:
        if not _sellable(item, view.sales_channel, now):
            continue
        item_id = _int(item["id"])
        override = item_over.get(item_id, {})
        if override.get("disabled") or not _in_window(override, now):
            continue
        name = _text(item["name"], locale)
        if item.get("has_variations"):
            for var in item.get("variations") or []:
                if not _sellable(var, view.sales_channel, now, variation=True):
                    continue
                var_id = _int(var["id"])
                vo = var_over.get(var_id, {})
                if vo.get("disabled") or not _in_window(vo, now):
                    continue
                price = vo.get("price") or override.get("price") or var["price"]
                label = f"{name} - {_text(var['value'], locale)}"
                tier = _tier(data, view, sub_id, item_id, var_id, label, price, currency, skipped)
                if tier is not None:
                    tiers.append(tier)
        else:
            price = override.get("price") or item["default_price"]
            tier = _tier(data, view, sub_id, item_id, None, name, price, currency, skipped)
            if tier is not None:
                tiers.append(tier)
    return CatalogSession(
        ref=session_ref(sub_id),
        starts_at=starts.astimezone(zone),
        status="online" if on_sale else "offline",
        tiers=tuple(tiers),
    )


def _tier(
    data: CatalogInput,
    view: CatalogView,
    sub_id: int | None,
    item_id: int,
    var_id: int | None,
    name: str,
    price: Any,
    currency: str,
    skipped: list[str],
) -> CatalogTier | None:
    ref = tier_ref(item_id, var_id)
    try:
        face = minor_units(price, currency)
    except ValueError as exc:
        skipped.append(f"{session_ref(sub_id)}/{ref}: {exc}")
        return None
    return CatalogTier(
        ref=ref,
        name=name,
        face_value=face,
        price=scaled_price(face, view.distribution_bp),
        settlement_price=scaled_price(face, view.settlement_bp),
        currency=currency,
        available=_availability(data.quotas, sub_id, item_id, var_id),
    )


def _availability(
    quotas: Sequence[Mapping[str, Any]], sub_id: int | None, item_id: int, var_id: int | None
) -> int:
    """The least that any quota governing the product on that date has left (pretix sells a
    product only while every one of its quotas has room); 0 without a quota."""
    left: list[int] = []
    for q in quotas:
        if q.get("subevent") != sub_id or item_id not in (q.get("items") or []):
            continue
        if var_id is not None and var_id not in (q.get("variations") or []):
            continue
        if not q.get("available"):
            left.append(0)
            continue
        number = q.get("available_number")
        left.append(UNLIMITED_STOCK if number is None else max(_int(number), 0))
    return min(left, default=0)


def _sellable(
    product: Mapping[str, Any], channel: str, now: datetime, *, variation: bool = False
) -> bool:
    if not product.get("active"):
        return False
    if not variation and (
        not product.get("admission")
        or product.get("require_voucher")
        or product.get("hide_without_voucher")
        or product.get("require_bundling")
    ):
        return False
    if variation and product.get("hide_without_voucher"):
        return False
    if not product.get("all_sales_channels", True):
        channels = product.get("limit_sales_channels") or product.get("sales_channels") or []
        if channel not in channels:
            return False
    return _in_window(product, now)


def _in_window(obj: Mapping[str, Any], now: datetime) -> bool:
    start = _opt_time(obj.get("available_from"))
    end = _opt_time(obj.get("available_until"))
    return (start is None or start <= now) and (end is None or now < end)


def _first_locale(event: Mapping[str, Any]) -> str:
    name = event.get("name")
    if isinstance(name, dict) and name:
        return "en" if "en" in name else str(next(iter(name)))
    return "en"


def _text(value: Any, locale: str) -> str:
    """A pretix multi-lingual string in `locale` (then English, then any language)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in (locale, "en"):
            text = value.get(key)
            if isinstance(text, str) and text:
                return text
        for text in value.values():
            if isinstance(text, str) and text:
                return text
        return ""
    raise TypeError("not a text")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError("expected an integer")
    return value


def _time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(_str(value))
    if parsed.tzinfo is None:
        raise ValueError("a time without an offset")
    return parsed


def _opt_time(value: Any) -> datetime | None:
    return None if value in (None, "") else _time(value)
