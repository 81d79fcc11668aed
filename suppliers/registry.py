"""Build a supplier gateway from a supplier's stored `gateway` kind and `config`.

Each kind's configuration is a typed model with ranges (`SandboxConfig`, `PretixConfig`): a
field it does not name, a wrong type, a non-finite number or a value out of range raises
`ValueError` (a pydantic `ValidationError`) naming the field, before anything is stored.

A kind's secrets (pretix's API token) are stored sealed: `stored_gateway_config` turns the
configuration ops send into the one to store (`token` becomes `token_sealed`), and
`build_gateway` opens it again with the same `SecretSealer` (see `suppliers.secrets`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from suppliers.gateway import SupplierGateway
from suppliers.pretix.config import PretixConfig, PretixSettings, SealedPretixConfig
from suppliers.pretix.gateway import PretixGateway
from suppliers.sandbox.gateway import SandboxGateway
from suppliers.secrets import SecretSealer

__all__ = [
    "GATEWAY_KINDS",
    "PretixConfig",
    "SandboxConfig",
    "SealedPretixConfig",
    "build_gateway",
    "gateway_config",
    "stored_gateway_config",
]

GATEWAY_KINDS: tuple[str, ...] = ("sandbox", "pretix")


class SandboxConfig(BaseModel):
    """The sandbox supplier's gateway: where it answers, and how long and how widely to call."""

    # strict: "5" or true is not a number (a supplier config is JSON, typed as documented)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)
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


def gateway_config(kind: str, config: Mapping[str, Any]) -> SandboxConfig | PretixConfig:
    """`config` checked as the configuration of a `kind` gateway, as ops send it (ValueError
    if it is not)."""
    if kind == "sandbox":
        return SandboxConfig.model_validate(dict(config))
    if kind == "pretix":
        return PretixConfig.model_validate(dict(config))
    raise ValueError(f"unknown supplier gateway kind {kind!r}; known: {', '.join(GATEWAY_KINDS)}")


def _token_binding(settings: PretixSettings) -> dict[str, str]:
    # What a sealed token is for: a copy moved into another pretix supplier does not open.
    return {
        "key_id": "pretix-token",
        "owner": f"{settings.base_url}|{settings.organizer}|{settings.event}",
    }


def stored_gateway_config(
    kind: str, config: Mapping[str, Any], sealer: SecretSealer
) -> dict[str, Any]:
    """The configuration to store for a new supplier: checked (ValueError as
    `gateway_config`), with its secrets sealed. pretix: `token` is replaced by
    `token_sealed`; the token itself is stored nowhere."""
    checked = gateway_config(kind, config)
    if isinstance(checked, PretixConfig):
        token = checked.token.get_secret_value()
        sealed = sealer.seal(token, **_token_binding(checked))
        return {**checked.settings_dict(), "token_sealed": sealed}
    return checked.model_dump()


def build_gateway(
    kind: str, config: Mapping[str, Any], *, sealer: SecretSealer | None = None
) -> SupplierGateway:
    """A new, unconnected gateway (it connects on first use, so it may be pickled first).
    An unknown kind or a configuration its model refuses raises `ValueError`. A pretix
    configuration is the stored one (`token_sealed`, opened with `sealer`), or one with the
    token in clear (`token`, as ops send it)."""
    if kind == "pretix":
        if "token_sealed" in config:
            stored = SealedPretixConfig.model_validate(dict(config))
            if sealer is None:
                raise ValueError("a sealed pretix token needs the supplier secrets key")
            settings = PretixSettings.model_validate(stored.settings_dict())
            token = sealer.open(stored.token_sealed, **_token_binding(settings))
            return PretixGateway(settings, token)
        clear = PretixConfig.model_validate(dict(config))
        settings = PretixSettings.model_validate(clear.settings_dict())
        return PretixGateway(settings, clear.token.get_secret_value())
    checked = gateway_config(kind, config)
    assert isinstance(checked, SandboxConfig)
    return SandboxGateway(
        checked.base_url,
        timeout_s=checked.timeout_s,
        connect_timeout_s=checked.connect_timeout_s,
        max_connections=checked.max_connections,
    )
