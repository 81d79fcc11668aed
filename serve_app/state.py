"""What one API process holds: its engine, repositories, verifier and the order hosts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import ray
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.directory import supplier_actor_handle
from actors.order_actor import OrderReply, host_index, host_name
from domain.signing import ed25519_public_key_b64
from persistence.db import make_engine
from persistence.nonces import DbNonceStore
from persistence.orders import OrderRepository
from persistence.redis_store import (
    LocalRateLimiter,
    LocalStockCache,
    RedisGate,
    RedisStockCache,
    StockCache,
    redis_client,
)
from persistence.secretbox import SecretBox
from persistence.work import WorkRepository
from serve_app.auth import Admission, RequestVerifier, SeparateAdmission
from serve_app.caches import CachingAccountRepository, CachingCatalogRepository
from serve_app.coalesce import Coalescer
from showdist.settings import Settings


class PlatformState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.engine = make_engine(settings.resolved_database_url(), pool_size=settings.db_pool_size)
        self.accounts = CachingAccountRepository(
            self.engine,
            SecretBox(settings.resolved_master_key()),
            ttl_s=settings.auth_cache_seconds,
        )
        self.catalog = CachingCatalogRepository(self.engine, ttl_s=settings.catalog_cache_seconds)
        self.orders = OrderRepository(self.engine, tz=self.tz)
        self.work = WorkRepository(self.engine)
        self.redis = (
            redis_client(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
            if settings.redis_url
            else None
        )
        # Redis where it belongs (nonces, rate limits, hot stock); embedded fallbacks without it.
        admission: Admission
        if self.redis is not None:
            admission = RedisGate(self.redis)
            self.stock_cache: StockCache = RedisStockCache(self.redis)
        else:
            admission = SeparateAdmission(LocalRateLimiter(), DbNonceStore(self.engine))
            self.stock_cache = LocalStockCache()
        self.verifier = RequestVerifier(
            self.accounts,
            admission,
            window_seconds=settings.signature_window_seconds,
            default_rate_limit=settings.rate_limit_per_s,
        )
        seed = settings.resolved_platform_seed()
        self.platform_public_key = ed25519_public_key_b64(
            Ed25519PrivateKey.from_private_bytes(seed)
        )
        self._hosts: list[Any] | None = None
        # Order calls in flight, by (method, order id, distributor id): see serve_app.coalesce.
        self.in_flight: Coalescer[tuple[str, str, str | None], OrderReply] = Coalescer()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def host_for(self, order_id: str) -> Any:
        if self._hosts is None:
            self._hosts = [
                ray.get_actor(
                    host_name(self.settings.instance, i), namespace=self.settings.ray_namespace
                )
                for i in range(self.settings.order_hosts)
            ]
        return self._hosts[host_index(order_id, len(self._hosts))]

    async def supplier_handle(self, supplier_id: str) -> Any | None:
        from showdist.platform import supplier_config

        supplier = await self.catalog.get_supplier(supplier_id)
        if supplier is None:
            return None
        return supplier_actor_handle(supplier_config(self.settings, supplier))

    async def aclose(self) -> None:
        await self.engine.dispose()
