"""Build a supplier gateway from a supplier's stored `gateway` kind and `config`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from suppliers.gateway import SupplierGateway
from suppliers.sandbox.gateway import SandboxGateway

__all__ = ["GATEWAY_KINDS", "build_gateway"]

GATEWAY_KINDS: tuple[str, ...] = ("sandbox",)


def build_gateway(kind: str, config: Mapping[str, Any]) -> SupplierGateway:
    """A new, unconnected gateway (it connects on first use, so it may be pickled first).

    `sandbox`: `base_url` (required), `timeout_s` (5.0), `connect_timeout_s` (1.0),
    `max_connections` (100). An unknown kind or a missing `base_url` raises `ValueError`.
    """
    if kind == "sandbox":
        base_url = config.get("base_url")
        if not isinstance(base_url, str) or not base_url:
            raise ValueError("a sandbox gateway needs a base_url")
        return SandboxGateway(
            base_url,
            timeout_s=float(config.get("timeout_s", 5.0)),
            connect_timeout_s=float(config.get("connect_timeout_s", 1.0)),
            max_connections=int(config.get("max_connections", 100)),
        )
    raise ValueError(f"unknown supplier gateway kind {kind!r}; known: {', '.join(GATEWAY_KINDS)}")
