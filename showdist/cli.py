"""The `showdist` command: run the platform, bootstrap keys, sign calls."""

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
from typing import Any

from showdist.settings import Settings


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
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    print("schema is at the newest revision", file=sys.stderr)
    return 0


def cmd_admin_create_key(args: argparse.Namespace) -> int:
    from persistence.accounts import ADMIN, AccountRepository
    from persistence.db import make_engine
    from persistence.migrate import upgrade
    from persistence.secretbox import SecretBox

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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


def cmd_sandbox(args: argparse.Namespace) -> int:
    from suppliers.sandbox.__main__ import main as sandbox_main

    argv = ["--host", "127.0.0.1", "--port", str(args.port)]
    if args.demo:
        argv.append("--demo")
    sandbox_main(argv)
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

    sb = sub.add_parser("sandbox", help="run the sandbox supplier in the foreground")
    sb.add_argument("--port", type=int, default=8101)
    sb.add_argument("--demo", action="store_true")
    sb.set_defaults(func=cmd_sandbox)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
