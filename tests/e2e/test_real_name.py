"""Real-name tickets (实名制) over the signed API: a real-name session needs one checked
attendee per ticket, one document holds one ticket of the session across every distributor
(the second is refused before the supplier hears of it), a cancelled order frees its
documents, and documents are shown masked everywhere while the supplier receives them whole."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import ray
from sqlalchemy.engine import make_url

from domain.identity import id_card_check_char
from domain.ids import order_id_for
from showdist.client import AsyncSignedClient, Credentials
from tests.support.waiting import eventually
from tests.support.world import World


def id_card(seq: int, born: str = "19900307") -> str:
    first17 = f"110105{born}{seq:03d}"
    return first17 + id_card_check_char(first17)


def rn_body(world: World, *attendees: dict[str, str], **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "session_id": world.extra["real_name_session_id"],
        "tier_id": world.extra["real_name_tier_id"],
        "quantity": len(attendees) or 1,
        "attendees": list(attendees),
    }
    return world.order_body(f"RN-{uuid.uuid4().hex[:10]}", **(fields | overrides))


def person(seq: int, name: str = "张三") -> dict[str, str]:
    return {"name": name, "id_type": "ID_CARD", "id_number": id_card(seq)}


def masked(number: str) -> str:
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


async def test_the_catalog_says_which_sessions_are_real_name(
    world: World, client_a: AsyncSignedClient
) -> None:
    shows = (await client_a.request("GET", "/v1/shows")).json()["items"]
    rn_show = next(s for s in shows if s["title"] == "实名制演唱会")
    detail = (await client_a.request("GET", f"/v1/shows/{rn_show['id']}")).json()
    sessions = {s["id"]: s for s in detail["sessions"]}
    rn = sessions[world.extra["real_name_session_id"]]
    assert (rn["real_name_required"], rn["tickets_per_id"]) == (True, 1)
    plain = (await client_a.request("GET", f"/v1/shows/{world.show_id}")).json()
    assert all(s["real_name_required"] is False for s in plain["sessions"])


async def test_attendees_are_checked_and_refused_by_field_and_index(
    world: World, client_a: AsyncSignedClient
) -> None:
    async def refused(body: dict[str, Any]) -> str:
        r = await client_a.request("POST", "/v1/orders", body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_request"
        return str(r.json()["error"]["message"])

    missing = rn_body(world)
    missing.pop("attendees")
    assert "attendees" in await refused(missing)
    assert "attendees" in await refused(rn_body(world, person(1), quantity=2))
    bad = person(2)
    bad["id_number"] = bad["id_number"][:-1] + ("0" if bad["id_number"][-1] != "0" else "1")
    message = await refused(rn_body(world, person(3), bad))
    assert "attendees[1].id_number" in message
    assert bad["id_number"] not in message  # the reason never repeats the number
    assert "attendees[0].name" in await refused(rn_body(world, {**person(4), "name": "张"}))
    twice = await refused(rn_body(world, person(5), person(5, name="李四")))
    assert "attendees[1]" in twice
    assert "same document" in twice
    passport = {"name": "Li Lei", "id_type": "PASSPORT", "id_number": "E1"}
    assert "attendees[0].id_number" in await refused(rn_body(world, passport))
    unknown = {"name": "Li Lei", "id_type": "DRIVING_LICENCE", "id_number": "E12345678"}
    assert "attendees[0].id_type" in await refused(rn_body(world, unknown))
    # A session that is not real-name takes no attendees (a misplaced field is not dropped).
    plain = world.order_body(f"P-{uuid.uuid4().hex[:8]}", quantity=1, attendees=[person(6)])
    assert "attendees" in await refused(plain)


async def test_one_document_one_ticket_across_distributors_then_freed_by_a_cancel(
    world: World,
    client_a: AsyncSignedClient,
    client_b: AsyncSignedClient,
    admin_client: AsyncSignedClient,
    sandbox_admin: Any,
) -> None:
    who = person(101, name="王五")
    first = await client_a.request("POST", "/v1/orders", rn_body(world, who))
    assert (first.status_code, first.json()["status"]) == (201, "LOCKED"), first.text
    order = first.json()
    assert order["attendees"] == [
        {"name": "王五", "id_type": "ID_CARD", "id_number": masked(who["id_number"])}
    ]
    assert who["id_number"] not in first.text

    other = rn_body(world, person(200), {**who, "id_number": who["id_number"].lower()})
    over = await client_b.request("POST", "/v1/orders", other)
    assert over.status_code == 409, over.text
    assert over.json()["error"]["code"] == "attendee_limit"
    assert "attendees[1]" in over.json()["error"]["message"]
    calls = sandbox_admin.order_calls()
    refused_id = next((oid for oid in calls if oid.endswith(other["distributor_order_id"])), None)
    assert refused_id is None  # nothing was locked at the supplier for it
    listed = (await client_b.request("GET", "/v1/orders")).json()["items"]
    assert other["distributor_order_id"] not in {o["distributor_order_id"] for o in listed}

    # The first issues: its tickets carry their attendee, masked in our replies.
    issued = await client_a.request("POST", f"/v1/orders/{order['id']}/issue")
    assert (issued.status_code, issued.json()["status"]) == (200, "FIXED"), issued.text
    (ticket,) = issued.json()["tickets"]
    assert ticket["attendee"]["id_number"] == masked(who["id_number"])
    admin_view = await admin_client.request("GET", f"/admin/v1/orders/{order['id']}")
    assert admin_view.status_code == 200
    assert who["id_number"] not in admin_view.text
    assert masked(who["id_number"]) in admin_view.text

    # A document is freed when its order lets the seats go: lock, cancel, buy again.
    second_who = person(301, name="赵六")
    held = await client_b.request("POST", "/v1/orders", rn_body(world, second_who))
    assert held.status_code == 201, held.text
    again = rn_body(world, second_who)
    assert (await client_a.request("POST", "/v1/orders", again)).status_code == 409
    cancel = await client_b.request("POST", f"/v1/orders/{held.json()['id']}/cancel")
    assert cancel.status_code == 200, cancel.text
    anew = {**again, "distributor_order_id": again["distributor_order_id"] + "b"}
    bought = await client_a.request("POST", "/v1/orders", anew)
    assert (bought.status_code, bought.json()["status"]) == (201, "LOCKED"), bought.text


async def test_the_supplier_receives_the_documents_whole(
    world: World, client_a: AsyncSignedClient, sandbox: Any
) -> None:
    who = person(401, name="孙七")
    r = await client_a.request("POST", "/v1/orders", rn_body(world, who))
    assert r.status_code == 201, r.text
    order_id = r.json()["id"]
    assert (await client_a.request("POST", f"/v1/orders/{order_id}/issue")).status_code == 200
    async with httpx.AsyncClient(base_url=sandbox.url, trust_env=False) as box_office:
        issued = (await box_office.get(f"/issues/{order_id}")).json()
    assert issued["tickets"][0]["attendee"] == who


# Attendees of the tests below: names used nowhere else (a buyer's name is not an attendee's).
RACE_NAME, EXPIRY_NAME, REFUND_NAME = "实名甲", "实名乙", "实名丙"


async def test_fifty_distributors_racing_for_one_document_get_one_ticket(
    world: World, admin_client: AsyncSignedClient, sandbox_admin: Any
) -> None:
    async def distributor(i: int) -> tuple[str, AsyncSignedClient]:
        d = (
            await admin_client.request("POST", "/admin/v1/distributors", {"name": f"rn-{i}"})
        ).json()["id"]
        key = (
            await admin_client.request("POST", f"/admin/v1/distributors/{d}/keys", {"type": "hmac"})
        ).json()
        grant = await admin_client.request(
            "POST", f"/admin/v1/distributors/{d}/grants", {"scope": "all"}
        )
        assert grant.status_code == 201, grant.text
        return d, AsyncSignedClient(world.base_url, Credentials(key["key_id"], key["secret"]))

    parties = await asyncio.gather(*(distributor(i) for i in range(50)))
    who = person(601, name=RACE_NAME)
    bodies = [rn_body(world, who) for _ in parties]
    try:
        answers = await asyncio.gather(
            *(c.request("POST", "/v1/orders", b) for (_, c), b in zip(parties, bodies, strict=True))
        )
        codes = sorted(
            (r.status_code, r.json().get("status") or r.json()["error"]["code"]) for r in answers
        )
        assert codes == [(201, "LOCKED")] + [(409, "attendee_limit")] * 49, codes
        calls = sandbox_admin.order_calls()
        ids = [
            order_id_for(d, b["distributor_order_id"])
            for (d, _), b in zip(parties, bodies, strict=True)
        ]
        assert sum(calls.get(i, {}).get("lock", 0) for i in ids) == 1  # one supplier lock
        # The same document on another session of the show is another ticket.
        other = rn_body(
            world,
            who,
            session_id=world.extra["real_name_session_2_id"],
            tier_id=world.extra["real_name_tier_2_id"],
        )
        r = await parties[1][1].request("POST", "/v1/orders", other)
        assert (r.status_code, r.json()["status"]) == (201, "LOCKED"), r.text
    finally:
        await asyncio.gather(*(c.aclose() for _, c in parties))


async def test_lock_expiry_and_refund_each_free_the_document(
    world: World, client_a: AsyncSignedClient, client_b: AsyncSignedClient
) -> None:
    # Lock expiry: the platform's sweep cancels the order and frees its document.
    expiring = person(602, name=EXPIRY_NAME)
    short = await client_a.request("POST", "/v1/orders", rn_body(world, expiring, lock_seconds=1))
    assert short.status_code == 201, short.text
    await eventually(
        lambda: client_a.request("GET", f"/v1/orders/{short.json()['id']}"),
        lambda r: r.json()["status"] == "CANCELED",
        timeout=20,
    )
    again = await client_b.request("POST", "/v1/orders", rn_body(world, expiring))
    assert (again.status_code, again.json()["status"]) == (201, "LOCKED"), again.text
    # Refund: a refunded order frees its document too.
    refunded = person(603, name=REFUND_NAME)
    r = await client_a.request("POST", "/v1/orders", rn_body(world, refunded))
    oid = r.json()["id"]
    assert (await client_a.request("POST", f"/v1/orders/{oid}/issue")).status_code == 200
    refund = await client_a.request("POST", f"/v1/orders/{oid}/refund", {"reason": "ill"})
    assert refund.status_code in (200, 202), refund.text
    await eventually(
        lambda: client_a.request("GET", f"/v1/orders/{oid}"),
        lambda resp: resp.json()["status"] == "REFUNDED",
        timeout=20,
    )
    taken = await client_b.request("POST", "/v1/orders", rn_body(world, refunded))
    assert (taken.status_code, taken.json()["status"]) == (201, "LOCKED"), taken.text


async def test_the_database_and_the_logs_hold_no_document_and_no_attendee_name(
    world: World, client_a: AsyncSignedClient, platform: Any, postgres: Any
) -> None:
    """Run after the tests above (same module): every document and attendee name they used,
    looked for in a dump of the platform's database and in the platform's logs."""
    secret = person(604, name="实名丁")
    r = await client_a.request("POST", "/v1/orders", rn_body(world, secret))
    assert r.status_code == 201, r.text
    assert (await client_a.request("POST", f"/v1/orders/{r.json()['id']}/issue")).status_code == 200
    numbers = [id_card(n) for n in (101, 301, 401, 601, 602, 603, 604)]
    names = ["王五", "赵六", "孙七", RACE_NAME, EXPIRY_NAME, REFUND_NAME, "实名丁"]
    database = make_url(platform.settings.resolved_database_url()).database
    dump = await asyncio.to_thread(postgres.dump, database)
    assert "document_claims" in dump  # (the dump is the platform's, with its claims)
    logs = await asyncio.to_thread(_platform_logs)
    for text in (dump, logs):
        assert not [n for n in numbers if n in text]
        assert not [n for n in names if n in text]


def _platform_logs() -> str:
    """Every log file of this Ray session (the platform's actors and API replicas)."""
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())  # type: ignore[attr-defined]
    return "".join(p.read_text(errors="replace") for p in logs.glob("*") if p.is_file())
