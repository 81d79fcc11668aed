"""Opaque keyset cursors: (updated_at, id) of the last row of a page."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query

from serve_app.errors import ApiError

# How the OpenAPI document describes the list parameters (`parse_limit` and `parse_time`
# check them; FastAPI does not).
LIMIT: dict[str, Any] = {"description": "1 to 500, default 100", "minimum": 1, "maximum": 500}
TIME: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "maxLength": 0},  # empty: as if not given
        {"type": "null"},
    ],
    "description": "RFC 3339, with an offset (an unencoded `+` arriving as a space is read as "
    "`+`); empty: not given",
}
CURSOR: dict[str, Any] = {"description": "the `next_cursor` of the previous page, as it was"}

# A list route's two paging parameters, as its signature declares them.
LimitParam = Annotated[int | None, Query(json_schema_extra=LIMIT)]
CursorParam = Annotated[str | None, Query(json_schema_extra=CURSOR)]


def encode_cursor(updated_at: datetime, row_id: str) -> str:
    raw = json.dumps([updated_at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None or not isinstance(row_id, str) or len(row_id) > 100:
            raise ValueError("bad cursor")
        parsed.astimezone(UTC)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ApiError(422, "invalid_request", "cursor: not a cursor this API issued") from exc
    return parsed, row_id


def parse_limit(limit: int | None) -> int:
    if limit is None:
        return 100
    if not 1 <= limit <= 500:
        raise ApiError(422, "invalid_request", "limit: must be between 1 and 500")
    return limit


def parse_time(name: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        # An unencoded "+" in a query arrives as a space: read it as the offset it was.
        parsed = datetime.fromisoformat(value.strip().replace(" ", "+").replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"{name}: not an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise ApiError(422, "invalid_request", f"{name}: needs a UTC offset")
    try:
        parsed.astimezone(UTC)
    except OverflowError as exc:  # (year 1 or 9999 with an offset)
        raise ApiError(422, "invalid_request", f"{name}: out of range") from exc
    return parsed
