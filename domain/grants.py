"""Grants: what part of the catalog a distributor may see and sell, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class GrantScope(StrEnum):
    ALL = "all"
    SUPPLIER = "supplier"
    CITY = "city"
    CATEGORY = "category"
    SHOW = "show"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Grant:
    id: str
    scope: GrantScope
    value: str | None
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def live_at(self, now: datetime) -> bool:
        """Half-open window [valid_from, valid_until)."""
        if self.valid_from is not None and now < self.valid_from:
            return False
        return self.valid_until is None or now < self.valid_until


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """Where a session sits in the catalog: everything a grant can name."""

    supplier_id: str
    city: str
    category: str
    show_id: str
    session_id: str | None = None


def grant_covers(grant: Grant, item: CatalogItem, now: datetime) -> bool:
    if not grant.live_at(now):
        return False
    match grant.scope:
        case GrantScope.ALL:
            return True
        case GrantScope.SUPPLIER:
            return grant.value == item.supplier_id
        case GrantScope.CITY:
            return grant.value == item.city
        case GrantScope.CATEGORY:
            return grant.value == item.category
        case GrantScope.SHOW:
            return grant.value == item.show_id
        case GrantScope.SESSION:
            return item.session_id is not None and grant.value == item.session_id


def any_grant_covers(grants: list[Grant], item: CatalogItem, now: datetime) -> bool:
    return any(grant_covers(g, item, now) for g in grants)
