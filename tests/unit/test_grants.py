"""Grants: which part of the catalog a distributor may see and sell, and during which window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.grants import CatalogItem, Grant, GrantScope, any_grant_covers, grant_covers

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)

# Every field holds a value no other field holds, so a grant checked against the wrong field
# cannot match by accident.
ITEM = CatalogItem(
    supplier_id="sup_a",
    city="shanghai",
    category="concert",
    show_id="show_1",
    session_id="sess_1",
)

# What each scope looks at on the item.
FIELD_OF_SCOPE: dict[GrantScope, str] = {
    GrantScope.SUPPLIER: "supplier_id",
    GrantScope.CITY: "city",
    GrantScope.CATEGORY: "category",
    GrantScope.SHOW: "show_id",
    GrantScope.SESSION: "session_id",
}


def _grant(scope: GrantScope, value: str | None, **window: datetime | None) -> Grant:
    return Grant(id="gr_1", scope=scope, value=value, **window)


def test_every_scope_has_a_case_here() -> None:
    assert set(GrantScope) == set(FIELD_OF_SCOPE) | {GrantScope.ALL}


def test_all_covers_any_item() -> None:
    assert grant_covers(_grant(GrantScope.ALL, None), ITEM, NOW)
    other = CatalogItem("sup_z", "beijing", "opera", "show_9", None)
    assert grant_covers(_grant(GrantScope.ALL, None), other, NOW)


@pytest.mark.parametrize("scope", sorted(FIELD_OF_SCOPE))
def test_scope_covers_its_own_value(scope: GrantScope) -> None:
    value = getattr(ITEM, FIELD_OF_SCOPE[scope])
    assert grant_covers(_grant(scope, value), ITEM, NOW)


@pytest.mark.parametrize("scope", sorted(FIELD_OF_SCOPE))
def test_scope_does_not_cover_another_value(scope: GrantScope) -> None:
    assert not grant_covers(_grant(scope, "something_else"), ITEM, NOW)
    assert not grant_covers(_grant(scope, None), ITEM, NOW)


@pytest.mark.parametrize("scope", sorted(FIELD_OF_SCOPE))
def test_scope_looks_only_at_its_own_field(scope: GrantScope) -> None:
    # A city grant naming the item's supplier id must not cover it, and so on.
    for other_field in set(FIELD_OF_SCOPE.values()) - {FIELD_OF_SCOPE[scope]}:
        value = getattr(ITEM, other_field)
        assert not grant_covers(_grant(scope, value), ITEM, NOW), (scope, other_field)


def test_session_grant_does_not_cover_an_item_without_a_session() -> None:
    show_level = CatalogItem("sup_a", "shanghai", "concert", "show_1", session_id=None)
    assert not grant_covers(_grant(GrantScope.SESSION, "sess_1"), show_level, NOW)
    assert not grant_covers(_grant(GrantScope.SESSION, None), show_level, NOW)
    # The show grant still covers it.
    assert grant_covers(_grant(GrantScope.SHOW, "show_1"), show_level, NOW)


VALID_FROM = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
VALID_UNTIL = datetime(2025, 4, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "live"),
    [
        (VALID_FROM - TICK, False),
        (VALID_FROM, True),
        (VALID_FROM + TICK, True),
        (VALID_UNTIL - TICK, True),
        (VALID_UNTIL, False),
        (VALID_UNTIL + TICK, False),
    ],
    ids=["before-from", "at-from", "after-from", "before-until", "at-until", "after-until"],
)
def test_window_is_half_open(now: datetime, live: bool) -> None:
    grant = _grant(GrantScope.ALL, None, valid_from=VALID_FROM, valid_until=VALID_UNTIL)
    assert grant.live_at(now) is live
    assert grant_covers(grant, ITEM, now) is live
    scoped = _grant(GrantScope.CITY, "shanghai", valid_from=VALID_FROM, valid_until=VALID_UNTIL)
    assert grant_covers(scoped, ITEM, now) is live


def test_open_ended_windows() -> None:
    far_past = datetime(1990, 1, 1, tzinfo=UTC)
    far_future = datetime(2200, 1, 1, tzinfo=UTC)
    no_start = _grant(GrantScope.ALL, None, valid_until=VALID_UNTIL)
    assert no_start.live_at(far_past)
    assert not no_start.live_at(VALID_UNTIL)
    no_end = _grant(GrantScope.ALL, None, valid_from=VALID_FROM)
    assert not no_end.live_at(VALID_FROM - TICK)
    assert no_end.live_at(far_future)
    forever = _grant(GrantScope.ALL, None)
    assert forever.live_at(far_past)
    assert forever.live_at(far_future)


def test_empty_window_is_never_live() -> None:
    grant = _grant(GrantScope.ALL, None, valid_from=VALID_FROM, valid_until=VALID_FROM)
    assert not grant.live_at(VALID_FROM - TICK)
    assert not grant.live_at(VALID_FROM)
    assert not grant.live_at(VALID_FROM + TICK)


def test_any_grant_covers() -> None:
    expired = _grant(GrantScope.ALL, None, valid_until=NOW)
    other_city = _grant(GrantScope.CITY, "beijing")
    not_yet = _grant(GrantScope.SHOW, "show_1", valid_from=NOW + TICK)
    right_show = _grant(GrantScope.SHOW, "show_1")

    assert not any_grant_covers([], ITEM, NOW)
    assert not any_grant_covers([expired, other_city, not_yet], ITEM, NOW)
    assert any_grant_covers([expired, other_city, not_yet, right_show], ITEM, NOW)
    assert any_grant_covers([right_show, expired], ITEM, NOW)
    # The not-yet grant starts covering one microsecond later.
    assert any_grant_covers([expired, other_city, not_yet], ITEM, NOW + TICK)
