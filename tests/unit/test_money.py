"""Money: integer minor units plus a currency, and nothing else."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.money import MINOR_UNITS, CurrencyMismatch, Money

amounts = st.integers(min_value=-(10**15), max_value=10**15)
currencies = st.sampled_from(sorted(MINOR_UNITS))


def test_add_sub_neg_times() -> None:
    a = Money(38000, "CNY")
    b = Money(1250, "CNY")
    assert a + b == Money(39250, "CNY")
    assert a - b == Money(36750, "CNY")
    assert -a == Money(-38000, "CNY")
    assert a.times(3) == Money(114000, "CNY")
    assert a.times(0) == Money(0, "CNY")


def test_results_stay_integer_minor_units() -> None:
    total = Money(38000, "CNY").times(2) + Money(1, "CNY") - Money(2, "CNY")
    assert type(total.amount) is int
    assert total == Money(75999, "CNY")


def test_negative_amounts_are_allowed() -> None:
    refund = Money(-38000, "CNY")
    assert refund.amount == -38000
    assert Money(100, "CNY") - Money(250, "CNY") == Money(-150, "CNY")
    assert -refund == Money(38000, "CNY")
    assert refund.times(2) == Money(-76000, "CNY")


@pytest.mark.parametrize("op", ["add", "sub"])
def test_currency_mismatch_raises(op: str) -> None:
    cny = Money(100, "CNY")
    jpy = Money(100, "JPY")
    with pytest.raises(CurrencyMismatch, match=r"CNY vs JPY"):
        _ = cny + jpy if op == "add" else cny - jpy


def test_currency_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="USD"):
        _ = Money(1, "EUR") + Money(1, "USD")


def test_same_amount_in_different_currencies_is_not_equal() -> None:
    assert Money(100, "CNY") != Money(100, "USD")


@pytest.mark.parametrize(
    "bad_amount",
    [float(38000), True, False, Decimal(38000), "38000", None],
    ids=["float", "true", "false", "decimal", "str", "none"],
)
def test_non_int_amounts_are_rejected(bad_amount: object) -> None:
    with pytest.raises(TypeError, match="int of minor units"):
        Money(cast(Any, bad_amount), "CNY")


def test_scaling_by_a_non_integer_cannot_produce_a_float_amount() -> None:
    # The float here is the input under test: it must not slip through `times` into an amount.
    with pytest.raises(TypeError):
        Money(38000, "CNY").times(cast(Any, float(3) / 2))


@pytest.mark.parametrize("code", ["cny", "Cny", "CN", "CNYY", "", "123"])
def test_bad_currency_codes_are_rejected(code: str) -> None:
    with pytest.raises(ValueError, match="bad currency code"):
        Money(100, code)


def test_money_is_immutable() -> None:
    m = Money(100, "CNY")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.amount = 200  # type: ignore[misc]


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(38000, "CNY"), "CNY 380.00"),
        (Money(38005, "CNY"), "CNY 380.05"),
        (Money(5, "CNY"), "CNY 0.05"),
        (Money(0, "CNY"), "CNY 0.00"),
        (Money(-38005, "CNY"), "CNY -380.05"),
        (Money(-5, "CNY"), "CNY -0.05"),
        (Money(123456789, "USD"), "USD 1234567.89"),
        (Money(12000, "JPY"), "JPY 12000"),
        (Money(0, "JPY"), "JPY 0"),
        (Money(-12000, "JPY"), "JPY -12000"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_format(money: Money, text: str) -> None:
    assert money.format() == text


def _parse_formatted(text: str) -> Money:
    currency, number = text.split(" ")
    negative = number.startswith("-")
    whole, _, frac = number.lstrip("-").partition(".")
    assert len(frac) == MINOR_UNITS[currency]
    minor = int(whole) * 10 ** MINOR_UNITS[currency] + (int(frac) if frac else 0)
    return Money(-minor if negative else minor, currency)


@given(amount=amounts, currency=currencies)
def test_format_shows_every_minor_unit(amount: int, currency: str) -> None:
    # Display text carries the exact amount: reading it back gives the same minor units.
    assert _parse_formatted(Money(amount, currency).format()) == Money(amount, currency)


@given(a=amounts, b=amounts, currency=currencies)
def test_add_then_sub_is_identity(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert (x + y) - y == x
    assert x + (-x) == Money(0, currency)
    assert x - y == -(y - x)


@given(
    a=amounts,
    n=st.integers(min_value=-1000, max_value=1000),
    m=st.integers(min_value=-1000, max_value=1000),
    currency=currencies,
)
def test_times_distributes_over_quantities(a: int, n: int, m: int, currency: str) -> None:
    x = Money(a, currency)
    assert x.times(n) + x.times(m) == x.times(n + m)
