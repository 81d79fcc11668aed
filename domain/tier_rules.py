"""The rule a supplier's tier must pass before the platform sells it (docs/design.md, "Catalog
sync"): checked at every catalog sync, and again when an order is created.

A tier is refused when

- a price is negative (face value, distribution price or settlement price), or above
  `MAX_MINOR_UNITS`;
- its settlement price is above its distribution price (every order would break
  receivable >= settlement);
- its face value is below its distribution price;
- its currency is not an ISO 4217 code. The case is normalised when that is unambiguous
  (`cny` -> `CNY`); anything else (`RMB`, `C N Y`, full-width letters) is refused.

Pure: no I/O. The caller stores or answers what `check_tier` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Ten quadrillion minor units per ticket: far above any real price (and above 2**53, so exact
# integers are kept, never floats), and far below what a BIGINT holds once multiplied by an
# order's quantity.
MAX_MINOR_UNITS = 10**16

# The active currency codes of ISO 4217 (list one). Precious metals (XAU, XAG, XPD, XPT),
# bond-market units (XBA-XBD), the SDR and other units of account (XDR, XSU, XUA), the
# testing code (XTS) and "no currency" (XXX) are left out: no ticket is priced in them.
_CODES = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP
    ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
    MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
    PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC
    SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND
    VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
ISO_4217: frozenset[str] = frozenset(_CODES.split())


class TierRefusal(StrEnum):
    """Why a tier is refused; the first word of its `refused_reason`."""

    NEGATIVE_PRICE = "negative_price"
    PRICE_TOO_LARGE = "price_too_large"
    SETTLEMENT_ABOVE_PRICE = "settlement_above_price"
    FACE_VALUE_BELOW_PRICE = "face_value_below_price"
    BAD_CURRENCY = "bad_currency"


@dataclass(frozen=True, slots=True)
class TierCheck:
    """What the rule says of a tier: the currency to store and sell in (normalised when the
    code is known, as given otherwise), and why it is refused, if it is."""

    currency: str
    refusal: TierRefusal | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.refusal is None

    @property
    def reason(self) -> str | None:
        """`"<refusal>: <detail>"`, at most 200 characters; None when accepted."""
        return None if self.refusal is None else f"{self.refusal}: {self.detail}"[:200]


def normalise_currency(code: str) -> str | None:
    """The ISO 4217 code `code` names, whatever its case; None if it names none."""
    upper = code.upper()
    return upper if code.isascii() and upper in ISO_4217 else None


def check_tier(face_value: int, price: int, settlement_price: int, currency: str) -> TierCheck:
    """The rule of this module; the first refusal found is the one reported."""
    prices = {"face_value": face_value, "price": price, "settlement_price": settlement_price}
    normalised = normalise_currency(currency)
    stored = currency if normalised is None else normalised
    for name, value in prices.items():
        if value < 0:
            return TierCheck(stored, TierRefusal.NEGATIVE_PRICE, f"{name} {value} < 0")
    for name, value in prices.items():
        if value > MAX_MINOR_UNITS:
            return TierCheck(
                stored, TierRefusal.PRICE_TOO_LARGE, f"{name} {value} > {MAX_MINOR_UNITS}"
            )
    if settlement_price > price:
        return TierCheck(
            stored,
            TierRefusal.SETTLEMENT_ABOVE_PRICE,
            f"settlement_price {settlement_price} > price {price}",
        )
    if face_value < price:
        return TierCheck(
            stored, TierRefusal.FACE_VALUE_BELOW_PRICE, f"face_value {face_value} < price {price}"
        )
    if normalised is None:
        return TierCheck(
            stored, TierRefusal.BAD_CURRENCY, f"{currency[:20]!r} is not an ISO 4217 code"
        )
    return TierCheck(normalised)
