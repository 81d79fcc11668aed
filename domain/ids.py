"""Identifiers: opaque strings with a type prefix."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets


def new_id(prefix: str, nbytes: int = 10) -> str:
    token = base64.b32encode(secrets.token_bytes(nbytes)).decode().rstrip("=").lower()
    return f"{prefix}_{token}"


def order_id_for(distributor_id: str, distributor_order_id: str) -> str:
    """The deterministic id of an order: the same (distributor, its order id) always maps to
    the same id, so a create can be routed to its host before the row exists and a duplicate
    create collides on the primary key."""
    # Length-prefixed, so no pair of strings can collide by moving a separator between them.
    a = distributor_id.encode("utf-8", "surrogatepass")
    b = distributor_order_id.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(len(a).to_bytes(4, "big") + a + b).digest()
    return "ord_" + base64.b32encode(digest[:15]).decode().lower()


def stable_shard(key: str, shards: int) -> int:
    """A hash that is the same in every process (unlike `hash()`, which is salted)."""
    if shards <= 0:
        raise ValueError("shards must be positive")
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % shards


_ORDER_ID = re.compile(r"ord_[a-z2-7]{24}")
_CATALOG_ID = re.compile(r"(shw|ses|tir)_[0-9a-f]{20}")


def is_order_id(value: str) -> bool:
    """Whether `value` has the shape of an id `order_id_for` makes (so may name an order)."""
    return _ORDER_ID.fullmatch(value) is not None


def is_catalog_id(prefix: str, value: str) -> bool:
    """Whether `value` has the shape of a synced catalog row's id with `prefix`."""
    return value.startswith(prefix + "_") and _CATALOG_ID.fullmatch(value) is not None
