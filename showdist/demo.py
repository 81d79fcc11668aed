"""Demo data for `showdist up --demo`: a sandbox supplier with its catalog synced, and a
distributor with an HMAC key and a grant to everything."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from actors.catalog_sync import sync_catalog
from domain.grants import GrantScope
from persistence.accounts import DISTRIBUTOR, AccountRepository
from persistence.catalog import CatalogRepository
from persistence.db import make_engine
from persistence.secretbox import SecretBox
from showdist.settings import Settings, write_private
from suppliers.sandbox.gateway import SandboxGateway

DEMO_SUPPLIER = "Sandbox Box Office"


async def seed_demo(settings: Settings, sandbox_url: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    engine = make_engine(settings.resolved_database_url())
    try:
        catalog = CatalogRepository(engine)
        accounts = AccountRepository(engine, SecretBox(settings.resolved_master_key()))
        config = {"base_url": sandbox_url, "timeout_s": settings.supplier_timeout_seconds}
        supplier = await catalog.find_supplier_by_name(DEMO_SUPPLIER)
        if supplier is None:
            supplier = await catalog.create_supplier(DEMO_SUPPLIER, "sandbox", config, now)
        else:
            await catalog.update_supplier_config(supplier.id, config, now)
        gateway = SandboxGateway(sandbox_url)
        try:
            await sync_catalog(supplier.id, gateway, catalog, now)
        finally:
            await gateway.aclose()
        dist = await accounts.create_distributor("Demo Travel", now)
        key_id, secret = await accounts.create_hmac_key(
            owner_kind=DISTRIBUTOR, distributor_id=dist.id, now=now
        )
        await accounts.create_grant(dist.id, GrantScope.ALL, None, now=now)
        # The example is a session that takes orders as the README shows them: on sale,
        # with a tier, and not real-name (those need attendees).
        example: tuple[str, str, str] | None = None
        for show in await catalog.list_shows():
            detail = await catalog.show_detail(show["id"])
            for ses in (detail or {}).get("sessions", []):
                if ses["tiers"] and not ses["real_name_required"] and ses["status"] == "online":
                    example = (show["id"], ses["id"], ses["tiers"][0]["id"])
                    break
            if example is not None:
                break
    finally:
        await engine.dispose()
    info: dict[str, Any] = {
        "distributor_id": dist.id,
        "key_id": key_id,
        "secret": secret,
        "supplier_id": supplier.id,
        "base_url": f"http://{settings.http_host}:{settings.http_port}",
    }
    if example is not None:
        info["example"] = dict(zip(("show_id", "session_id", "tier_id"), example, strict=True))
    path = settings.data_dir / "demo-key.json"
    write_private(path, json.dumps(info, indent=2) + "\n")
    return info
