"""A signed HTTP client for the showdist API (the CLI, tests and benchmarks use it)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.signing import KeyType, new_nonce, sign_request


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str | None = None  # HMAC
    private_key: Ed25519PrivateKey | None = None  # Ed25519

    @property
    def key_type(self) -> KeyType:
        return KeyType.HMAC if self.secret is not None else KeyType.ED25519

    def headers(
        self, method: str, target: str, body: bytes, *, timestamp: int | None = None
    ) -> dict[str, str]:
        return sign_request(
            method=method.upper(),
            target=target,
            body=body,
            key_id=self.key_id,
            key_type=self.key_type,
            secret=self.secret,
            private_key=self.private_key,
            timestamp=int(time.time()) if timestamp is None else timestamp,
            nonce=new_nonce(),
        )


def encode_body(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


class SignedClient:
    """Synchronous; `target` is the path with its query, exactly as it goes on the wire."""

    def __init__(self, base_url: str, creds: Credentials, *, timeout: float = 30.0) -> None:
        self.creds = creds
        self.http = httpx.Client(base_url=base_url, timeout=timeout, trust_env=False)

    def request(self, method: str, target: str, data: Any = None) -> httpx.Response:
        body = encode_body(data)
        headers = self.creds.headers(method, target, body)
        if body:
            headers["Content-Type"] = "application/json"
        return self.http.request(method.upper(), target, content=body, headers=headers)

    def close(self) -> None:
        self.http.close()


class AsyncSignedClient:
    def __init__(
        self,
        base_url: str,
        creds: Credentials,
        *,
        timeout: float = 30.0,
        max_connections: int = 200,
    ) -> None:
        self.creds = creds
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    async def request(self, method: str, target: str, data: Any = None) -> httpx.Response:
        body = encode_body(data)
        headers = self.creds.headers(method, target, body)
        if body:
            headers["Content-Type"] = "application/json"
        return await self.http.request(method.upper(), target, content=body, headers=headers)

    async def aclose(self) -> None:
        await self.http.aclose()
