"""A callback receiver on 127.0.0.1: a real HTTP server (in a thread) that checks the
platform's signature on every callback and fails its first answers on purpose."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from domain.signing import (
    KeyType,
    SignatureError,
    check_timestamp,
    parse_signed_headers,
    string_to_sign,
    verify_signature,
)


class CallbackReceiver:
    def __init__(self, *, fail_first: int, platform_key_b64: str) -> None:
        self.fail_first = fail_first
        self.public_key = base64.b64decode(platform_key_b64)
        self.accepted: list[dict[str, Any]] = []
        self.rejected = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = urlsplit(self.path)
                code = receiver._receive(parts.path, parts.query, dict(self.headers.items()), body)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _receive(self, path: str, query: str, headers: dict[str, str], body: bytes) -> int:
        try:
            signed = parse_signed_headers(headers)
            check_timestamp(signed.timestamp, time.time())
            message = string_to_sign(
                "POST", path, query, signed.key_id, str(signed.timestamp), signed.nonce, body
            )
            valid = signed.key_id == "platform" and verify_signature(
                KeyType.ED25519, self.public_key, message, signed.signature
            )
        except SignatureError:
            valid = False
        with self._lock:
            if not valid:
                self.bad_signatures += 1
                return 401
            if self.rejected < self.fail_first:
                self.rejected += 1
                return 503
            self.accepted.append(json.loads(body))
            return 204

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
