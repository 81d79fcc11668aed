"""What one API process holds: its engine, repositories, verifier and the order hosts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.directory import supplier_actor
from actors.interfaces import SettlementCalls, SupplierActorCalls
from actors.routing import OrderHosts, pooled
from actors.startup import settlement_actor
from domain.replies import OrderReply
from domain.signing import ed25519_public_key_b64
from domain.sold_out import SoldOutView
from persistence.db import make_engine
from persistence.identity import IdentityVault, identity_key
from persistence.nonces import DbNonceStore
from persistence.orders import OrderRepository
from persistence.partitions import PartitionRepository
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
from serve_app.single_flight import SingleFlight
from showdist.composition import platform_config
from showdist.settings import Settings
from suppliers.secrets import supplier_secrets_key


class PlatformState:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.platform = platform_config(settings)
        self._settlement: SettlementCalls | None = None
        # Replica 0 of each supplier's actor, found once: it is never retired, and Ray
        # restarts it under the same handle (suppliers are never deleted).
        # supplier id -> (when looked up, or None to keep it; its actor)
        self._supplier_actors: dict[str, tuple[float | None, SupplierActorCalls]] = {}
        self.tz = ZoneInfo(settings.timezone)
        # Fair: in a flash sale 64 refusals in flight share this pool, each reading one row,
        # and SQLAlchemy's own pool let a few wait up to 0.4 s behind later ones.
        self.engine = make_engine(
            settings.resolved_database_url(), pool_size=settings.db_pool_size, fair=True
        )
        self.partitions = PartitionRepository(self.engine)
        self.hosts = OrderHosts(self.platform, self.partitions)
        self.accounts = CachingAccountRepository(
            self.engine,
            SecretBox(settings.resolved_master_key()),
            ttl_s=settings.auth_cache_seconds,
        )
        self.catalog = CachingCatalogRepository(self.engine, ttl_s=settings.catalog_cache_seconds)
        # Seals suppliers' secrets (a pretix token) before their config is stored.
        self.supplier_secrets = SecretBox(supplier_secrets_key(settings.resolved_master_key()))
        self.orders = OrderRepository(
            self.engine,
            tz=self.tz,
            vault=IdentityVault(identity_key(settings.resolved_master_key())),
        )
        self.work = WorkRepository(self.engine)
        self.redis = (
            redis_client(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
            if settings.redis_url
            else None
        )
        # Redis where it belongs (nonces, rate limits, hot stock); embedded fallbacks without it.
        admission: Admission
        self._gate: RedisGate | None = None
        if self.redis is not None:
            admission = self._gate = RedisGate(self.redis)
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
        # Tiers the supplier just said are sold out, a view at most that old (domain.sold_out).
        self.sold_out = SoldOutView(settings.sold_out_view_seconds)
        # Order calls in flight, by (method, order id, distributor id): see serve_app.single_flight.
        self.in_flight: SingleFlight[tuple[str, str, str | None], OrderReply] = SingleFlight()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def supplier_actor(self, supplier_id: str) -> SupplierActorCalls | None:
        """The supplier's actor (its first replica's), its host started if it is not
        running; None for an unknown supplier. A pooled supplier's handle is kept (pool
        hosts are never let go); a dedicated one's is looked up again after a second, as a
        replica let go exits and a later one is another actor."""
        now = time.monotonic()
        known = self._supplier_actors.get(supplier_id)
        if known is not None and (known[0] is None or now - known[0] < 1.0):
            return known[1]
        supplier = await self.catalog.get_supplier(supplier_id)
        if supplier is None:
            return None
        actor = supplier_actor(self.platform, supplier)
        self._supplier_actors[supplier_id] = (None if pooled(supplier.replicas) else now, actor)
        return actor

    def forget_supplier(self, supplier_id: str) -> None:
        """Find the supplier's actor again on next use (its placement changed)."""
        self._supplier_actors.pop(supplier_id, None)

    @property
    def settlement(self) -> SettlementCalls:
        if self._settlement is None:
            self._settlement = settlement_actor(self.platform)
        return self._settlement

    def forget_settlement(self) -> None:
        """Look the settlement actor up (or start it) again on next use."""
        self._settlement = None

    async def aclose(self) -> None:
        if self._gate is not None:
            self._gate.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
