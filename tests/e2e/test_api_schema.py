"""The API's schema: the distributors' part unsigned, the whole only to admins, and no page
that loads scripts from elsewhere."""

from __future__ import annotations

import httpx

from showdist.client import AsyncSignedClient
from tests.support.world import World


async def test_the_schema_is_served_without_the_admin_api(
    world: World, admin_client: AsyncSignedClient
) -> None:
    async with httpx.AsyncClient(base_url=world.base_url, trust_env=False) as anyone:
        public = await anyone.get("/openapi.json")
        assert public.status_code == 200
        paths = public.json()["paths"]
        assert "/v1/orders" in paths
        assert not [p for p in paths if p.startswith("/admin")]
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert (await anyone.get(page)).status_code == 404
        unsigned = await anyone.get("/admin/v1/openapi.json")
        assert unsigned.status_code == 401
    whole = await admin_client.request("GET", "/admin/v1/openapi.json")
    assert whole.status_code == 200
    assert "/admin/v1/suppliers/{supplier_id}" in whole.json()["paths"]
