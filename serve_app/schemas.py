"""Request bodies. Fields a distributor may not set (price, status, amount) are not part of
the model and are ignored."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator


class Buyer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=3, max_length=40, pattern=r"^\+?[0-9 \-]{3,40}$")


class Delivery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    method: Literal["ETICKET", "EXPRESS"]
    address: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _express_needs_address(self) -> Delivery:
        if self.method == "EXPRESS" and not self.address:
            raise ValueError("delivery.address is required for EXPRESS delivery")
        return self


class CreateOrderBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    distributor_order_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")
    session_id: str = Field(min_length=1, max_length=60)
    tier_id: str = Field(min_length=1, max_length=60)
    quantity: StrictInt = Field(ge=1, le=20)
    buyer: Buyer
    delivery: Delivery
    callback_url: str | None = Field(default=None, max_length=2000)
    # A distributor may ask for a shorter seat hold than the platform's default (not longer).
    lock_seconds: StrictInt | None = Field(default=None, ge=1, le=86_400)

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("callback_url must be an absolute http(s) URL")
        return v

    def fingerprint_fields(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reason: str = Field(default="", max_length=500)
