"""JSON responses rendered by orjson: several times faster than the standard library's
encoder for the API's payloads, with the same bytes for what the API sends (compact, UTF-8,
no NaN)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
