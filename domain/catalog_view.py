"""What of the catalog a distributor sees, and the order of an incremental sync.

A show is visible to a distributor at time t when a grant live at t covers it (a session grant
makes its show visible with that session only). A show's *effective* update time for that
distributor is the later of the show's own `updated_at` and the last moment (up to now) at
which a grant covering it started or stopped counting. An incremental sync walks shows in
(effective time, id) order: a show that does not change during the walk keeps its place, so
a cursor neither skips nor repeats it; a show that changes moves to the end, where the walk
meets it again with its new state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.grants import CatalogItem, Grant, show_matches

WITHDRAWN = "withdrawn"  # the show still exists, but this distributor's grant to it ended


@dataclass(frozen=True, slots=True)
class ShowState:
    show_id: str
    status: str  # "online" | "offline" | "withdrawn"
    effective_at: datetime
    visible: bool


def visible_at(grants: list[Grant], item: CatalogItem, t: datetime) -> bool:
    return any(g.live_at(t) and show_matches(g, item) for g in grants)


def show_state(
    grants: list[Grant],
    item: CatalogItem,
    *,
    show_status: str,
    show_updated_at: datetime,
    now: datetime,
) -> ShowState:
    covering = [g for g in grants if show_matches(g, item)]
    changes = [t for g in covering for t in g.changes() if t <= now]
    effective = max([show_updated_at, *changes])
    visible = visible_at(covering, item, now)
    status = show_status if visible else WITHDRAWN
    return ShowState(item.show_id, status, effective, visible)


def in_delta(
    grants: list[Grant], item: CatalogItem, state: ShowState, since: datetime, now: datetime
) -> bool:
    """Whether a show belongs in the changes since `since`: it changed, and the distributor
    saw it at some point from `since` to now (so a mirror may hold it)."""
    if state.effective_at < since:
        return False
    if state.visible:
        return True
    covering = [g for g in grants if show_matches(g, item)]
    # Visibility only changes at a grant's change points, so checking `since` and each
    # change point in the window finds every stretch in which the show was visible.
    moments = [since, *(t for g in covering for t in g.changes() if since <= t <= now)]
    return any(visible_at(covering, item, t) for t in moments)
