"""Pull a supplier's catalog through its gateway and store it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from persistence.catalog import CatalogRepository
from suppliers.gateway import CallResult, Catalog, Outcome


class CatalogSource(Protocol):
    async def catalog(self) -> CallResult[Catalog]: ...


class CatalogSyncFailed(Exception):
    pass


async def sync_catalog(
    supplier_id: str, source: CatalogSource, repo: CatalogRepository, now: datetime
) -> int:
    """Returns the number of rows that changed."""
    result = await source.catalog()
    if result.outcome is not Outcome.DONE or result.value is None:
        raise CatalogSyncFailed(f"{supplier_id}: {result.error} {result.message}".strip())
    return await repo.apply_catalog(supplier_id, result.value, now)
