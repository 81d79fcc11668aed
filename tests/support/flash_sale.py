"""A box office of its own with one tier of `stock` seats, and distributors allowed to sell it,
made through the admin API: for the flash-sale test and benchmark (bench/flash_sale.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persistence.catalog import catalog_id
from showdist.client import AsyncSignedClient, Credentials
from suppliers.sandbox.process import SandboxAdmin, SandboxProcess

SHOW, SESSION, TIER = "flash_show", "flash_session", "flash_tier"


def flash_catalog(stock: int) -> dict[str, Any]:
    return {
        "shows": [
            {
                "ref": SHOW,
                "title": "限量首发",
                "city": "上海",
                "category": "concert",
                "venue": "闪购剧场",
                "starts_at": "2026-12-31T20:00:00+08:00",
                "status": "online",
                "sessions": [
                    {
                        "ref": SESSION,
                        "starts_at": "2026-12-31T20:00:00+08:00",
                        "status": "online",
                        "tiers": [
                            {
                                "ref": TIER,
                                "name": "早鸟票",
                                "face_value": 68000,
                                "price": 66000,
                                "settlement_price": 60000,
                                "currency": "CNY",
                                "stock": stock,
                            }
                        ],
                    }
                ],
            }
        ]
    }


@dataclass
class FlashSale:
    sandbox: SandboxProcess
    box_office: SandboxAdmin
    supplier_id: str
    session_id: str
    tier_id: str
    sellers: list[Credentials]

    def body(self, distributor_order_id: str) -> dict[str, Any]:
        return {
            "distributor_order_id": distributor_order_id,
            "session_id": self.session_id,
            "tier_id": self.tier_id,
            "quantity": 1,
            "buyer": {"name": "李四", "phone": "13900000000"},
            "delivery": {"method": "ETICKET"},
        }

    async def retire(self, admin: AsyncSignedClient) -> None:
        await _ok(admin, "POST", f"/admin/v1/suppliers/{self.supplier_id}/retire")
        self.box_office.close()
        self.sandbox.stop()


async def _ok(admin: AsyncSignedClient, method: str, path: str, body: Any = None) -> Any:
    r = await admin.request(method, path, body)
    if r.status_code not in (200, 201):
        raise AssertionError(f"{method} {path}: {r.status_code} {r.text}")
    return r.json()


async def open_flash_sale(admin: AsyncSignedClient, *, stock: int, sellers: int) -> FlashSale:
    """A new sandbox box office with one tier of `stock` seats, registered and synced, and
    `sellers` new distributors, each with a key and a grant of that supplier only."""
    sandbox = SandboxProcess.start()
    box_office = SandboxAdmin(sandbox.url)
    box_office.load_catalog(flash_catalog(stock))
    config = {"base_url": sandbox.url, "timeout_s": 5.0}
    supplier = (
        await _ok(
            admin,
            "POST",
            "/admin/v1/suppliers",
            {"name": "Flash Box Office", "gateway": "sandbox", "config": config},
        )
    )["id"]
    await _ok(admin, "POST", f"/admin/v1/suppliers/{supplier}/sync")
    creds = []
    for i in range(sellers):
        did = (await _ok(admin, "POST", "/admin/v1/distributors", {"name": f"Flash {i}"}))["id"]
        key = await _ok(admin, "POST", f"/admin/v1/distributors/{did}/keys", {"type": "hmac"})
        grant = {"scope": "supplier", "value": supplier}
        await _ok(admin, "POST", f"/admin/v1/distributors/{did}/grants", grant)
        creds.append(Credentials(key["key_id"], secret=key["secret"]))
    return FlashSale(
        sandbox,
        box_office,
        supplier,
        catalog_id("ses", supplier, SHOW, SESSION),
        catalog_id("tir", supplier, SHOW, SESSION, TIER),
        creds,
    )
