"""Where real-name attendees' documents are kept: sealed whole on the order's row (AES-GCM
under a key derived from the master key, bound to the order id), and, for the rule "one
document, at most N tickets of a session", as keyed hashes in `document_claims`, so that the
table that is searched holds no document number.

Both keys derive from the master key (HMAC-SHA256 with a fixed label each), so every process
holding the master key (API replicas, order hosts) derives the same ones, and a key for one
purpose is never the key for the other."""

from __future__ import annotations

import hashlib
import hmac
import json

from domain.identity import Attendee, Document
from persistence.secretbox import SecretBox

_SEAL_LABEL = b"showdist/attendees/v1"
_HASH_LABEL = b"showdist/document-claims/v1"


def identity_key(master_key: bytes) -> bytes:
    """The one key an order host is given for attendees (derived from the master key)."""
    return hmac.new(master_key, b"showdist/identity/v1", hashlib.sha256).digest()


class IdentityVault:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the identity key is 32 bytes")
        self._box = SecretBox(hmac.new(key, _SEAL_LABEL, hashlib.sha256).digest())
        self._hash_key = hmac.new(key, _HASH_LABEL, hashlib.sha256).digest()

    def seal(self, order_id: str, attendees: tuple[Attendee, ...]) -> str:
        plain = json.dumps([a.whole() for a in attendees], ensure_ascii=False)
        return self._box.seal(plain, key_id=order_id, owner="attendees")

    def open(self, order_id: str, sealed: str) -> tuple[Attendee, ...]:
        plain = self._box.open(sealed, key_id=order_id, owner="attendees")
        return tuple(Attendee.from_whole(a) for a in json.loads(plain))

    def claim_key(self, document: Document) -> str:
        """The document as `document_claims` holds it."""
        return hmac.new(self._hash_key, document.key.encode(), hashlib.sha256).hexdigest()
