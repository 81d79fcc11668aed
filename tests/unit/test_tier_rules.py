"""The rule a supplier's tier must pass to be sold (domain/tier_rules.py): each kind of
refusal, the currency normalised only when that is unambiguous, and the reason's shape."""

from __future__ import annotations

from typing import Any

import pytest

from domain.money import Money
from domain.tier_rules import (
    ISO_4217,
    MAX_MINOR_UNITS,
    TierRefusal,
    check_tier,
    normalise_currency,
)


def check(
    face_value: int = 38000,
    price: int = 36000,
    settlement_price: int = 32400,
    currency: str = "CNY",
) -> tuple[TierRefusal | None, str]:
    """The refusal and the currency of a well-formed tier, with the values given changed."""
    result = check_tier(face_value, price, settlement_price, currency)
    return result.refusal, result.currency


def test_a_well_formed_tier_is_accepted_as_it_is() -> None:
    result = check_tier(38000, 36000, 32400, "CNY")
    assert result.accepted
    assert (result.refusal, result.reason, result.currency) == (None, None, "CNY")


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"price": -1, "settlement_price": -2}, TierRefusal.NEGATIVE_PRICE),
        ({"settlement_price": -1}, TierRefusal.NEGATIVE_PRICE),
        ({"face_value": -1}, TierRefusal.NEGATIVE_PRICE),
        ({"settlement_price": 36001}, TierRefusal.SETTLEMENT_ABOVE_PRICE),
        ({"face_value": 35999}, TierRefusal.FACE_VALUE_BELOW_PRICE),
        ({"face_value": MAX_MINOR_UNITS + 1}, TierRefusal.PRICE_TOO_LARGE),
        ({"currency": "RMB"}, TierRefusal.BAD_CURRENCY),
        ({"currency": "XXX"}, TierRefusal.BAD_CURRENCY),  # "no currency" prices nothing
        ({"currency": "XAU"}, TierRefusal.BAD_CURRENCY),  # nor does gold
        ({"currency": "C N Y"}, TierRefusal.BAD_CURRENCY),
        ({"currency": " CNY"}, TierRefusal.BAD_CURRENCY),
        ({"currency": "ＣＮＹ"}, TierRefusal.BAD_CURRENCY),  # noqa: RUF001 - full-width letters
        ({"currency": "CNYX"}, TierRefusal.BAD_CURRENCY),
        ({"currency": ""}, TierRefusal.BAD_CURRENCY),
    ],
    ids=lambda v: str(v),
)
def test_each_kind_of_bad_tier_is_refused(changes: dict[str, Any], refusal: TierRefusal) -> None:
    assert check(**changes)[0] is refusal


def test_the_boundaries_are_allowed() -> None:
    # settlement == price == face value, a free ticket, the largest price: all sellable
    assert check(face_value=36000, settlement_price=36000)[0] is None
    assert check(face_value=0, price=0, settlement_price=0)[0] is None
    assert check(face_value=MAX_MINOR_UNITS, price=MAX_MINOR_UNITS)[0] is None


@pytest.mark.parametrize(("given", "stored"), [("cny", "CNY"), ("Cny", "CNY"), ("jPy", "JPY")])
def test_a_currency_in_the_wrong_case_is_normalised(given: str, stored: str) -> None:
    assert check(currency=given) == (None, stored)
    assert normalise_currency(given) == stored


def test_the_reason_names_the_refusal_and_the_values() -> None:
    result = check_tier(38000, 36000, 40000, "CNY")
    assert result.reason == "settlement_above_price: settlement_price 40000 > price 36000"
    long = check_tier(1, 1, 1, "x" * 500)
    assert long.reason is not None
    assert len(long.reason) <= 200
    assert long.reason.startswith("bad_currency: 'xxxxxxxx")


def test_a_refused_currency_is_kept_as_given_and_a_known_one_normalised_even_when_refused() -> None:
    assert check_tier(1, 1, 1, "rmb").currency == "rmb"
    assert check_tier(1, 2, 1, "cny").currency == "CNY"  # refused for its prices


def test_the_first_refusal_is_the_one_reported() -> None:
    assert check(price=-1, settlement_price=40000, currency="RMB")[0] is (
        TierRefusal.NEGATIVE_PRICE
    )


def test_the_code_list_is_iso_4217_shaped_and_every_code_makes_money() -> None:
    assert len(ISO_4217) > 150
    assert {"CNY", "USD", "EUR", "HKD", "JPY", "GBP"} <= ISO_4217
    for code in ISO_4217:
        assert (len(code), code.isascii(), code.isupper()) == (3, True, True), code
        Money(1, code)  # an accepted currency never makes the order's money fail
