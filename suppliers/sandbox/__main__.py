"""`python -m suppliers.sandbox --host 127.0.0.1 --port N [--demo]`: run the sandbox supplier."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Sequence

import uvicorn

from suppliers.sandbox.server import create_app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m suppliers.sandbox", description="Run the sandbox supplier."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--demo", action="store_true", help="load the built-in demo catalog")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(demo=args.demo),
        host=args.host,
        port=args.port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        workers=1,
        access_log=False,
        log_level=args.log_level,
        backlog=4096,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
