"""Secrets at rest: AES-GCM under the master key, with the key id and owner bound as
associated data so a ciphertext copied onto another key's row does not decrypt."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"


class SecretBoxError(Exception):
    pass


class SecretBox:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self._aead = AESGCM(master_key)

    @staticmethod
    def _aad(key_id: str, owner: str) -> bytes:
        return f"{key_id}\x00{owner}".encode()

    def seal(self, plaintext: str, *, key_id: str, owner: str) -> str:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), self._aad(key_id, owner))
        return f"{_VERSION}:{base64.b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, *, key_id: str, owner: str) -> str:
        version, _, body = sealed.partition(":")
        if version != _VERSION:
            raise SecretBoxError("unknown secret format")
        raw = base64.b64decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], self._aad(key_id, owner)).decode()
        except InvalidTag as exc:
            raise SecretBoxError("secret does not decrypt under this key and owner") from exc
