"""Secrets in a supplier's stored configuration (a pretix API token), sealed like the platform's
own secrets: AES-GCM under a key derived from the master key, with what the secret is for bound
as associated data, so a sealed token copied into another supplier's configuration does not
open.

The sealing itself is `persistence.secretbox.SecretBox`, which this layer may not import: it
is passed in as a `SecretSealer` (a `SecretBox` is one), built on
`supplier_secrets_key(master_key)` by whoever stores a configuration (the admin route) and by
whoever builds a gateway from one (the supplier hosts)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

__all__ = ["SecretSealer", "supplier_secrets_key"]

_LABEL = b"showdist/supplier-secrets/v1"


class SecretSealer(Protocol):
    def seal(self, plaintext: str, *, key_id: str, owner: str) -> str: ...

    def open(self, sealed: str, *, key_id: str, owner: str) -> str: ...


def supplier_secrets_key(master_key: bytes) -> bytes:
    """The key that seals suppliers' secrets (derived from the master key, 32 bytes): the
    supplier hosts hold this one, not the master key."""
    if len(master_key) != 32:
        raise ValueError("the master key is 32 bytes")
    return hmac.new(master_key, _LABEL, hashlib.sha256).digest()
