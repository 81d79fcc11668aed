"""Identity documents of real-name tickets (实名制): their types, how a number is normalised and
checked, and how it is masked wherever it is shown.

Pure rules, no I/O. A document is its type and its normalised number; two attendees with the
same document are the same person, whichever distributor sold them the ticket.

The checks, per type:

- `ID_CARD` (居民身份证, GB 11643-1999): 18 characters, 17 digits and a check character (a
  digit or `X`) that the ISO 7064 MOD 11-2 sum of the 17 digits must give; the first two digits
  a province code; digits 7-14 a real birth date, from 1900-01-01 up to today.
- `PASSPORT`: 5 to 17 letters and digits with at least one digit (passports of every country;
  a Chinese one is `E`/`G` and 8 characters).
- `HK_MACAO_PERMIT`: a Home Return Permit of a Hong Kong or Macao resident (`H` or `M` and 8
  or 10 digits), or a mainland resident's Exit-Entry Permit for Hong Kong and Macao (`C`, a
  letter or digit, then 7 digits).
- `TAIWAN_PERMIT` (台湾居民来往大陆通行证): 8 digits (the card since 2015) or 10 digits.
- `FOREIGN_PERMANENT_RESIDENT` (外国人永久居留身份证): the 2017 card (3 letters of nationality and
  12 digits) or the 2023 card (18 characters starting with `9`, checked as an ID card's).

Normalising removes spaces and hyphens and upper-cases letters (a lower-case `x` check
character is the same document as `X`); nothing else is changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from domain.errors import Refusal
from domain.pickling import by_fields

__all__ = [
    "Attendee",
    "AttendeeLimit",
    "Document",
    "DocumentInvalid",
    "IdType",
    "check_document",
    "id_card_check_char",
    "mask_number",
    "normalise_number",
]

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
# Province-level codes of GB/T 2260 (the first two digits of an ID card number).
_PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82", "83", "91",
    }
)  # fmt: skip
_SEPARATORS = re.compile(r"[\s\-]+")
_PASSPORT = re.compile(r"[A-Z0-9]{5,17}")
_HK_MACAO = re.compile(r"[HM](?:\d{8}|\d{10})|C[A-Z0-9]\d{7}")
_TAIWAN = re.compile(r"\d{8}|\d{10}")
_FOREIGN_2017 = re.compile(r"[A-Z]{3}\d{12}")
_EIGHTEEN = re.compile(r"\d{17}[0-9X]")


class IdType(StrEnum):
    ID_CARD = "ID_CARD"
    PASSPORT = "PASSPORT"
    HK_MACAO_PERMIT = "HK_MACAO_PERMIT"
    TAIWAN_PERMIT = "TAIWAN_PERMIT"
    FOREIGN_PERMANENT_RESIDENT = "FOREIGN_PERMANENT_RESIDENT"


class DocumentInvalid(ValueError):
    """A number that is not a document of its type; the message says why, without the number."""


@by_fields
@dataclass(frozen=True, slots=True)
class Document:
    id_type: IdType
    number: str  # normalised

    @property
    def key(self) -> str:
        """What identifies the document across every distributor: type and number."""
        return f"{self.id_type.value}:{self.number}"

    @property
    def masked(self) -> str:
        return mask_number(self.number)


@by_fields
@dataclass(frozen=True, slots=True)
class Attendee:
    """Who a real-name ticket is for: the name on the document, and the document."""

    name: str
    document: Document

    def masked(self) -> dict[str, str]:
        """As replies, callbacks and ops views show it."""
        return {
            "name": self.name,
            "id_type": self.document.id_type.value,
            "id_number": self.document.masked,
        }

    def whole(self) -> dict[str, str]:
        """As the supplier receives it (the gate checks the document)."""
        return {
            "name": self.name,
            "id_type": self.document.id_type.value,
            "id_number": self.document.number,
        }

    @classmethod
    def from_whole(cls, raw: dict[str, str]) -> Attendee:
        return cls(raw["name"], Document(IdType(raw["id_type"]), raw["id_number"]))


class AttendeeLimit(Refusal):
    """The attendee's document already holds as many tickets of the session as it may."""

    def __init__(self, index: int, tickets_per_id: int) -> None:
        super().__init__(
            f"attendees[{index}]: this document already holds {tickets_per_id} ticket(s)"
            " of the session"
        )
        self.index = index
        self.tickets_per_id = tickets_per_id

    def __reduce__(self) -> tuple[type[AttendeeLimit], tuple[int, int]]:
        return (type(self), (self.index, self.tickets_per_id))


def normalise_number(raw: str) -> str:
    return _SEPARATORS.sub("", raw).upper()


def id_card_check_char(first17: str) -> str:
    """The GB 11643 check character of 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _eighteen(number: str, today: date, *, provinces: bool) -> None:
    if not _EIGHTEEN.fullmatch(number):
        raise DocumentInvalid("must be 17 digits and a check digit or X (18 characters)")
    if provinces and number[:2] not in _PROVINCES:
        raise DocumentInvalid("does not start with a province code")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise DocumentInvalid("does not hold a valid birth date") from None
    if not date(1900, 1, 1) <= born <= today:
        raise DocumentInvalid("does not hold a valid birth date")
    if id_card_check_char(number[:17]) != number[17]:
        raise DocumentInvalid("check digit does not match")


def check_document(id_type: IdType, raw: str, *, today: date) -> Document:
    """The document, its number normalised and checked for its type (DocumentInvalid if not)."""
    number = normalise_number(raw)
    if not number:
        raise DocumentInvalid("is empty")
    if len(number) > 32:
        raise DocumentInvalid("is too long")
    if id_type is IdType.ID_CARD:
        _eighteen(number, today, provinces=True)
    elif id_type is IdType.PASSPORT:
        if not _PASSPORT.fullmatch(number) or not any(c.isdigit() for c in number):
            raise DocumentInvalid("must be 5 to 17 letters and digits, with a digit")
    elif id_type is IdType.HK_MACAO_PERMIT:
        if not _HK_MACAO.fullmatch(number):
            raise DocumentInvalid("must be H or M and 8 or 10 digits, or C and 8 characters")
    elif id_type is IdType.TAIWAN_PERMIT:
        if not _TAIWAN.fullmatch(number):
            raise DocumentInvalid("must be 8 or 10 digits")
    elif id_type is IdType.FOREIGN_PERMANENT_RESIDENT:
        if len(number) == 18:
            if not number.startswith("9"):
                raise DocumentInvalid("an 18-character card starts with 9")
            _eighteen(number, today, provinces=False)
        elif not _FOREIGN_2017.fullmatch(number):
            raise DocumentInvalid("must be 3 letters and 12 digits, or 18 characters from 9")
    return Document(id_type, number)


def mask_number(number: str) -> str:
    """A number as replies, callbacks, ops views and logs show it: an 18-character ID card's
    first 4 and last 4 characters, the rest `*`; shorter numbers keep fewer (16 characters
    or more: 4 and 4; 12 or more: 3 and 3; 8 or more: 2 and 2; 4 or more: 1 and 1; fewer:
    none), so at least half of every number is hidden."""
    n = len(number)
    keep = 4 if n >= 16 else 3 if n >= 12 else 2 if n >= 8 else 1 if n >= 4 else 0
    if keep == 0:
        return "*" * n
    return number[:keep] + "*" * (n - 2 * keep) + number[-keep:]
