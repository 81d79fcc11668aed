"""`GET /admin/v1/distributors` page by page over real HTTP: one distributor a page, the
cursor followed to the end, every distributor once and in (created_at, id) order, including
distributors created at the very same instant (the id breaks the tie); a cursor the API did
not issue is 422 `invalid_request` (docs/api.md)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from persistence.db import make_engine
from persistence.tables import distributors
from showdist.client import AsyncSignedClient
from showdist.platform import RunningPlatform

PATH = "/admin/v1/distributors"


async def _walk(admin: AsyncSignedClient, limit: int) -> list[list[dict[str, Any]]]:
    """Every page, following `next_cursor` until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        target = f"{PATH}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = await admin.request("GET", target)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 10_000, "the cursor does not move on"


async def test_distributors_page_by_page_with_ties_on_created_at(
    admin_client: AsyncSignedClient, platform: RunningPlatform
) -> None:
    tag = uuid.uuid4().hex[:8]
    made: list[str] = []
    for i in range(3):
        r = await admin_client.request("POST", PATH, {"name": f"Paging {tag} {i}"})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    # Created in the same second, to the microsecond: only the id orders them.
    same = datetime.now(UTC).replace(microsecond=0)
    engine = make_engine(platform.settings.resolved_database_url(), pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(distributors).where(distributors.c.id.in_(made)).values(created_at=same)
            )
        async with engine.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(distributors))).scalar()
            order = [
                row[0]
                for row in (
                    await conn.execute(
                        select(distributors.c.id).order_by(
                            distributors.c.created_at, distributors.c.id
                        )
                    )
                ).all()
            ]
    finally:
        await engine.dispose()

    pages = await _walk(admin_client, 1)
    assert all(len(p) == 1 for p in pages[:-1]), [len(p) for p in pages]
    assert len(pages[-1]) <= 1
    ids = [d["id"] for p in pages for d in p]
    assert len(ids) == len(set(ids)) == total, (len(ids), len(set(ids)), total)
    assert ids == order
    tied = [i for i in ids if i in made]
    assert tied == sorted(made)
    first = ids.index(tied[0])
    assert ids[first : first + 3] == tied, "the three of the same instant follow each other"
    # Another page size walks the same list.
    assert [d["id"] for p in await _walk(admin_client, 2) for d in p] == ids


def _cursor(value: Any) -> str:
    raw = json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_a_cursor_the_api_did_not_issue_is_422(admin_client: AsyncSignedClient) -> None:
    for cursor in (
        "not-a-cursor",
        _cursor(["2026-01-01T00:00:00", "d_x"]),  # no offset
        _cursor(["yesterday", "d_x"]),
        _cursor(["2026-01-01T00:00:00+00:00", 7]),
        _cursor(["2026-01-01T00:00:00+00:00", "d" * 101]),
        _cursor({"at": "2026-01-01T00:00:00+00:00"}),
    ):
        r = await admin_client.request("GET", f"{PATH}?limit=1&cursor={cursor}")
        assert r.status_code == 422, (cursor, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid_request", (cursor, error)
        assert error["message"].startswith("cursor"), (cursor, error)
