"""The typed snapshot renders to the JSON the API returns, a statement stores and its digest
is of: same keys, same nesting, same order of keys and of list items, same values.

The expected dicts are worked out by hand from the rules (docs/design.md, "Flows";
`domain.settlement`): lines sorted by (party, currency), currencies sorted, `*_minus` the
magnitudes of the negative flows, `net = plus - minus`, `retained = receivable net -
settlement net`, to-date figures over every period up to and including the snapshot's.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain.flows import FlowKind
from domain.settlement import (
    FlowRow,
    PeriodSummary,
    PeriodView,
    SettlementBook,
    Snapshot,
    Statement,
)

TZ = ZoneInfo("Asia/Shanghai")
P0, P1, P2, P3 = "2026-04-30", "2026-05-01", "2026-05-02", "2026-05-03"
REC, SET = FlowKind.RECEIVABLE.value, FlowKind.SETTLEMENT.value

ALL_CHECKS_PASS = {
    "period": True,
    "to_date": True,
    "orders": True,
    "violating_orders_count": 0,
    "violating_orders": [],
}


def currency(
    code: str,
    rec: tuple[int, int] = (0, 0),
    sett: tuple[int, int] = (0, 0),
    to_date: tuple[int, int] = (0, 0),
) -> dict[str, Any]:
    """A currency's totals, written out: (plus, minus) of each kind, (rec, set) to date."""
    return {
        "currency": code,
        "receivable_plus": rec[0],
        "receivable_minus": rec[1],
        "receivable_net": rec[0] - rec[1],
        "settlement_plus": sett[0],
        "settlement_minus": sett[1],
        "settlement_net": sett[0] - sett[1],
        "retained": (rec[0] - rec[1]) - (sett[0] - sett[1]),
        "receivable_to_date": to_date[0],
        "settlement_to_date": to_date[1],
        "retained_to_date": to_date[0] - to_date[1],
    }


def _line(party: str, kind: str, party_id: str, code: str, plus: int, minus: int) -> dict[str, Any]:
    return {
        f"{party}_id": party_id,
        "currency": code,
        f"{kind}_plus": plus,
        f"{kind}_minus": minus,
        "net": plus - minus,
    }


def distributor_line(did: str, code: str, plus: int, minus: int) -> dict[str, Any]:
    return _line("distributor", "receivable", did, code, plus, minus)


def supplier_line(sid: str, code: str, plus: int, minus: int) -> dict[str, Any]:
    return _line("supplier", "settlement", sid, code, plus, minus)


def book_of(*rows: tuple[str, str, str, str, int, int, str, str]) -> SettlementBook:
    """(order, distributor, supplier, kind, sign, amount, currency, booked period) rows."""
    book = SettlementBook()
    book.apply_rows(
        FlowRow(i, oid, did, sid, kind, sign, 0, amount, code, period)
        for i, (oid, did, sid, kind, sign, amount, code, period) in enumerate(rows, 1)
    )
    return book


def two_currencies() -> SettlementBook:
    return book_of(
        ("o1", "dst_b", "sup_x", REC, +1, 1000, "CNY", P1),
        ("o1", "dst_b", "sup_x", SET, +1, 800, "CNY", P1),
        ("o2", "dst_a", "sup_y", REC, +1, 500, "JPY", P1),
        ("o3", "dst_a", "sup_x", REC, +1, 2000, "CNY", P1),
        ("o3", "dst_a", "sup_x", REC, -1, 2000, "CNY", P2),
        ("o2", "dst_a", "sup_y", SET, +1, 400, "JPY", P2),
        ("o1", "dst_b", "sup_x", SET, -1, 800, "CNY", P2),
    )


TWO_CURRENCIES = {
    P1: {
        "period": P1,
        "flows": 4,
        "currencies": [
            currency("CNY", rec=(3000, 0), sett=(800, 0), to_date=(3000, 800)),
            currency("JPY", rec=(500, 0), to_date=(500, 0)),
        ],
        "distributors": [
            distributor_line("dst_a", "CNY", 2000, 0),
            distributor_line("dst_a", "JPY", 500, 0),
            distributor_line("dst_b", "CNY", 1000, 0),
        ],
        "suppliers": [supplier_line("sup_x", "CNY", 800, 0)],
        "checks": ALL_CHECKS_PASS,
        "holds": True,
    },
    P2: {
        "period": P2,
        "flows": 3,
        "currencies": [
            # CNY: -2000 receivable, -800 settlement: retained -1200 on the day, 1000 to date.
            currency("CNY", rec=(0, 2000), sett=(0, 800), to_date=(1000, 0)),
            currency("JPY", sett=(400, 0), to_date=(500, 400)),
        ],
        "distributors": [distributor_line("dst_a", "CNY", 0, 2000)],
        "suppliers": [
            supplier_line("sup_x", "CNY", 0, 800),
            supplier_line("sup_y", "JPY", 400, 0),
        ],
        "checks": {**ALL_CHECKS_PASS, "period": False},
        "holds": True,
    },
    # No flows of its own: the currencies still show, with their totals to date.
    P3: {
        "period": P3,
        "flows": 0,
        "currencies": [
            currency("CNY", to_date=(1000, 0)),
            currency("JPY", to_date=(500, 400)),
        ],
        "distributors": [],
        "suppliers": [],
        "checks": ALL_CHECKS_PASS,
        "holds": True,
    },
}


def settled_without_receivables() -> SettlementBook:
    """102 orders with a settlement and no receivable: each breaks the order check."""
    return book_of(
        ("a", "dst_a", "sup_z", REC, +1, 50, "USD", P1),
        *((f"v{i:03d}", "dst_a", "sup_z", SET, +1, 100, "USD", P1) for i in range(102)),
    )


VIOLATIONS = {
    P0: {
        "period": P0,
        "flows": 0,
        "currencies": [],
        "distributors": [],
        "suppliers": [],
        "checks": ALL_CHECKS_PASS,
        "holds": True,
    },
    P1: {
        "period": P1,
        "flows": 103,
        "currencies": [currency("USD", rec=(50, 0), sett=(10200, 0), to_date=(50, 10200))],
        "distributors": [distributor_line("dst_a", "USD", 50, 0)],
        "suppliers": [supplier_line("sup_z", "USD", 10200, 0)],
        "checks": {
            "period": False,
            "to_date": False,
            "orders": False,
            "violating_orders_count": 102,
            "violating_orders": [f"v{i:03d}" for i in range(100)],  # the first 100 listed
        },
        "holds": False,
    },
}

CASES = [
    *((two_currencies, p, want) for p, want in TWO_CURRENCIES.items()),
    *((settled_without_receivables, p, want) for p, want in VIOLATIONS.items()),
]
IDS = [f"{build.__name__}-{period}" for build, period, _ in CASES]


def same_json(got: Any, want: Any) -> bool:
    """Equal, and equal as JSON text: the order of keys counts too."""
    return bool(got == want) and json.dumps(got) == json.dumps(want)


@pytest.mark.parametrize(("build", "period", "want"), CASES, ids=IDS)
def test_a_snapshot_renders_to_the_api_shape(build: Any, period: str, want: dict[str, Any]) -> None:
    snap = build().snapshot(period)
    assert same_json(snap.as_dict(), want)
    assert snap.holds is want["holds"]
    assert [d.distributor_id for d in snap.distributors] == [
        d["distributor_id"] for d in want["distributors"]
    ]


@pytest.mark.parametrize(("build", "period", "want"), CASES, ids=IDS)
def test_a_stored_body_reads_back_as_the_same_snapshot(
    build: Any, period: str, want: dict[str, Any]
) -> None:
    snap = build().snapshot(period)
    assert Snapshot.from_dict(want) == snap
    assert same_json(Snapshot.from_dict(snap.as_dict()).as_dict(), want)


def test_an_open_period_view_adds_the_high_water_mark() -> None:
    view = PeriodView(two_currencies().snapshot(P2), as_of_flow_id=7)
    assert view.closed is False
    assert same_json(view.as_dict(), {**TWO_CURRENCIES[P2], "closed": False, "as_of_flow_id": 7})


def test_a_statement_stores_the_snapshot_json_and_its_digest() -> None:
    closed_at = datetime(2026, 5, 3, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    statement = Statement.of(two_currencies().snapshot(P2), closed_at)
    want = TWO_CURRENCIES[P2]
    assert same_json(statement.body, want)
    canonical = json.dumps(want, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert statement.digest == hashlib.sha256(canonical.encode()).hexdigest()
    assert statement.period == P2
    view = statement.view(TZ)
    assert view.closed is True
    assert same_json(
        view.as_dict(),
        {
            **want,
            "closed": True,
            "closed_at": "2026-05-03T09:30:00+08:00",
            "digest": statement.digest,
        },
    )


def test_period_summaries_render_the_periods_list_lines() -> None:
    book = two_currencies()
    assert same_json(
        PeriodSummary.of(book.snapshot(P2), status="open", closed_at=None).as_dict(),
        {
            "period": P2,
            "flows": 3,
            "currencies": [
                {
                    "currency": "CNY",
                    "receivable_net": -2000,
                    "settlement_net": -800,
                    "retained": -1200,
                    "retained_to_date": 1000,
                },
                {
                    "currency": "JPY",
                    "receivable_net": 0,
                    "settlement_net": 400,
                    "retained": -400,
                    "retained_to_date": 100,
                },
            ],
            "holds": True,
            "status": "open",
            "closed_at": None,
        },
    )
    statement = Statement.of(book.snapshot(P3), datetime(2026, 5, 4, 16, 0, tzinfo=UTC))
    assert same_json(
        statement.summary(TZ).as_dict(),
        {
            "period": P3,
            "flows": 0,
            "currencies": [
                {
                    "currency": "CNY",
                    "receivable_net": 0,
                    "settlement_net": 0,
                    "retained": 0,
                    "retained_to_date": 1000,
                },
                {
                    "currency": "JPY",
                    "receivable_net": 0,
                    "settlement_net": 0,
                    "retained": 0,
                    "retained_to_date": 100,
                },
            ],
            "holds": True,
            "status": "closed",
            "closed_at": "2026-05-05T00:00:00+08:00",
        },
    )


def test_typed_replies_survive_pickling() -> None:
    """The settlement actor sends them to the API replicas through Ray (pickle)."""
    snap = settled_without_receivables().snapshot(P1)
    replies: list[PeriodView | PeriodSummary] = [
        PeriodView(snap, as_of_flow_id=103),
        Statement.of(snap, datetime(2026, 5, 2, tzinfo=UTC)).view(TZ),
        PeriodSummary.of(snap, status="open", closed_at=None),
    ]
    for reply in replies:
        copy = pickle.loads(pickle.dumps(reply))  # noqa: S301 - our own bytes
        assert copy == reply
        assert copy.as_dict() == reply.as_dict()
