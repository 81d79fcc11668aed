"""Request bodies. Every body is a `Body`: a field the model does not name is refused (422
naming it: a typo such as `callbak_url` must not be dropped silently, and a field a caller may
not set, such as a price or a status, is not quietly ignored either), and no string in it may
hold a control character (free text — notes, reasons, addresses — may hold tab and line
breaks)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from domain.callback_urls import CallbackUrlRefused, parse_callback_url
from domain.text import control_character


def _refuse_controls(value: Any, free_text: bool) -> Any:
    """`value` unchanged, or ValueError naming the control character it holds (nested lists
    and dicts, keys included, are looked through)."""
    if isinstance(value, str):
        bad = control_character(value, free_text=free_text)
        if bad is not None:
            raise ValueError(f"a control character ({bad}) is not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            _refuse_controls(k, False)
            _refuse_controls(v, free_text)
    elif isinstance(value, list | tuple):
        for v in value:
            _refuse_controls(v, free_text)
    return value


class Body(BaseModel):
    """The base of every request body."""

    model_config = ConfigDict(extra="forbid")
    # Fields whose text may hold tab, line feed and carriage return.
    FREE_TEXT: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name)
        annotation = field.annotation if field is not None else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return value  # a nested body checks its own fields
        return _refuse_controls(value, info.field_name in cls.FREE_TEXT)


class Buyer(Body):
    name: str = Field(min_length=1, max_length=100)
    phone: str = Field(min_length=3, max_length=40, pattern=r"^\+?[0-9 \-]{3,40}$")


class Delivery(Body):
    FREE_TEXT = frozenset({"address"})
    method: Literal["ETICKET", "EXPRESS"]
    address: str | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _express_needs_address(self) -> Delivery:
        if self.method == "EXPRESS" and not self.address:
            raise ValueError("delivery.address is required for EXPRESS delivery")
        return self


class CreateOrderBody(Body):
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
        """A URL the courier can call (domain/callback_urls.py); its addresses are checked
        against the allowed networks by the route, which knows them."""
        if v is None:
            return v
        try:
            parse_callback_url(v)
        except CallbackUrlRefused as exc:
            raise ValueError(f"callback_url {exc}") from None
        return v

    def fingerprint_fields(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class RefundBody(Body):
    FREE_TEXT = frozenset({"reason"})
    reason: str = Field(default="", max_length=500)
