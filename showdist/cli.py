"""The `showdist` command: run the platform, bootstrap keys, sign calls, read settlement.

Each command imports what it needs when it runs, so that `showdist call` or `showdist
settlement periods` starts in a fraction of a second instead of loading Ray and Serve."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from showdist.settings import Settings

if TYPE_CHECKING:
    from actors.settlement_actor import SettlementService
    from domain.settlement import PeriodSummary, PeriodView, Statement


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "port", None):
        overrides["http_port"] = args.port
    return Settings(**overrides)


def cmd_up(args: argparse.Namespace) -> int:
    from showdist.demo import seed_demo
    from showdist.platform import start_platform
    from suppliers.sandbox.process import SandboxProcess

    settings = _settings(args)
    sandbox = None
    if args.demo or args.sandbox:
        sandbox = SandboxProcess.start(port=args.sandbox_port, demo=args.demo)
        print(f"sandbox supplier on {sandbox.url}", file=sys.stderr)
    try:
        platform = start_platform(settings)
        print(f"showdist API on {platform.base_url}", file=sys.stderr)
        if args.demo and sandbox is not None:
            info = asyncio.run(seed_demo(platform.settings, sandbox.url))
            print(json.dumps(info, indent=2))
            print(
                f"demo key saved to {platform.settings.data_dir / 'demo-key.json'}; "
                "`showdist call` uses it",
                file=sys.stderr,
            )
        sys.stdout.flush()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        if sandbox is not None:
            sandbox.stop()
        import ray

        if ray.is_initialized():
            ray.shutdown()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from persistence.migrate import upgrade

    settings = _settings(args)
    settings.prepare_data_dir()
    upgrade(settings.resolved_database_url())
    print("schema is at the newest revision", file=sys.stderr)
    return 0


def cmd_admin_create_key(args: argparse.Namespace) -> int:
    from persistence.accounts import ADMIN, AccountRepository
    from persistence.db import make_engine
    from persistence.migrate import upgrade
    from persistence.secretbox import SecretBox

    settings = _settings(args)
    settings.prepare_data_dir()
    url = settings.resolved_database_url()
    upgrade(url)

    async def create() -> tuple[str, str]:
        engine = make_engine(url)
        try:
            repo = AccountRepository(engine, SecretBox(settings.resolved_master_key()))
            return await repo.create_hmac_key(
                owner_kind=ADMIN, distributor_id=None, now=datetime.now(UTC)
            )
        finally:
            await engine.dispose()

    key_id, secret = asyncio.run(create())
    print(json.dumps({"key_id": key_id, "secret": secret}))
    return 0


def _credentials(args: argparse.Namespace) -> tuple[str, str, str]:
    key_id = args.key_id or os.environ.get("SHOWDIST_KEY_ID")
    secret = args.secret or os.environ.get("SHOWDIST_KEY_SECRET")
    url = args.url or os.environ.get("SHOWDIST_URL")
    demo = _settings(args).data_dir / "demo-key.json"
    if (not key_id or not secret) and demo.exists():
        saved = json.loads(demo.read_text())
        key_id, secret = saved["key_id"], saved["secret"]
        url = url or saved.get("base_url")
    if not key_id or not secret:
        raise SystemExit(
            "no key: pass --key-id/--secret, set SHOWDIST_KEY_ID/SHOWDIST_KEY_SECRET, "
            "or run `showdist up --demo` first"
        )
    return key_id, secret, url or "http://127.0.0.1:8000"


def cmd_call(args: argparse.Namespace) -> int:
    from showdist.client import Credentials, SignedClient

    key_id, secret, url = _credentials(args)
    data: Any = None
    if args.data is not None:
        try:
            data = json.loads(args.data)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--data is not JSON: {exc}") from exc
    client = SignedClient(url, Credentials(key_id, secret=secret))
    try:
        resp = client.request(args.method, args.path, data)
    finally:
        client.close()
    print(f"HTTP {resp.status_code}", file=sys.stderr)
    try:
        print(json.dumps(resp.json(), indent=2, ensure_ascii=False))
    except ValueError:
        print(resp.text)
    return 0 if resp.status_code < 400 else 1


def _admin_call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    """One admin API call (admin key from --key-id/--secret or
    SHOWDIST_ADMIN_KEY_ID/SHOWDIST_ADMIN_SECRET); prints the answer."""
    from showdist.client import Credentials, SignedClient

    key_id = args.key_id or os.environ.get("SHOWDIST_ADMIN_KEY_ID")
    secret = args.secret or os.environ.get("SHOWDIST_ADMIN_SECRET")
    if not key_id or not secret:
        raise SystemExit("an admin key is needed: `showdist admin create-key` prints one")
    url = args.url or os.environ.get("SHOWDIST_URL") or "http://127.0.0.1:8000"
    client = SignedClient(url, Credentials(key_id, secret=secret))
    try:
        resp = client.request(method, path, body)
    finally:
        client.close()
    print(f"HTTP {resp.status_code}", file=sys.stderr)
    print(json.dumps(resp.json(), indent=2, ensure_ascii=False))
    return 0 if resp.status_code < 400 else 1


def cmd_supplier_scale(args: argparse.Namespace) -> int:
    """Change how many actors serve a supplier (1: in the shared pool), through the admin
    API."""
    path = f"/admin/v1/suppliers/{args.supplier_id}/replicas"
    return _admin_call(args, "PUT", path, {"replicas": args.replicas})


def cmd_hosts_scale(args: argparse.Namespace) -> int:
    """Change the number of order hosts while orders flow, through the admin API."""
    return _admin_call(args, "PUT", "/admin/v1/order-hosts", {"hosts": args.hosts})


def cmd_hosts_show(args: argparse.Namespace) -> int:
    """The order hosts and the partitions each owns, through the admin API."""
    return _admin_call(args, "GET", "/admin/v1/order-hosts")


def cmd_supplier_retire(args: argparse.Namespace) -> int:
    """Retire a supplier (nothing more is sold; its orders and history stay)."""
    return _admin_call(args, "POST", f"/admin/v1/suppliers/{args.supplier_id}/retire")


def cmd_sandbox(args: argparse.Namespace) -> int:
    from suppliers.sandbox.__main__ import main as sandbox_main

    argv = ["--host", "127.0.0.1", "--port", str(args.port)]
    if args.demo:
        argv.append("--demo")
    sandbox_main(argv)
    return 0


# -- settlement (analysts): straight from the database, no Ray ---------------------------


def _settlement_context(args: argparse.Namespace) -> tuple[str, Any]:
    from zoneinfo import ZoneInfo

    from persistence.migrate import upgrade

    settings = _settings(args)
    settings.prepare_data_dir()
    url = settings.resolved_database_url()
    upgrade(url)
    return url, ZoneInfo(settings.timezone)


def _period_arg(value: str) -> str:
    from domain.settlement import BadPeriod, parse_period

    try:
        return parse_period(value)
    except BadPeriod as exc:
        raise SystemExit(str(exc)) from exc


def _money(amount: int, currency: str) -> str:
    from domain.money import Money

    return f"{Money(amount, currency).format()} ({amount})"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        rest = [f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def format_snapshot(view: PeriodView) -> str:
    """A snapshot as readable tables: money as `CNY 380.00 (38000)`, minor units in brackets."""
    snap, checks = view.snapshot, view.snapshot.checks
    state = f"closed {view.closed_at.isoformat()}" if view.closed_at is not None else "open"
    out = [
        f"period {snap.period} ({state}), {snap.flows} flows",
        f"receivable >= settlement: holds={snap.holds}  to_date={checks.to_date}  "
        f"orders={checks.orders}  period_flows={checks.period}",
    ]
    if view.digest:
        out.append(f"statement digest {view.digest}")
    if checks.violating_orders:
        out.append("violating orders: " + ", ".join(checks.violating_orders))
    if snap.currencies:
        out += [
            "",
            _table(
                ["currency", "receivable net", "settlement net", "retained", "retained to date"],
                [
                    [
                        c.currency,
                        _money(c.receivable_net, c.currency),
                        _money(c.settlement_net, c.currency),
                        _money(c.retained, c.currency),
                        _money(c.retained_to_date, c.currency),
                    ]
                    for c in snap.currencies
                ],
            ),
        ]
    if snap.distributors:
        out += [
            "",
            _table(
                ["distributor", "receivable +", "receivable -", "net"],
                [
                    [
                        d.distributor_id,
                        _money(d.receivable_plus, d.currency),
                        _money(d.receivable_minus, d.currency),
                        _money(d.net, d.currency),
                    ]
                    for d in snap.distributors
                ],
            ),
        ]
    if snap.suppliers:
        out += [
            "",
            _table(
                ["supplier", "settlement +", "settlement -", "net"],
                [
                    [
                        s.supplier_id,
                        _money(s.settlement_plus, s.currency),
                        _money(s.settlement_minus, s.currency),
                        _money(s.net, s.currency),
                    ]
                    for s in snap.suppliers
                ],
            ),
        ]
    return "\n".join(out)


async def _settlement_service(url: str) -> SettlementService:
    from actors.settlement_actor import SettlementService
    from persistence.db import make_engine

    service = SettlementService(make_engine(url, pool_size=2))
    await service.rebuild()
    return service


def cmd_settlement_periods(args: argparse.Namespace) -> int:
    url, tz = _settlement_context(args)

    async def run() -> list[PeriodSummary]:
        service = await _settlement_service(url)
        try:
            return await service.periods(tz=tz)
        finally:
            await service.engine.dispose()

    lines = asyncio.run(run())
    if args.json:
        print(json.dumps([line.as_dict() for line in lines], indent=2, ensure_ascii=False))
        return 0
    rows = []
    for line in lines:
        head = [line.period, line.status, str(line.flows)]
        for c in line.currencies:
            money = [_money(v, c.currency) for v in (c.receivable_net, c.settlement_net)]
            money.append(_money(c.retained, c.currency))
            rows.append([*head, c.currency, *money, str(line.holds)])
        if not line.currencies:
            rows.append([*head, "-", "-", "-", "-", str(line.holds)])
    headers = ["period", "status", "flows", "cur", "receivable net", "settlement net"]
    print(_table([*headers, "retained", "holds"], rows) if rows else "no periods yet")
    return 0


def cmd_settlement_snapshot(args: argparse.Namespace) -> int:
    url, tz = _settlement_context(args)
    period = _period_arg(args.period)

    async def run() -> PeriodView:
        service = await _settlement_service(url)
        try:
            return await service.snapshot(period, tz=tz)
        finally:
            await service.engine.dispose()

    view = asyncio.run(run())
    if args.json:
        print(json.dumps(view.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_snapshot(view))
    return 0


def cmd_settlement_close(args: argparse.Namespace) -> int:
    from domain.settlement import PeriodNotOver
    from persistence.db import make_engine
    from persistence.settlement import close_period

    url, tz = _settlement_context(args)
    period = _period_arg(args.period)

    async def run() -> tuple[Statement, bool]:
        engine = make_engine(url, pool_size=2)
        try:
            return await close_period(engine, period, tz=tz, now=datetime.now(UTC))
        finally:
            await engine.dispose()

    try:
        statement, created = asyncio.run(run())
    except PeriodNotOver:
        print(f"period {period} is not over yet; it cannot be closed", file=sys.stderr)
        return 1
    word = "closed" if created else "was already closed"
    print(f"period {period} {word}; statement digest {statement.digest}", file=sys.stderr)
    print(format_snapshot(statement.view(tz)))
    return 0


def cmd_settlement_export(args: argparse.Namespace) -> int:
    import csv

    from domain.settlement import csv_lines
    from persistence.db import make_engine
    from persistence.settlement import flows_of_period

    url, tz = _settlement_context(args)
    period = _period_arg(args.period)

    async def run() -> list[dict[str, Any]]:
        engine = make_engine(url, pool_size=2)
        try:
            return await flows_of_period(engine, period)
        finally:
            await engine.dispose()

    rows = asyncio.run(run())
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows(csv_lines(rows, tz))
        print(f"{len(rows)} flows of {period} written to {args.out}", file=sys.stderr)
    else:
        csv.writer(sys.stdout, lineterminator="\n").writerows(csv_lines(rows, tz))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="showdist", description=__doc__)
    p.add_argument("--data-dir", help="data folder of the embedded default (default .showdist)")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the platform (Ray, order hosts, API on :8000)")
    up.add_argument(
        "--demo", action="store_true", help="start a sandbox supplier and seed demo data"
    )
    up.add_argument("--sandbox", action="store_true", help="start a sandbox supplier, no demo data")
    up.add_argument("--sandbox-port", type=int, default=8101)
    up.add_argument("--port", type=int, help="API port (default 8000)")
    up.set_defaults(func=cmd_up)

    mig = sub.add_parser("migrate", help="bring the database schema up to date")
    mig.set_defaults(func=cmd_migrate)

    adm = sub.add_parser("admin", help="operator commands")
    adm_sub = adm.add_subparsers(dest="admin_command", required=True)
    ck = adm_sub.add_parser("create-key", help="print a new admin key as JSON")
    ck.set_defaults(func=cmd_admin_create_key)

    call = sub.add_parser("call", help="sign and send one API request")
    call.add_argument("method")
    call.add_argument("path", help="path with query, e.g. /v1/orders/ord_x")
    call.add_argument("--data", help="JSON body")
    call.add_argument("--url", help="API base URL (default $SHOWDIST_URL or :8000)")
    call.add_argument("--key-id")
    call.add_argument("--secret")
    call.set_defaults(func=cmd_call)

    hosts = sub.add_parser("hosts", help="operate order hosts")
    hosts_sub = hosts.add_subparsers(dest="hosts_command", required=True)
    hscale = hosts_sub.add_parser("scale", help="set the number of order hosts")
    hscale.add_argument("hosts", type=int)
    hscale.set_defaults(func=cmd_hosts_scale)
    hshow = hosts_sub.add_parser("show", help="the order hosts and their partitions")
    hshow.set_defaults(func=cmd_hosts_show)
    for hosts_cmd in (hscale, hshow):
        hosts_cmd.add_argument("--url", help="API base URL (default $SHOWDIST_URL or :8000)")
        hosts_cmd.add_argument("--key-id", help="admin key id (default $SHOWDIST_ADMIN_KEY_ID)")
        hosts_cmd.add_argument("--secret", help="admin secret (default $SHOWDIST_ADMIN_SECRET)")

    sup = sub.add_parser("supplier", help="operate suppliers")
    sup_sub = sup.add_subparsers(dest="supplier_command", required=True)
    scale = sup_sub.add_parser("scale", help="set the number of actors serving a supplier")
    scale.add_argument("supplier_id")
    scale.add_argument("replicas", type=int)
    scale.add_argument("--url", help="API base URL (default $SHOWDIST_URL or :8000)")
    scale.add_argument("--key-id", help="admin key id (default $SHOWDIST_ADMIN_KEY_ID)")
    scale.add_argument("--secret", help="admin secret (default $SHOWDIST_ADMIN_SECRET)")
    scale.set_defaults(func=cmd_supplier_scale)
    retire = sup_sub.add_parser("retire", help="retire a supplier: nothing of it is sold")
    retire.add_argument("supplier_id")
    retire.add_argument("--url", help="API base URL (default $SHOWDIST_URL or :8000)")
    retire.add_argument("--key-id", help="admin key id (default $SHOWDIST_ADMIN_KEY_ID)")
    retire.add_argument("--secret", help="admin secret (default $SHOWDIST_ADMIN_SECRET)")
    retire.set_defaults(func=cmd_supplier_retire)

    sb = sub.add_parser("sandbox", help="run the sandbox supplier in the foreground")
    sb.add_argument("--port", type=int, default=8101)
    sb.add_argument("--demo", action="store_true")
    sb.set_defaults(func=cmd_sandbox)

    st = sub.add_parser("settlement", help="receivables and settlement per period (analysts)")
    st_sub = st.add_subparsers(dest="settlement_command", required=True)
    sp = st_sub.add_parser("periods", help="every period with its totals")
    sp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sp.set_defaults(func=cmd_settlement_periods)
    ss = st_sub.add_parser("snapshot", help="one period: per distributor, per supplier, checks")
    ss.add_argument("period", help="calendar day in the platform time zone, YYYY-MM-DD")
    ss.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ss.set_defaults(func=cmd_settlement_snapshot)
    sc = st_sub.add_parser("close", help="freeze a period that is over into its statement")
    sc.add_argument("period")
    sc.set_defaults(func=cmd_settlement_close)
    se = st_sub.add_parser("export", help="the flows booked into a period, as CSV")
    se.add_argument("period")
    se.add_argument("--out", help="file to write (default: standard output)")
    se.set_defaults(func=cmd_settlement_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
