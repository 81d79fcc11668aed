"""Request bodies. Every body is a `Body`: a field the model does not name is refused (422
naming it: a typo such as `callbak_url` must not be dropped silently, and a field a caller may
not set, such as a price or a status, is not quietly ignored either), and no string in it may
hold a control character (free text — notes, reasons, addresses — may hold tab and line
breaks).

Bodies are strict: a value is of the type its schema says, never coerced into it (no `"5"` or
`true` for a number, no number for a time). A time is a string in RFC 3339 form (`Time`); the
route that takes it says whether it needs an offset."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from domain.callback_urls import CallbackUrlRefused, parse_callback_url
from domain.identity import IdType
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


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


_FIRST = datetime(1, 1, 2, tzinfo=UTC)
_LAST = datetime(9999, 12, 30, tzinfo=UTC)


def _rfc3339(value: Any) -> Any:
    """A time read from RFC 3339 text only (pydantic alone would also take a number, or
    digits, as a Unix time, and a bare date)."""
    if value is None:
        return None
    if not (isinstance(value, str) and _RFC3339.fullmatch(value)):
        raise ValueError("must be an RFC 3339 time, such as 2026-11-25T10:00:00+08:00")
    parsed = datetime.fromisoformat(value.upper())
    if parsed.tzinfo is not None:
        # Within a day of the ends of the calendar a time cannot be shown in every zone (the
        # platform's, in its answers): such a time is refused, not stored.
        try:
            utc = parsed.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not _FIRST <= utc <= _LAST:
            raise ValueError("out of range")
    return parsed


# A time in a body (documented as `format: date-time`).
Time = Annotated[datetime, BeforeValidator(_rfc3339)]


# The text a body's string may hold, for the OpenAPI document (ECMA 262 patterns).
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
FREE_TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"


def refuse_controls_in_schema(schema: dict[str, Any], pattern: str = TEXT_PATTERN) -> None:
    """Say in a JSON schema, in place, that its strings (and object keys) hold no control
    character (those with a pattern, a format or a set of values say more already)."""
    if schema.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(schema):
        schema["pattern"] = pattern
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        for sub in schema.get(key, ()):
            refuse_controls_in_schema(sub, pattern)
    for key in ("items", "additionalProperties"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            refuse_controls_in_schema(sub, pattern)
            if key == "additionalProperties":
                schema.setdefault("propertyNames", {"pattern": TEXT_PATTERN})
    for sub in schema.get("properties", {}).values():
        refuse_controls_in_schema(sub, pattern)


def _document_text(schema: dict[str, Any], model: type[BaseModel]) -> None:
    free: frozenset[str] = getattr(model, "FREE_TEXT", frozenset())
    for name, field in schema.get("properties", {}).items():
        refuse_controls_in_schema(field, FREE_TEXT_PATTERN if name in free else TEXT_PATTERN)


class Body(BaseModel):
    """The base of every request body."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_document_text)
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


class AttendeeBody(Body):
    """One real-name ticket's attendee: checked by `domain.identity.check_document`."""

    name: str = Field(min_length=2, max_length=100)
    id_type: IdType
    id_number: str = Field(min_length=1, max_length=40)


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
    # A real-name session's tickets: one attendee each, in order (required there, refused
    # elsewhere).
    attendees: list[AttendeeBody] | None = Field(default=None, max_length=20)

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
        fields = self.model_dump(mode="json")
        if fields.get("attendees") is None:
            del fields["attendees"]  # (as bodies were fingerprinted before real-name orders)
        return fields


class RefundBody(Body):
    FREE_TEXT = frozenset({"reason"})
    reason: str = Field(default="", max_length=500)
