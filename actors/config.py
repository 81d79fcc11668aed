"""Every platform actor's configuration, as plain frozen values (they travel to other
processes). `showdist.composition` builds a `PlatformConfig` from the settings, once, and
every process that starts an actor derives that actor's configuration from it here: so
whichever process starts an actor first (actors are found by name, and started by the first
caller), it starts with the same settings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class OrderHostSettings:
    lock_ttl_seconds: int = 900
    idle_seconds: float = 120.0  # an order actor idle this long is passivated
    db_pool_size: int = 16
    sweep_seconds: float = 5.0
    abandoned_lock_seconds: float = 60.0  # a NEW order older than this lost its lock call
    platform_seed_b64: str = field(default="", repr=False)  # signs callbacks
    # Seals real-name attendees on the order's row (persistence/identity.py); "" in tests
    # that make no real-name order.
    identity_key_b64: str = field(default="", repr=False)
    attendee_retention_days: int = 180  # attendees deleted this long after their session
    # The callback courier (actors/callbacks.py).
    callback_deadline_seconds: float = 10.0  # a delivery's whole time: connect, send, answer
    callback_max_attempts: int = 12  # failed attempts, then the message is dead
    callback_max_age_seconds: float = 86_400.0  # still failing this long after written: dead
    callback_per_distributor: int = 20  # orders per distributor whose messages a round takes
    callback_allowed_networks: tuple[str, ...] = ()  # CIDRs allowed although private/loopback
    # How often the gauges of docs/metrics.md are counted (negotiations, callback queue).
    metrics_count_seconds: float = 15.0


@dataclass(frozen=True, slots=True)
class SupplierSettings:
    max_concurrency: int = 64  # calls in flight to one supplier, per replica
    tick_seconds: float = 1.0  # negotiations, releases, feeds
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 5.0
    catalog_sync_seconds: float = 60.0  # an active supplier's catalog pulls
    db_pool_size: int = 4  # per supplier host, however many suppliers it hosts
    # The pool (actors/supplier_actor.py): suppliers without dedicated replicas share these
    # many host processes; a supplier's actor there is activated on use.
    # Opens suppliers' sealed secrets (suppliers/secrets.py); "" where none is stored.
    secrets_key_b64: str = field(default="", repr=False)
    pool_hosts: int = 2
    idle_seconds: float = 120.0  # a supplier's actor unused this long is passivated
    idle_feed_seconds: float = 30.0  # an inactive supplier's feeds, if it has issued orders
    idle_sync_seconds: float = 900.0  # an inactive supplier's catalog pulls
    # Pooled suppliers' locks made from the order hosts (actors/supplier_lane.py).
    lanes: bool = True


@dataclass(frozen=True, slots=True)
class SettlementSettings:
    tick_seconds: float = 1.0
    db_pool_size: int = 2


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    instance: str  # names this platform's actors (one platform per database)
    namespace: str  # the Ray namespace they live in
    database_url: str = field(repr=False)
    timezone: str = "Asia/Shanghai"
    order_hosts: int = 2
    hosts: OrderHostSettings = OrderHostSettings()
    suppliers: SupplierSettings = SupplierSettings()
    settlement: SettlementSettings = SettlementSettings()

    def without_signing_key(self) -> PlatformConfig:
        """The configuration for actors that sign and seal nothing (supplier and settlement
        actors): the callback signing seed and the attendees' key stay with the order hosts."""
        return replace(self, hosts=replace(self.hosts, platform_seed_b64="", identity_key_b64=""))


@dataclass(frozen=True, slots=True)
class SupplierHostConfig:
    """One supplier host: pool host `pool_index` (of `suppliers.pool_hosts`), or the
    dedicated host of replica `replica` of supplier `supplier_id`."""

    platform: PlatformConfig
    pool_index: int | None = None
    supplier_id: str | None = None
    replica: int = 0

    @property
    def settings(self) -> SupplierSettings:
        return self.platform.suppliers


@dataclass(frozen=True, slots=True)
class SupplierActorConfig:
    """One supplier's actor (one replica of it), as its host runs it."""

    platform: PlatformConfig
    supplier_id: str
    gateway: str
    gateway_config: dict[str, Any] = field(repr=False)
    replica: int = 0  # this actor's index among the supplier's replicas

    @property
    def settings(self) -> SupplierSettings:
        return self.platform.suppliers
