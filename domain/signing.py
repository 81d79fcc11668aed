"""Request signing, version 1: the distributor <-> platform contract (see docs/signing.md).

Pure functions only. The caller supplies the clock (``now``) and, if it wants, the nonce;
looking keys up and remembering nonces belong to the edges.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote_from_bytes, unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "DEFAULT_WINDOW_SECONDS",
    "HEADER_KEY",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SIGNATURE_VERSION",
    "KeyType",
    "SignatureError",
    "SignedHeaders",
    "canonical_query",
    "check_timestamp",
    "ed25519_public_key_b64",
    "load_ed25519_private_key_from_seed_b64",
    "new_nonce",
    "parse_signed_headers",
    "sign_ed25519",
    "sign_hmac",
    "sign_request",
    "split_target",
    "string_to_sign",
    "verify_signature",
]

SIGNATURE_VERSION = "SHOWDIST-V1"
DEFAULT_WINDOW_SECONDS = 300

HEADER_KEY = "X-Showdist-Key"
HEADER_TIMESTAMP = "X-Showdist-Timestamp"
HEADER_NONCE = "X-Showdist-Nonce"
HEADER_SIGNATURE = "X-Showdist-Signature"

# ASCII-only classes: `\d` and `str.isdigit` would also accept non-ASCII digits.
# No leading zeros: the server signs str(int(timestamp)), so "0123" could never verify.
_TIMESTAMP_RE = re.compile(r"0|[1-9][0-9]{0,11}")
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")

_ED25519_SEED_BYTES = 32


class KeyType(StrEnum):
    """Signature algorithm, stored with each key."""

    HMAC = "hmac"
    ED25519 = "ed25519"


class SignatureError(Exception):
    """A request failed authentication; ``code`` is the API error code."""

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        # All three go to Exception.args so the error survives pickling (e.g. across Ray actors).
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class SignedHeaders:
    """The four signing headers, well formed."""

    key_id: str
    timestamp: int
    nonce: str
    signature: str


def canonical_query(raw_query: str) -> str:
    """Canonical query line (docs/signing.md, line 4 of the string to sign).

    Beyond the contract: empty segments (``a=1&&b=2``, a trailing ``&``) are dropped; a pair
    without ``=`` counts as ``name=``; only the first ``=`` splits name from value; a ``%``
    not followed by two hex digits is a literal ``%`` (re-encoded as ``%25``); bytes that are
    not valid UTF-8 are kept byte for byte.
    """
    pairs: list[tuple[bytes, bytes]] = []
    for segment in raw_query.split("&"):
        if not segment:
            continue
        name, _, value = segment.partition("=")
        pairs.append((_decode_component(name), _decode_component(value)))
    # Work on the decoded bytes: UTF-8 byte order equals code point order for valid text, and
    # invalid UTF-8 still has a defined order and round-trips instead of becoming U+FFFD.
    pairs.sort()
    return "&".join(
        f"{_encode_component(name)}={_encode_component(value)}" for name, value in pairs
    )


def _decode_component(component: str) -> bytes:
    # "+" is a space only in the raw form; "%2B" must stay a plus, so replace before decoding.
    return unquote_to_bytes(component.replace("+", " "))


def _encode_component(raw: bytes) -> str:
    # quote_from_bytes leaves exactly RFC 3986 unreserved (A-Z a-z 0-9 - _ . ~) and uses upper hex.
    return quote_from_bytes(raw, safe="")


def split_target(target: str) -> tuple[str, str]:
    """Split a request target ``path?query`` into (path, raw query)."""
    path, _, query = target.partition("?")
    return path, query


def string_to_sign(
    method: str,
    path: str,
    raw_query: str,
    key_id: str,
    timestamp: str,
    nonce: str,
    body: bytes,
) -> str:
    """The eight-line string both sides sign (docs/signing.md)."""
    return "\n".join(
        (
            SIGNATURE_VERSION,
            method.upper(),
            path or "/",
            canonical_query(raw_query),
            key_id,
            timestamp,
            nonce,
            hashlib.sha256(body).hexdigest(),
        )
    )


def sign_hmac(secret: str, message: str) -> str:
    """HMAC-SHA256 of ``message``, standard base64."""
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_ed25519(private_key: Ed25519PrivateKey, message: str) -> str:
    """Ed25519 signature of ``message``, standard base64."""
    return base64.b64encode(private_key.sign(message.encode("utf-8"))).decode("ascii")


def verify_signature(key_type: KeyType, material: bytes, message: str, signature_b64: str) -> bool:
    """True if ``signature_b64`` signs ``message``; never raises on malformed input.

    ``material`` is the HMAC secret's UTF-8 bytes or the raw 32-byte Ed25519 public key.
    """
    signature = _strict_b64decode(signature_b64)
    if signature is None:
        return False
    # A dispatch table rather than if/elif: an unknown type (say, a bad database value from an
    # untyped caller) must give False, not an exception.
    verifier = _VERIFIERS.get(key_type)
    if verifier is None:
        return False
    return verifier(material, message.encode("utf-8"), signature)


def _verify_hmac(secret: bytes, payload: bytes, signature: bytes) -> bool:
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    return hmac.compare_digest(expected, signature)


def _verify_ed25519(public_key: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


_VERIFIERS: dict[KeyType, Callable[[bytes, bytes, bytes], bool]] = {
    KeyType.HMAC: _verify_hmac,
    KeyType.ED25519: _verify_ed25519,
}


def _strict_b64decode(text: str) -> bytes | None:
    """Decode canonical padded standard base64, or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Re-encoding catches non-zero padding bits, so each signature has exactly one spelling.
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def parse_signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Read the four signing headers (case-insensitively) and check their form.

    Raises SignatureError ``signature_missing`` if one is absent or empty, and
    ``signature_malformed`` if one is badly formed or given twice.
    """
    found: dict[str, str] = {}
    wanted = {
        name.lower() for name in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
    }
    # Iterate rather than look up so that a header sent twice (in any case) is caught: which
    # copy is "the" value would be ambiguous. Starlette's Headers.items() lists repeats too.
    for name, value in headers.items():
        lowered = name.lower()
        if lowered not in wanted:
            continue
        if lowered in found:
            raise SignatureError("signature_malformed", f"{name} given more than once")
        found[lowered] = value

    for name in (HEADER_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE):
        if not found.get(name.lower()):
            raise SignatureError("signature_missing", f"{name} header is required")

    key_id = found[HEADER_KEY.lower()]
    timestamp = found[HEADER_TIMESTAMP.lower()]
    nonce = found[HEADER_NONCE.lower()]
    signature = found[HEADER_SIGNATURE.lower()]

    if not _KEY_ID_RE.fullmatch(key_id):
        raise SignatureError(
            "signature_malformed", f"{HEADER_KEY} must be 1-128 characters of [A-Za-z0-9_-]"
        )
    if not _TIMESTAMP_RE.fullmatch(timestamp):
        raise SignatureError(
            "signature_malformed",
            f"{HEADER_TIMESTAMP} must be whole Unix seconds in decimal, without leading zeros",
        )
    if not _NONCE_RE.fullmatch(nonce):
        raise SignatureError(
            "signature_malformed", f"{HEADER_NONCE} must be 16-64 characters of [A-Za-z0-9_-]"
        )
    if _strict_b64decode(signature) is None:
        raise SignatureError(
            "signature_malformed", f"{HEADER_SIGNATURE} must be standard base64 with padding"
        )
    return SignedHeaders(key_id=key_id, timestamp=int(timestamp), nonce=nonce, signature=signature)


def check_timestamp(
    timestamp: int, now: float, window_seconds: int = DEFAULT_WINDOW_SECONDS
) -> None:
    """Raise ``timestamp_out_of_window`` if ``timestamp`` is more than the window from ``now``."""
    if abs(now - timestamp) > window_seconds:
        raise SignatureError(
            "timestamp_out_of_window",
            f"{HEADER_TIMESTAMP} must be within {window_seconds} seconds of the server clock",
        )


def sign_request(
    *,
    method: str,
    target: str,
    body: bytes,
    key_id: str,
    key_type: KeyType,
    secret: str | None = None,
    private_key: Ed25519PrivateKey | None = None,
    timestamp: int,
    nonce: str,
) -> dict[str, str]:
    """The four signing headers for a request (client side: CLI, tests, callbacks).

    Raises ValueError if the key id or nonce would be refused, or the key material for
    ``key_type`` is missing.
    """
    # Fail at the caller rather than with a 401 from the server.
    if not _KEY_ID_RE.fullmatch(key_id):
        raise ValueError("key_id must be 1-128 characters of [A-Za-z0-9_-]")
    if not _NONCE_RE.fullmatch(nonce):
        raise ValueError("nonce must be 16-64 characters of [A-Za-z0-9_-]")
    if timestamp < 0:
        raise ValueError("timestamp must not be negative")

    path, raw_query = split_target(target)
    message = string_to_sign(method, path, raw_query, key_id, str(timestamp), nonce, body)
    if key_type == KeyType.HMAC:
        if secret is None:
            raise ValueError("an hmac key needs its secret")
        signature = sign_hmac(secret, message)
    elif key_type == KeyType.ED25519:
        if private_key is None:
            raise ValueError("an ed25519 key needs its private key")
        signature = sign_ed25519(private_key, message)
    else:
        raise ValueError(f"unknown key type {key_type!r}")
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature,
    }


def new_nonce() -> str:
    """A fresh random nonce: 32 characters of [A-Za-z0-9_-]."""
    return secrets.token_urlsafe(24)


def ed25519_public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """The raw 32-byte public key, standard base64 (as published at /v1/platform-key)."""
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_ed25519_private_key_from_seed_b64(seed_b64: str) -> Ed25519PrivateKey:
    """Build a private key from its 32-byte seed in standard base64; ValueError if malformed."""
    seed = _strict_b64decode(seed_b64)
    if seed is None or len(seed) != _ED25519_SEED_BYTES:
        raise ValueError("an Ed25519 seed is 32 bytes in standard base64 with padding")
    return Ed25519PrivateKey.from_private_bytes(seed)
