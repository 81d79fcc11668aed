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
    created_at: datetime | None = None  # a grant counts from when it was made...
    revoked_at: datetime | None = None  # ...until an operator revoked it

    def live_at(self, now: datetime) -> bool:
        """Half-open windows: [valid_from, valid_until) and [created_at, revoked_at)."""
        if self.valid_from is not None and now < self.valid_from:
            return False
        if self.created_at is not None and now < self.created_at:
            return False
        if self.revoked_at is not None and now >= self.revoked_at:
            return False
        return self.valid_until is None or now < self.valid_until

    def changes(self) -> tuple[datetime, ...]:
        """The moments at which this grant starts or stops counting."""
        return tuple(
            t
            for t in (self.created_at, self.valid_from, self.valid_until, self.revoked_at)
            if t is not None
        )


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """Where a session sits in the catalog: everything a grant can name."""

    supplier_id: str
    city: str
    category: str
    show_id: str
    session_id: str | None = None
    session_ids: frozenset[str] = frozenset()  # for a show: the ids of its sessions


def grant_covers(grant: Grant, item: CatalogItem, now: datetime) -> bool:
    return grant.live_at(now) and matches(grant, item)


def matches(grant: Grant, item: CatalogItem) -> bool:
    """Whether the grant names this item, whatever its time window."""
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


def show_matches(grant: Grant, item: CatalogItem) -> bool:
    """A session grant makes its show visible (with only that session in it)."""
    if grant.scope is GrantScope.SESSION:
        return grant.value in item.session_ids
    return matches(grant, item)


def any_grant_covers(grants: list[Grant], item: CatalogItem, now: datetime) -> bool:
    return any(grant_covers(g, item, now) for g in grants)
