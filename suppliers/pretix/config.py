"""A pretix supplier's configuration, as ops send it (`PretixConfig`) and as it is stored
(`SealedPretixConfig`: the API token sealed). docs/pretix.md lists every field and its default.

Validation messages never quote a value (a token must not reach an error body or a log)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = ["PretixConfig", "PretixSettings", "SealedPretixConfig"]

# pretix's own slug rule for organizers and events (letters, digits, dots and dashes).
_SLUG = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9.\-]{0,49}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces
_IDENTIFIER = re.compile(r"[a-zA-Z0-9.\-_]{1,190}")


class PretixSettings(BaseModel):
    """Every field but the token: what the gateway needs besides its credential."""

    # strict: "5" or true is not a number (a supplier config is JSON, typed as documented)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)

    base_url: str = Field(min_length=1, max_length=2000)  # the pretix root, not /api/v1
    organizer: str = Field(min_length=1, max_length=50)
    event: str = Field(min_length=1, max_length=50)
    # Where the platform's orders are placed in pretix (a sales channel's identifier).
    sales_channel: str = Field(default="web", min_length=1, max_length=190)
    # Prices in basis points of pretix's price (the face value): what a distributor pays
    # (`price`) and what the platform owes the box office (`settlement_price`).
    distribution_bp: int = Field(default=10_000, ge=0, le=10_000)
    settlement_bp: int = Field(default=10_000, ge=0, le=10_000)
    # Show and session times are given in this zone; null: the pretix event's own.
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    # The translation of names to use; null: the event's first locale, then English.
    locale: str | None = Field(default=None, min_length=1, max_length=20)
    # A show's city and category; null: the event's meta data `city` / `category`, else
    # "" and "live".
    city: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=100)
    # How long a lock's pending pretix order is held (its `expires`): at least the platform's
    # lock TTL, so pretix never lets seats go that an order still holds (the platform's own
    # release cancels the pretix order when the lock ends).
    hold_seconds: int = Field(default=960, ge=60, le=7 * 86_400)
    # A paid order cancelled in pretix up to this long before the last one read is read again
    # (a cancellation committed late is not passed over); re-reads are harmless.
    feed_lookback_seconds: float = Field(default=60.0, ge=0, le=3600)
    feed_max_pages: int = Field(default=20, ge=1, le=200)  # 50 orders a page
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    max_connections: int = Field(default=20, ge=1, le=1000)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must have no query or fragment")
        return v.rstrip("/")

    @field_validator("organizer", "event")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.fullmatch(v):
            raise ValueError("must be a pretix slug (letters, digits, dots and dashes)")
        return v

    @field_validator("sales_channel")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not _IDENTIFIER.fullmatch(v):
            raise ValueError("must be a sales channel identifier")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone name") from exc
        return v

    @model_validator(mode="after")
    def _prices(self) -> PretixSettings:
        if self.settlement_bp > self.distribution_bp:
            raise ValueError("settlement_bp must not be above distribution_bp")
        return self

    def settings_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PretixSettings.model_fields}


class PretixConfig(PretixSettings):
    """What ops send: the settings and a pretix team API token."""

    token: SecretStr

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr) -> SecretStr:
        if not _TOKEN.fullmatch(v.get_secret_value()):
            raise ValueError("must be 1-200 printable characters without spaces")
        return v


class SealedPretixConfig(PretixSettings):
    """What is stored: the settings and the token sealed (see `suppliers.secrets`)."""

    token_sealed: str = Field(min_length=1, max_length=2000)
