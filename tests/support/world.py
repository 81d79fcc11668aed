"""A small world for end-to-end tests and benchmarks: a sandbox supplier with a known
catalog, synced into the platform's database, and distributors with keys and grants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from actors.catalog_sync import sync_catalog
from domain.grants import GrantScope
from domain.signing import ed25519_public_key_b64
from persistence.accounts import ADMIN, DISTRIBUTOR, AccountRepository
from persistence.catalog import CatalogRepository, catalog_id
from persistence.db import make_engine
from persistence.secretbox import SecretBox
from showdist.client import Credentials
from showdist.settings import Settings
from suppliers.sandbox.gateway import SandboxGateway

SHOW_REF = "e2e_show"
SESSION_REF = "e2e_session"
CANCEL_SHOW_REF = "e2e_show_to_cancel"
CANCEL_SESSION_REF = "e2e_session_to_cancel"
REAL_NAME_SHOW_REF = "e2e_show_real_name"  # 实名制: one document, one ticket of the session
REAL_NAME_SESSION_REF = "e2e_session_real_name"


def world_catalog(*, big_stock: int = 1_000_000, small_stock: int = 3) -> dict[str, Any]:
    def tier(ref: str, stock: int) -> dict[str, Any]:
        return {
            "ref": ref,
            "name": ref,
            "face_value": 38000,
            "price": 36000,
            "settlement_price": 32400,
            "currency": "CNY",
            "stock": stock,
        }

    return {
        "shows": [
            {
                "ref": SHOW_REF,
                "title": "端到端测试演出",
                "city": "上海",
                "category": "concert",
                "venue": "测试剧场",
                "starts_at": "2026-12-19T19:30:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": SESSION_REF,
                        "starts_at": "2026-12-19T19:30:00+08:00",
                        "status": "online",
                        "tiers": [tier("e2e_big", big_stock), tier("e2e_small", small_stock)],
                    }
                ],
            },
            {
                "ref": CANCEL_SHOW_REF,
                "title": "将被取消的演出",
                "city": "北京",
                "category": "theatre",
                "venue": "测试剧场二",
                "starts_at": "2026-12-20T19:30:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": CANCEL_SESSION_REF,
                        "starts_at": "2026-12-20T19:30:00+08:00",
                        "status": "online",
                        "tiers": [tier("e2e_cancel", 1000)],
                    }
                ],
            },
            {
                "ref": REAL_NAME_SHOW_REF,
                "title": "实名制演唱会",
                "city": "上海",
                "category": "concert",
                "venue": "测试体育场",
                "starts_at": "2026-12-26T19:30:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": REAL_NAME_SESSION_REF,
                        "starts_at": "2026-12-26T19:30:00+08:00",
                        "status": "online",
                        "real_name_required": True,
                        "tickets_per_id": 1,
                        "tiers": [tier("e2e_real_name", 1000)],
                    },
                    {
                        "ref": REAL_NAME_SESSION_REF + "_2",
                        "starts_at": "2026-12-27T19:30:00+08:00",
                        "status": "online",
                        "real_name_required": True,
                        "tickets_per_id": 1,
                        "tiers": [tier("e2e_real_name_2", 1000)],
                    },
                ],
            },
        ]
    }


@dataclass
class Party:
    distributor_id: str
    creds: Credentials
    ed25519: Credentials | None = None


@dataclass
class World:
    base_url: str
    supplier_id: str
    show_id: str
    session_id: str
    big_tier_id: str
    small_tier_id: str
    a: Party
    b: Party
    admin: Credentials
    extra: dict[str, Any] = field(default_factory=dict)

    def order_body(self, distributor_order_id: str, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "distributor_order_id": distributor_order_id,
            "session_id": self.session_id,
            "tier_id": self.big_tier_id,
            "quantity": 2,
            "buyer": {"name": "张三", "phone": "13800000000"},
            "delivery": {"method": "ETICKET"},
        }
        body.update(overrides)
        return body


async def seed_world(settings: Settings, sandbox_url: str, base_url: str) -> World:
    """Expects the sandbox to hold `world_catalog()` already."""
    now = datetime.now(UTC)
    engine = make_engine(settings.resolved_database_url())
    try:
        catalog = CatalogRepository(engine)
        accounts = AccountRepository(engine, SecretBox(settings.resolved_master_key()))
        supplier = await catalog.create_supplier(
            "E2E Sandbox", "sandbox", {"base_url": sandbox_url, "timeout_s": 2.0}, now
        )
        gateway = SandboxGateway(sandbox_url)
        try:
            await sync_catalog(supplier.id, gateway, catalog, now)
        finally:
            await gateway.aclose()

        async def party(name: str) -> Party:
            d = await accounts.create_distributor(name, now)
            key_id, secret = await accounts.create_hmac_key(
                owner_kind=DISTRIBUTOR, distributor_id=d.id, now=now
            )
            await accounts.create_grant(d.id, GrantScope.ALL, None, now=now)
            private = Ed25519PrivateKey.generate()
            ed_id = await accounts.create_ed25519_key(
                distributor_id=d.id, public_key_b64=ed25519_public_key_b64(private), now=now
            )
            return Party(
                d.id, Credentials(key_id, secret=secret), Credentials(ed_id, private_key=private)
            )

        a = await party("Distributor A")
        b = await party("Distributor B")
        admin_id, admin_secret = await accounts.create_hmac_key(
            owner_kind=ADMIN, distributor_id=None, now=now
        )
    finally:
        await engine.dispose()
    sid = supplier.id
    return World(
        base_url=base_url,
        supplier_id=sid,
        show_id=catalog_id("shw", sid, SHOW_REF),
        session_id=catalog_id("ses", sid, SHOW_REF, SESSION_REF),
        big_tier_id=catalog_id("tir", sid, SHOW_REF, SESSION_REF, "e2e_big"),
        small_tier_id=catalog_id("tir", sid, SHOW_REF, SESSION_REF, "e2e_small"),
        a=a,
        b=b,
        admin=Credentials(admin_id, secret=admin_secret),
        extra={
            "cancel_session_id": catalog_id("ses", sid, CANCEL_SHOW_REF, CANCEL_SESSION_REF),
            "cancel_tier_id": catalog_id(
                "tir", sid, CANCEL_SHOW_REF, CANCEL_SESSION_REF, "e2e_cancel"
            ),
            "real_name_session_id": catalog_id(
                "ses", sid, REAL_NAME_SHOW_REF, REAL_NAME_SESSION_REF
            ),
            "real_name_tier_id": catalog_id(
                "tir", sid, REAL_NAME_SHOW_REF, REAL_NAME_SESSION_REF, "e2e_real_name"
            ),
            "real_name_session_2_id": catalog_id(
                "ses", sid, REAL_NAME_SHOW_REF, REAL_NAME_SESSION_REF + "_2"
            ),
            "real_name_tier_2_id": catalog_id(
                "tir", sid, REAL_NAME_SHOW_REF, REAL_NAME_SESSION_REF + "_2", "e2e_real_name_2"
            ),
        },
    )
