"""Identity documents: each type's check, normalisation, and the mask shown everywhere."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.identity import (
    DocumentInvalid,
    IdType,
    check_document,
    id_card_check_char,
    mask_number,
    normalise_number,
)

TODAY = date(2026, 12, 1)


def id_card(region: str = "110105", born: date = date(1990, 3, 7), seq: str = "123") -> str:
    first17 = f"{region}{born:%Y%m%d}{seq}"
    return first17 + id_card_check_char(first17)


births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
regions = st.sampled_from(["110105", "310104", "440305", "510107", "820000", "710000"])
seqs = st.integers(0, 999).map(lambda n: f"{n:03d}")


def test_a_known_id_card_number_passes_and_its_check_digit_is_gb11643s() -> None:
    # The standard's own example: 11010519491231002X.
    assert id_card_check_char("11010519491231002") == "X"
    doc = check_document(IdType.ID_CARD, "11010519491231002x", today=TODAY)
    assert (doc.number, doc.key) == ("11010519491231002X", "ID_CARD:11010519491231002X")
    assert doc.masked == "1101**********002X"


@given(regions, births, seqs)
def test_every_well_formed_id_card_passes(region: str, born: date, seq: str) -> None:
    number = id_card(region, born, seq)
    assert check_document(IdType.ID_CARD, number, today=TODAY).number == number


@given(regions, births, seqs, st.integers(0, 16), st.integers(1, 9))
def test_any_one_digit_changed_fails_the_check(
    region: str, born: date, seq: str, at: int, delta: int
) -> None:
    number = id_card(region, born, seq)
    changed = number[:at] + str((int(number[at]) + delta) % 10) + number[at + 1 :]
    with pytest.raises(DocumentInvalid):
        check_document(IdType.ID_CARD, changed, today=TODAY)


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("1101051990030712", "18 characters"),
        ("11010519900307123A", "18 characters"),
        (id_card(born=date(1990, 3, 7)).replace("19900307", "19900230"), "birth date"),
        (id_card("990105"), "province"),
        (id_card(born=TODAY + timedelta(days=1)), "birth date"),
        (id_card(born=date(1899, 12, 31)), "birth date"),
        ("", "empty"),
    ],
)
def test_an_id_card_number_that_is_not_one_is_refused_with_its_reason(
    number: str, why: str
) -> None:
    with pytest.raises(DocumentInvalid, match=why) as refused:
        check_document(IdType.ID_CARD, number, today=TODAY)
    if number:
        assert number not in str(refused.value)  # the reason never repeats the number


@pytest.mark.parametrize(
    ("id_type", "good", "bad"),
    [
        (IdType.PASSPORT, ["E12345678", "EA1234567", "g 1234 5678", "X1234"], ["ABCDEFGH", "E1"]),
        (
            IdType.HK_MACAO_PERMIT,
            ["H12345678", "M1234567890", "CA1234567", "C11234567"],
            ["H1234567", "X12345678", "CA123456"],
        ),
        (IdType.TAIWAN_PERMIT, ["12345678", "1234567890"], ["1234567", "A1234567"]),
        (
            IdType.FOREIGN_PERMANENT_RESIDENT,
            ["USA123456789012", id_card("910105")],
            ["US1234567890123", id_card("110105"), "911234567890123456"],
        ),
    ],
)
def test_each_other_type_has_its_format(id_type: IdType, good: list[str], bad: list[str]) -> None:
    for number in good:
        check_document(id_type, number, today=TODAY)
    for number in bad:
        with pytest.raises(DocumentInvalid):
            check_document(id_type, number, today=TODAY)


@given(st.text(alphabet="abcxyzXYZ0123456789 -", max_size=40))
def test_normalising_is_idempotent_and_only_drops_separators_and_case(raw: str) -> None:
    once = normalise_number(raw)
    assert normalise_number(once) == once
    assert once == raw.replace(" ", "").replace("-", "").upper()


@given(st.text(alphabet="ABC0123456789X", max_size=40))
def test_a_mask_keeps_the_length_and_hides_at_least_half(number: str) -> None:
    masked = mask_number(number)
    assert len(masked) == len(number)
    shown = [i for i, c in enumerate(masked) if c != "*"]
    assert len(shown) * 2 <= len(number)
    assert all(masked[i] == number[i] for i in shown)
    if len(number) == 18:
        assert masked == number[:4] + "*" * 10 + number[-4:]
