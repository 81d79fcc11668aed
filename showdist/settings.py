"""Settings in one typed place: environment variables with the SHOWDIST_ prefix.

The embedded default needs none of them: a data folder (`.showdist/` in the working
directory) holds the SQLite database, the master key for secrets at rest and the platform's
Ed25519 signing seed, each generated on first use with owner-only permissions.
"""

from __future__ import annotations

import base64
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.callback_urls import parse_networks

DEFAULT_MAX_BODY_BYTES = 64 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOWDIST_", extra="ignore")

    data_dir: Path = Path(".showdist")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite in the data folder",
    )
    db_pool_size: int = 16
    redis_url: str | None = None
    redis_timeout_seconds: float = Field(
        default=2.0, description="a Redis call slower than this counts as Redis being down"
    )
    master_key: SecretStr | None = Field(
        default=None, description="base64 of 32 bytes; AES-GCM key for secrets at rest"
    )
    platform_key_seed: SecretStr | None = Field(
        default=None, description="base64 of the 32-byte Ed25519 seed that signs callbacks"
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    serve_replicas: int = 1
    serve_max_replicas_per_node: int | None = Field(
        default=None,
        ge=1,
        description="at most this many API replicas on one node (1: one per node, so a lost"
        " node loses one); unset: as Serve places them",
    )
    serve_proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        default="EveryNode",
        description="where Serve runs its HTTP proxy: on every node (each node's own address,"
        " as in production) or on the head only (several nodes on one machine share its ports)",
    )
    serve_access_log: bool = Field(
        default=False,
        description="Serve's access log line per request (off: it cost the API replica a few "
        "per cent of its CPU; HAProxy and the metrics see every request)",
    )
    ray_address: str | None = None
    ray_namespace: str = "showdist"
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description=(
            "Ray's metrics export port (Prometheus) on the node, when the platform starts Ray"
            " itself; in a cluster, `ray start --metrics-export-port` on every node"
        ),
    )
    metrics_count_seconds: float = Field(
        default=15.0, gt=0, description="how often the negotiation and callback gauges are counted"
    )
    instance: str = Field(
        default="showdist", description="names this platform's actors; one per database"
    )

    order_hosts: int = 2
    order_idle_seconds: float = 120.0  # an order actor idle this long is passivated
    lock_ttl_seconds: int = 900
    signature_window_seconds: int = 300
    supplier_timeout_seconds: float = 5.0
    supplier_max_concurrency: int = 64
    timezone: str = "Asia/Shanghai"
    sweep_seconds: float = Field(default=5.0, description="how often timers look for stuck orders")
    supplier_tick_seconds: float = Field(
        default=1.0, description="how often supplier actors poll negotiations, releases, feeds"
    )
    catalog_sync_seconds: float = Field(default=60.0, description="scheduled catalog pulls")
    attendee_retention_days: int = Field(
        default=180,
        ge=1,
        le=3650,
        description="real-name attendees kept this long after the session",
    )
    supplier_hosts: int = Field(
        default=2, ge=1, le=64, description="processes hosting the suppliers without replicas"
    )
    supplier_idle_seconds: float = Field(
        default=120.0, gt=0, description="a supplier's actor unused this long is passivated"
    )
    supplier_lanes: bool = Field(
        default=True,
        description="pooled suppliers' locks are made from the order hosts, not through "
        "the supplier's actor (one Ray hop less; its actor keeps stats and the breaker)",
    )
    supplier_idle_feed_seconds: float = Field(
        default=30.0, gt=0, description="how often an idle supplier's feeds are read (if needed)"
    )
    supplier_idle_sync_seconds: float = Field(
        default=900.0, gt=0, description="how often an idle supplier's catalog is pulled"
    )
    stock_max_age_seconds: float = Field(default=2.0, description="how stale stock may be")
    sold_out_view_seconds: float = Field(
        default=2.0,
        ge=0,
        description="a tier the supplier said is sold out is refused without asking it again "
        "for this long (0: always ask)",
    )
    auth_cache_seconds: float = Field(
        default=1.0, description="how long an API replica trusts a cached key or grant"
    )
    catalog_cache_seconds: float = Field(
        default=1.0, description="how long an API replica reuses the show list it read"
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES,
        ge=1024,
        description="a request body larger than this is refused (413) without being read",
    )
    rate_limit_per_s: int = Field(
        default=50, ge=1, description="per key, unless set per distributor"
    )
    breaker_failures: int = Field(default=5, description="consecutive failures that open a circuit")
    breaker_cooldown_seconds: float = Field(default=5.0, description="open circuit before a probe")
    abandoned_lock_seconds: float = Field(
        default=60.0, description="a NEW order older than this lost its lock call"
    )
    callback_deadline_seconds: float = Field(
        default=10.0, gt=0, description="a callback's whole delivery: connect, send, the answer"
    )
    callback_max_attempts: int = Field(
        default=12, ge=1, description="failed attempts after which a callback is dead"
    )
    callback_max_age_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="a callback failing this long after it was written is dead",
    )
    callback_per_distributor: int = Field(
        default=20, ge=1, description="orders per distributor whose callbacks a courier round sends"
    )
    callback_allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs that callbacks may reach although private or loopback (on premises)",
    )

    @field_validator("callback_allowed_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        parse_networks(tuple(v))
        return v

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'showdist.db').resolve()}"

    def prepare_data_dir(self) -> Path:
        """The data folder, made owner-only (0700), with the embedded database file created
        owner-only (0600) before SQLite first opens it (SQLite gives its journal files the
        database file's mode)."""
        private_dir(self.data_dir)
        if not self.database_url:
            private_file(self.data_dir / "showdist.db")
        return self.data_dir

    def resolved_master_key(self) -> bytes:
        if self.master_key is not None:
            return _b64_32(self.master_key.get_secret_value(), "SHOWDIST_MASTER_KEY")
        return _b64_32(_read_or_create_secret(self.data_dir / "master.key"), "master.key")

    def resolved_platform_seed(self) -> bytes:
        if self.platform_key_seed is not None:
            return _b64_32(self.platform_key_seed.get_secret_value(), "SHOWDIST_PLATFORM_KEY_SEED")
        return _b64_32(_read_or_create_secret(self.data_dir / "platform_ed25519.seed"), "seed")

    def with_resolved_secrets(self) -> Settings:
        """A copy carrying the secrets themselves, to hand to processes on other machines."""
        return self.model_copy(
            update={
                "database_url": self.resolved_database_url(),
                "master_key": SecretStr(base64.b64encode(self.resolved_master_key()).decode()),
                "platform_key_seed": SecretStr(
                    base64.b64encode(self.resolved_platform_seed()).decode()
                ),
            }
        )


def _b64_32(value: str, name: str) -> bytes:
    raw = base64.b64decode(value.strip(), validate=True)
    if len(raw) != 32:
        raise ValueError(f"{name} must be base64 of exactly 32 bytes")
    return raw


def private_dir(path: Path) -> None:
    """Make `path` (and missing parents) a folder only its owner may enter."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def private_file(path: Path) -> None:
    """Create `path` empty and owner-only (0600) if missing; narrow an existing one."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, a file no one but its owner may read from the moment it exists."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _read_or_create_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    private_dir(path.parent)
    value = base64.b64encode(secrets.token_bytes(32)).decode()
    # O_EXCL: when two processes race to create it, one wins and the other reads its value.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
