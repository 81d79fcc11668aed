"""The composition root: the one place where settings become every actor's configuration.

Every process that starts or calls platform actors (the CLI's `showdist up`, `serve deploy`'s
app builder, each API replica, each order host) holds the same `PlatformConfig`, built here,
and derives each actor's configuration from it (`actors.config`); so an actor starts with the
same settings whichever process happens to start it first."""

from __future__ import annotations

import base64

from actors.config import (
    OrderHostSettings,
    PlatformConfig,
    SettlementSettings,
    SupplierSettings,
)
from persistence.identity import identity_key
from showdist.settings import Settings
from suppliers.secrets import supplier_secrets_key


def platform_config(settings: Settings) -> PlatformConfig:
    return PlatformConfig(
        instance=settings.instance,
        namespace=settings.ray_namespace,
        database_url=settings.resolved_database_url(),
        timezone=settings.timezone,
        order_hosts=settings.order_hosts,
        hosts=OrderHostSettings(
            lock_ttl_seconds=settings.lock_ttl_seconds,
            idle_seconds=settings.order_idle_seconds,
            db_pool_size=settings.db_pool_size,
            sweep_seconds=settings.sweep_seconds,
            abandoned_lock_seconds=settings.abandoned_lock_seconds,
            platform_seed_b64=base64.b64encode(settings.resolved_platform_seed()).decode(),
            identity_key_b64=base64.b64encode(
                identity_key(settings.resolved_master_key())
            ).decode(),
            attendee_retention_days=settings.attendee_retention_days,
            callback_deadline_seconds=settings.callback_deadline_seconds,
            callback_max_attempts=settings.callback_max_attempts,
            callback_max_age_seconds=settings.callback_max_age_seconds,
            callback_per_distributor=settings.callback_per_distributor,
            callback_allowed_networks=tuple(settings.callback_allowed_networks),
            metrics_count_seconds=settings.metrics_count_seconds,
        ),
        suppliers=SupplierSettings(
            max_concurrency=settings.supplier_max_concurrency,
            tick_seconds=settings.supplier_tick_seconds,
            breaker_failures=settings.breaker_failures,
            breaker_cooldown_seconds=settings.breaker_cooldown_seconds,
            catalog_sync_seconds=settings.catalog_sync_seconds,
            secrets_key_b64=base64.b64encode(
                supplier_secrets_key(settings.resolved_master_key())
            ).decode(),
            pool_hosts=settings.supplier_hosts,
            idle_seconds=settings.supplier_idle_seconds,
            idle_feed_seconds=settings.supplier_idle_feed_seconds,
            idle_sync_seconds=settings.supplier_idle_sync_seconds,
            lanes=settings.supplier_lanes,
        ),
        settlement=SettlementSettings(),
    )
