"""Settlement, the pure part: periods, the in-memory book of flows, and typed snapshots.

A snapshot of a period is a `Snapshot`, filled either from a `SettlementBook` (the settlement
actor's in-memory fold of flow rows) or from SQL GROUP BYs (`persistence.settlement`); both
sum into `PeriodFigures` and `Snapshot.from_figures` applies the rules, so the tests and the
benchmark compare the two to the minor unit. `as_dict()` renders the JSON the API returns and
a statement stores (its digest is of that JSON). Amounts are int minor units; `*_minus`
figures are the positive magnitudes of the negative flows, and `net = plus - minus`.

The receivable >= settlement checks of a snapshot of period P:
- `period`: over P's own flows, receivable net >= settlement net in every currency. Reported,
  but not part of `holds`: a day with more refunds than sales is legitimately negative (the
  supplier refunds us on day 2, we refund the distributor on day 3: day 3 is -receivable only).
- `to_date`: over every flow booked up to and including P, per currency: what the platform has
  collected covers what it owes suppliers.
- `orders`: the same for each order, over its flows booked up to and including P.
`holds` = `to_date` and `orders`.

The book (`SettlementBook`): per booked period, per distributor (receivable +, -) and per
supplier (settlement +, -), per currency; per order the flows it has, for the receivable >=
settlement check. It only depends on the set of rows folded, not on the order they come in,
so a restart rebuilds it exactly from the ledger. Snapshots come from it in microseconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, datetime, tzinfo
from typing import Any, NamedTuple

from domain.errors import Refusal
from domain.flows import Flow, FlowKind, period_of

MAX_LISTED_VIOLATIONS = 100

# --------------------------------------------------------------------------- periods

_PERIOD = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BadPeriod(ValueError, Refusal):
    """Not a period key (a calendar day, YYYY-MM-DD)."""


class PeriodNotOver(Refusal):
    """The period is today or later in the platform's time zone: it cannot be closed yet."""


def parse_period(value: str) -> str:
    if not _PERIOD.match(value):
        raise BadPeriod(f"{value!r} is not a period (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise BadPeriod(f"{value!r} is not a calendar day") from exc


def period_is_over(period: str, *, tz: tzinfo, now: datetime) -> bool:
    return date.fromisoformat(period) < now.astimezone(tz).date()


# --------------------------------------------------------------------------- typed snapshots


def _plain(value: Any) -> Any:
    """A record as JSON-able data: dataclasses as dicts in field order, tuples as lists,
    instants in ISO 8601."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


class _Record:
    """A frozen record whose JSON is its fields, in their order, under their names."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _plain(self)
        return out


@dataclass(frozen=True, slots=True)
class CurrencyTotals(_Record):
    """One currency of a period: its own flows, and those booked up to and including it."""

    currency: str
    receivable_plus: int
    receivable_minus: int
    receivable_net: int
    settlement_plus: int
    settlement_minus: int
    settlement_net: int
    retained: int  # receivable_net - settlement_net
    receivable_to_date: int
    settlement_to_date: int
    retained_to_date: int


@dataclass(frozen=True, slots=True)
class DistributorLine(_Record):
    distributor_id: str
    currency: str
    receivable_plus: int
    receivable_minus: int
    net: int


@dataclass(frozen=True, slots=True)
class SupplierLine(_Record):
    supplier_id: str
    currency: str
    settlement_plus: int
    settlement_minus: int
    net: int


@dataclass(frozen=True, slots=True)
class Checks(_Record):
    period: bool
    to_date: bool
    orders: bool
    violating_orders_count: int
    violating_orders: tuple[str, ...]  # sorted, the first MAX_LISTED_VIOLATIONS of them


@dataclass(slots=True)
class PeriodFigures:
    """What a snapshot is made of, however it was summed."""

    flows: int = 0
    distributors: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [+, -]
    suppliers: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # [+, -]
    to_date: dict[str, list[int]] = field(default_factory=dict)  # currency -> [rec, set] net
    violating_orders: list[str] = field(default_factory=list)  # sorted


def _party_sums(
    parties: Mapping[tuple[str, str], Sequence[int]],
    by_currency: dict[str, list[int]],
    offset: int,
) -> list[tuple[str, str, int, int]]:
    """(party, currency, plus, minus) per line, sorted, each added into its currency's
    [receivable +, receivable -, settlement +, settlement -] at offset."""
    out = []
    for (party_id, code), (plus, minus) in sorted(parties.items()):
        sums = by_currency.setdefault(code, [0, 0, 0, 0])
        sums[offset] += plus
        sums[offset + 1] += minus
        out.append((party_id, code, plus, minus))
    return out


@dataclass(frozen=True, slots=True)
class Snapshot(_Record):
    """A period's totals per currency, per distributor and per supplier, and the checks."""

    period: str
    flows: int
    currencies: tuple[CurrencyTotals, ...]  # by currency
    distributors: tuple[DistributorLine, ...]  # by (distributor, currency)
    suppliers: tuple[SupplierLine, ...]  # by (supplier, currency)
    checks: Checks
    holds: bool  # checks.to_date and checks.orders

    @classmethod
    def from_figures(cls, period: str, fig: PeriodFigures) -> Snapshot:
        by_currency: dict[str, list[int]] = {}
        distributors = tuple(
            DistributorLine(did, code, plus, minus, plus - minus)
            for did, code, plus, minus in _party_sums(fig.distributors, by_currency, 0)
        )
        suppliers = tuple(
            SupplierLine(sid, code, plus, minus, plus - minus)
            for sid, code, plus, minus in _party_sums(fig.suppliers, by_currency, 2)
        )
        for code in fig.to_date:
            by_currency.setdefault(code, [0, 0, 0, 0])
        currencies = []
        for code, (rec_plus, rec_minus, set_plus, set_minus) in sorted(by_currency.items()):
            rec_to_date, set_to_date = fig.to_date.get(code, (0, 0))
            rec_net, set_net = rec_plus - rec_minus, set_plus - set_minus
            currencies.append(
                CurrencyTotals(
                    currency=code,
                    receivable_plus=rec_plus,
                    receivable_minus=rec_minus,
                    receivable_net=rec_net,
                    settlement_plus=set_plus,
                    settlement_minus=set_minus,
                    settlement_net=set_net,
                    retained=rec_net - set_net,
                    receivable_to_date=rec_to_date,
                    settlement_to_date=set_to_date,
                    retained_to_date=rec_to_date - set_to_date,
                )
            )
        checks = Checks(
            period=all(c.retained >= 0 for c in currencies),
            to_date=all(c.retained_to_date >= 0 for c in currencies),
            orders=not fig.violating_orders,
            violating_orders_count=len(fig.violating_orders),
            violating_orders=tuple(fig.violating_orders[:MAX_LISTED_VIOLATIONS]),
        )
        return cls(
            period=period,
            flows=fig.flows,
            currencies=tuple(currencies),
            distributors=distributors,
            suppliers=suppliers,
            checks=checks,
            holds=checks.to_date and checks.orders,
        )

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Snapshot:
        """The snapshot `as_dict` rendered (a stored statement's body)."""
        checks = body["checks"]
        return cls(
            period=body["period"],
            flows=body["flows"],
            currencies=tuple(CurrencyTotals(**c) for c in body["currencies"]),
            distributors=tuple(DistributorLine(**d) for d in body["distributors"]),
            suppliers=tuple(SupplierLine(**s) for s in body["suppliers"]),
            checks=Checks(**{**checks, "violating_orders": tuple(checks["violating_orders"])}),
            holds=body["holds"],
        )


@dataclass(frozen=True, slots=True)
class PeriodView:
    """A period as the API shows it: an open one's snapshot from the book, as of a flow id,
    or a closed one's statement, with its closing time and digest."""

    snapshot: Snapshot
    as_of_flow_id: int | None = None  # open: the highest flow id the book had read
    closed_at: datetime | None = None  # closed: when, in the platform's time zone
    digest: str | None = None  # closed: sha256 of the statement's canonical JSON

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    def as_dict(self) -> dict[str, Any]:
        body = self.snapshot.as_dict()
        if self.closed_at is None:
            return {**body, "closed": False, "as_of_flow_id": self.as_of_flow_id}
        return {
            **body,
            "closed": True,
            "closed_at": self.closed_at.isoformat(),
            "digest": self.digest,
        }


@dataclass(frozen=True, slots=True)
class CurrencySummary(_Record):
    currency: str
    receivable_net: int
    settlement_net: int
    retained: int
    retained_to_date: int


@dataclass(frozen=True, slots=True)
class PeriodSummary(_Record):
    """The line of a period in the periods list."""

    period: str
    flows: int
    currencies: tuple[CurrencySummary, ...]
    holds: bool
    status: str  # "open" or "closed"
    closed_at: datetime | None  # in the platform's time zone

    @classmethod
    def of(cls, snap: Snapshot, *, status: str, closed_at: datetime | None) -> PeriodSummary:
        return cls(
            period=snap.period,
            flows=snap.flows,
            currencies=tuple(
                CurrencySummary(
                    c.currency, c.receivable_net, c.settlement_net, c.retained, c.retained_to_date
                )
                for c in snap.currencies
            ),
            holds=snap.holds,
            status=status,
            closed_at=closed_at,
        )


# --------------------------------------------------------------------------- statements


def canonical_json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Statement:
    """A closed period's frozen snapshot: `body` is its JSON as stored, `digest` of that."""

    period: str
    body: dict[str, Any]
    digest: str
    closed_at: datetime

    @classmethod
    def of(cls, snapshot: Snapshot, closed_at: datetime) -> Statement:
        body = snapshot.as_dict()
        return cls(snapshot.period, body, digest_of(body), closed_at)

    @property
    def snapshot(self) -> Snapshot:
        return Snapshot.from_dict(self.body)

    def view(self, tz: tzinfo) -> PeriodView:
        return PeriodView(
            self.snapshot, closed_at=self.closed_at.astimezone(tz), digest=self.digest
        )

    def summary(self, tz: tzinfo) -> PeriodSummary:
        return PeriodSummary.of(
            self.snapshot, status="closed", closed_at=self.closed_at.astimezone(tz)
        )


# --------------------------------------------------------------------------- flows export

CSV_COLUMNS = (
    "id",
    "order_id",
    "distributor_id",
    "supplier_id",
    "kind",
    "sign",
    "refund_no",
    "amount",
    "signed_amount",
    "currency",
    "basis_time",
    "basis_period",
    "booked_period",
    "created_at",
)


def csv_lines(rows: Iterable[Mapping[str, Any]], tz: tzinfo) -> Iterable[list[str]]:
    """Flow rows (the flows table's columns and `signed_amount`) as CSV lines, header first;
    instants in the platform's time zone."""
    yield list(CSV_COLUMNS)
    for m in rows:
        yield [
            (m[c].astimezone(tz).isoformat() if isinstance(m[c], datetime) else str(m[c]))
            for c in CSV_COLUMNS
        ]


# --------------------------------------------------------------------------- the book


class FlowRow(NamedTuple):
    """A flow as the book needs it; the column order of `persistence.settlement.TAIL_COLUMNS`,
    so database rows can be folded without conversion."""

    id: int
    order_id: str
    distributor_id: str
    supplier_id: str
    kind: str  # a FlowKind's value
    sign: int
    refund_no: int
    amount: int
    currency: str
    booked_period: str


def rows_from_flows(flows: Iterable[Flow], tz: tzinfo, *, first_id: int = 1) -> list[FlowRow]:
    """Flows as rows booked into their basis period (no period closed), numbered from first_id."""
    return [
        FlowRow(
            first_id + i,
            f.order_id,
            f.distributor_id,
            f.supplier_id,
            f.kind.value,
            f.sign,
            f.refund_no,
            f.amount,
            f.currency,
            period_of(f.basis_time, tz).isoformat(),
        )
        for i, f in enumerate(flows)
    ]


class _Period:
    __slots__ = ("distributors", "flows", "suppliers", "to_date_delta")

    def __init__(self) -> None:
        self.flows = 0
        self.distributors: dict[tuple[str, str], list[int]] = {}
        self.suppliers: dict[tuple[str, str], list[int]] = {}
        self.to_date_delta: dict[str, list[int]] = {}  # currency -> [receivable, settlement] net


# An order's flows: (kind, sign, refund_no, booked_period, signed amount)
_OrderFlow = tuple[str, int, int, str, int]


def _has_key(mine: list[_OrderFlow], kind: str, sign: int, refund_no: int) -> bool:
    # A plain loop: any() over a generator costs twice as much on the rebuild's hot path.
    for f in mine:  # noqa: SIM110
        if f[0] == kind and f[1] == sign and f[2] == refund_no:
            return True
    return False


def _period_of_flow(f: _OrderFlow) -> str:
    return f[3]


class SettlementBook:
    """Per-period totals of a set of flows; adding a flow twice (same key) counts it once."""

    def __init__(self) -> None:
        self._periods: dict[str, _Period] = {}
        self._orders: dict[str, list[_OrderFlow]] = {}
        # Orders whose receivable < settlement over their flows up to some periods:
        # order id -> [(from period, until period exclusive or None)].
        self._violations: dict[str, list[tuple[str, str | None]]] = {}
        self.flow_count = 0

    def apply_rows(self, rows: Iterable[Sequence[Any]]) -> int:
        """Fold rows (FlowRow or TAIL_COLUMNS tuples); returns how many were new."""
        periods = self._periods
        orders = self._orders
        receivable = FlowKind.RECEIVABLE.value
        touched: set[str] = set()
        added = 0
        for _id, oid, did, sid, kind, sign, refund_no, amount, code, booked in rows:
            mine = orders.get(oid)
            if mine is None:
                mine = orders[oid] = []
            elif _has_key(mine, kind, sign, refund_no):
                continue  # the ledger's unique key: already counted
            signed = amount if sign > 0 else -amount
            mine.append((kind, sign, refund_no, booked, signed))
            p = periods.get(booked)
            if p is None:
                p = periods[booked] = _Period()
            p.flows += 1
            if kind == receivable:
                key = (did, code)
                line = p.distributors.get(key)
                if line is None:
                    line = p.distributors[key] = [0, 0]
                which = 0
            else:
                key = (sid, code)
                line = p.suppliers.get(key)
                if line is None:
                    line = p.suppliers[key] = [0, 0]
                which = 1
            line[0 if sign > 0 else 1] += amount
            delta = p.to_date_delta.get(code)
            if delta is None:
                delta = p.to_date_delta[code] = [0, 0]
            delta[which] += signed
            # A receivable + alone never breaks the order check: skip the common first flow.
            if len(mine) > 1 or which or sign < 0:
                touched.add(oid)
            added += 1
        for oid in touched:
            self._check_order(oid)
        self.flow_count += added
        return added

    def add_flows(self, flows: Iterable[Flow], tz: tzinfo) -> int:
        return self.apply_rows(rows_from_flows(flows, tz))

    def _check_order(self, oid: str) -> None:
        """Record the periods over which the order's flows up to then have
        receivable net < settlement net (each span runs to the order's next period)."""
        mine = self._orders[oid]
        ordered = sorted(mine, key=_period_of_flow) if len(mine) > 1 else mine
        n = len(ordered)
        receivable = FlowKind.RECEIVABLE.value
        rec = sett = 0
        spans: list[tuple[str, str | None]] = []
        for i, (kind, _sign, _refund_no, booked, signed) in enumerate(ordered):
            if kind == receivable:
                rec += signed
            else:
                sett += signed
            following = ordered[i + 1][3] if i + 1 < n else None
            if following != booked and rec < sett:
                spans.append((booked, following))
        if spans:
            self._violations[oid] = spans
        else:
            self._violations.pop(oid, None)

    # -- reading -----------------------------------------------------------------------------
    def periods(self) -> list[str]:
        return sorted(self._periods)

    def figures(self, period: str) -> PeriodFigures:
        fig = PeriodFigures()
        p = self._periods.get(period)
        if p is not None:
            fig.flows = p.flows
            fig.distributors = {k: list(v) for k, v in p.distributors.items()}
            fig.suppliers = {k: list(v) for k, v in p.suppliers.items()}
        for key, q in self._periods.items():
            if key <= period:
                for code, (rec, sett) in q.to_date_delta.items():
                    acc = fig.to_date.setdefault(code, [0, 0])
                    acc[0] += rec
                    acc[1] += sett
        fig.violating_orders = sorted(
            oid
            for oid, spans in self._violations.items()
            if any(start <= period and (end is None or period < end) for start, end in spans)
        )
        return fig

    def snapshot(self, period: str) -> Snapshot:
        return Snapshot.from_figures(period, self.figures(period))

    def order_nets(self, order_id: str) -> tuple[int, int]:
        """(receivable net, settlement net) of an order over all its flows."""
        rec = sett = 0
        for kind, _s, _r, _p, signed in self._orders.get(order_id, ()):
            if kind == FlowKind.RECEIVABLE:
                rec += signed
            else:
                sett += signed
        return rec, sett
