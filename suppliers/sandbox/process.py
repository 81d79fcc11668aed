"""Run the sandbox supplier as its own process, and drive its admin API synchronously.

`SandboxProcess.start()` launches `python -m suppliers.sandbox` and waits for `/healthz`;
`SandboxAdmin` is a small blocking client for tests, benchmarks and the CLI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from suppliers.sandbox import demo

__all__ = ["SandboxAdmin", "SandboxProcess", "SandboxStartError", "free_port"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 15.0
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class SandboxStartError(RuntimeError):
    """The sandbox process did not come up."""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (the usual bind-to-0 trick; racy but good enough)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SandboxProcess:
    """A running sandbox supplier process. Use `start()`; stop it with `stop()` or `with`."""

    def __init__(self, popen: subprocess.Popen[bytes], port: int) -> None:
        self._popen = popen
        self._port = port

    @classmethod
    def start(cls, *, port: int | None = None, demo: bool = False) -> SandboxProcess:
        """Launch the server on 127.0.0.1 (a free port when `port` is None); wait for /healthz."""
        attempts = 1 if port is not None else 3
        last_error: SandboxStartError | None = None
        for _ in range(attempts):
            chosen = port if port is not None else free_port()
            process = cls(cls._launch(chosen, demo), chosen)
            try:
                process._wait_healthy(START_TIMEOUT_S)
            except SandboxStartError as exc:
                process.stop()
                last_error = exc  # most likely the free port was taken meanwhile: try another
                continue
            return process
        assert last_error is not None
        raise last_error

    @staticmethod
    def _launch(port: int, demo: bool) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PROJECT_ROOT, env.get("PYTHONPATH", "")) if p
        )
        command = [sys.executable, "-m", "suppliers.sandbox", "--host", HOST, "--port", str(port)]
        if demo:
            command.append("--demo")
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                code = self._popen.poll()
                if code is not None:
                    raise SandboxStartError(f"the sandbox exited with code {code} on start")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise SandboxStartError(f"the sandbox did not answer /healthz within {timeout_s} s")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int:
        return self._popen.pid

    def running(self) -> bool:
        return self._popen.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the process; kill it if it has not gone within `timeout_s`."""
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SandboxProcess(url={self.url!r}, pid={self.pid})"


class SandboxAdmin:
    """A blocking client for the sandbox's admin API. Failing calls raise `httpx.HTTPError`."""

    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s, trust_env=False)

    def set_faults(self, faults: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole fault configuration (`{}` clears it); returns it as applied."""
        return self._json("PUT", "/admin/faults", faults)

    def faults(self) -> dict[str, Any]:
        return self._json("GET", "/admin/faults")

    def counters(self) -> dict[str, int]:
        """Calls received per operation and effects performed (`issues_performed`, ...)."""
        return {name: int(n) for name, n in self._json("GET", "/admin/counters").items()}

    def inventory(self) -> dict[str, dict[str, int]]:
        """Per tier ref: `{"stock", "available", "locked", "sold"}`."""
        tiers = self._json("GET", "/admin/inventory")
        return {ref: {k: int(v) for k, v in tier.items()} for ref, tier in tiers.items()}

    def order_calls(self) -> dict[str, dict[str, int]]:
        """Calls received per order id and operation (lock, release, issue, refund)."""
        calls = self._json("GET", "/admin/order-calls")
        return {oid: {op: int(n) for op, n in ops.items()} for oid, ops in calls.items()}

    def reset(self) -> None:
        self._json("POST", "/admin/reset")

    def load_catalog(self, catalog: dict[str, Any]) -> None:
        self._json("POST", "/admin/catalog", catalog)

    def cancel_show(self, show_ref: str) -> dict[str, Any]:
        return self._json("POST", f"/admin/shows/{quote(show_ref, safe='')}/cancel")

    def set_delivery(self, order_id: str, status: str) -> dict[str, Any]:
        """Record an express delivery update (`"SHIPPED"` | `"DELIVERED"`) of an issued order;
        answers the event `{seq, order_id, status, at}` (the existing one for a repeat)."""
        path = f"/admin/orders/{quote(order_id, safe='')}/delivery"
        return self._json("POST", path, {"status": status})

    def supplier_refund(self, order_id: str) -> dict[str, Any]:
        """The supplier refunds one issued order on its own (as when it cancels a show, for
        one order); answers the refund feed's event `{seq, order_id, refunded_at}`."""
        path = f"/admin/orders/{quote(order_id, safe='')}/supplier-refund"
        return self._json("POST", path)

    def inject_refund_event(self, order_id: str) -> dict[str, Any]:
        """Append a refund event for any order id to the refund feed, books unchecked."""
        return self._json("POST", "/admin/feeds/supplier-refunds", {"order_id": order_id})

    def inject_delivery_event(self, order_id: str, status: str) -> dict[str, Any]:
        """Append a delivery event for any order id to the delivery feed, books unchecked."""
        body = {"order_id": order_id, "status": status}
        return self._json("POST", "/admin/feeds/delivery-updates", body)

    def catalog(self) -> dict[str, Any]:
        return self._json("GET", "/catalog")

    def healthy(self) -> bool:
        try:
            return self._client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    @staticmethod
    def demo_catalog() -> dict[str, Any]:
        """The built-in demo catalog, in the `load_catalog` shape (a fresh copy)."""
        return demo.demo_catalog()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._client.request(method, path, json=body)
        response.raise_for_status()
        answer = response.json()
        if not isinstance(answer, dict):
            raise TypeError(f"{method} {path}: expected a JSON object")
        return answer
