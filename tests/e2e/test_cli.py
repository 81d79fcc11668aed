"""The `showdist` command as a user runs it: bootstrap an admin key, sign calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.support.world import World


def showdist(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "showdist.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def test_admin_create_key_prints_a_key_as_json(tmp_path: Path) -> None:
    done = showdist("--data-dir", str(tmp_path / "data"), "admin", "create-key")
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)
    assert key["key_id"].startswith("ak_")
    assert key["secret"].startswith("sk_")
    # The secret is sealed at rest: the database file does not contain it.
    assert key["secret"].encode() not in (tmp_path / "data" / "showdist.db").read_bytes()
    assert (tmp_path / "data" / "master.key").stat().st_mode & 0o777 == 0o600


def test_call_places_and_issues_an_order(world: World) -> None:
    assert world.a.creds.secret is not None
    env = {
        "SHOWDIST_KEY_ID": world.a.creds.key_id,
        "SHOWDIST_KEY_SECRET": world.a.creds.secret,
        "SHOWDIST_URL": world.base_url,
    }
    body = json.dumps(world.order_body(f"CLI-{uuid.uuid4().hex[:8]}"))
    placed = showdist("call", "POST", "/v1/orders", "--data", body, env=env)
    assert placed.returncode == 0, placed.stderr
    assert "HTTP 201" in placed.stderr
    order = json.loads(placed.stdout)
    assert order["status"] == "LOCKED"
    issued = showdist("call", "POST", f"/v1/orders/{order['id']}/issue", env=env)
    assert issued.returncode == 0, issued.stderr
    fixed = json.loads(issued.stdout)
    assert fixed["status"] == "FIXED"
    assert len(fixed["tickets"]) == 2
    missing = showdist("call", "GET", "/v1/orders/ord_nope", env=env)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "not_found"


def test_hosts_show_and_scale_to_the_count_in_force(world: World) -> None:
    """`showdist hosts`: the run's two order hosts and their 256 partitions; scaling to the
    count in force moves nothing and stops nothing."""
    assert world.admin.secret is not None
    env = {
        "SHOWDIST_ADMIN_KEY_ID": world.admin.key_id,
        "SHOWDIST_ADMIN_SECRET": world.admin.secret,
        "SHOWDIST_URL": world.base_url,
    }
    shown = showdist("hosts", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert (view["hosts"], view["partitions"], view["settled"]) == (2, 256, True), view
    assert [(r["host"], r["partitions"], r["held"]) for r in view["assignment"]] == [
        (0, 128, 128),
        (1, 128, 128),
    ]
    scaled = showdist("hosts", "scale", "2", env=env)
    assert scaled.returncode == 0, scaled.stderr
    assert "HTTP 200" in scaled.stderr
    after = json.loads(scaled.stdout)
    assert (after["hosts"], after["stopped"], after["version"]) == (2, [], view["version"] + 1)
    assert [r["partitions"] for r in after["assignment"]] == [128, 128]
