"""Build a supplier gateway from a supplier's stored `gateway` kind and `config`.

Each kind's configuration is a typed model with ranges (`SandboxConfig`): a field it does not
name, a wrong type, a non-finite number or a value out of range raises `ValueError` (a
pydantic `ValidationError`) naming the field, before anything is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from suppliers.gateway import SupplierGateway
from suppliers.sandbox.gateway import SandboxGateway

__all__ = ["GATEWAY_KINDS", "SandboxConfig", "build_gateway", "gateway_config"]

GATEWAY_KINDS: tuple[str, ...] = ("sandbox",)


class SandboxConfig(BaseModel):
    """The sandbox supplier's gateway: where it answers, and how long and how widely to call."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    base_url: str = Field(min_length=1, max_length=2000)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    max_connections: int = Field(default=100, ge=1, le=1000)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        return v


def gateway_config(kind: str, config: Mapping[str, Any]) -> SandboxConfig:
    """`config` checked as the configuration of a `kind` gateway (ValueError if it is not)."""
    if kind == "sandbox":
        return SandboxConfig.model_validate(dict(config))
    raise ValueError(f"unknown supplier gateway kind {kind!r}; known: {', '.join(GATEWAY_KINDS)}")


def build_gateway(kind: str, config: Mapping[str, Any]) -> SupplierGateway:
    """A new, unconnected gateway (it connects on first use, so it may be pickled first).
    An unknown kind or a configuration its model refuses raises `ValueError`."""
    checked = gateway_config(kind, config)
    return SandboxGateway(
        checked.base_url,
        timeout_s=checked.timeout_s,
        connect_timeout_s=checked.connect_timeout_s,
        max_connections=checked.max_connections,
    )
