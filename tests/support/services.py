"""Throw-away PostgreSQL and Redis servers for the test suite.

Both servers bind to 127.0.0.1 on a free port, keep all their state in a private
temporary directory and are stopped by an ``atexit`` hook should a test session
forget to do so.

PostgreSQL refuses to run as root, so when the tests run as root every PostgreSQL
binary is started as the ``postgres`` user through ``runuser``; otherwise the binaries
run directly as the current user.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["PostgresServer", "RedisServer", "ServiceError", "free_port"]

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
PG_BIN_ENV = "SHOWDIST_PG_BIN"
REDIS_SERVER_ENV = "SHOWDIST_REDIS_SERVER"
PG_USER = "postgres"
DEFAULT_DATABASE = "showdist"
HOST = "127.0.0.1"

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PORT_IN_USE = ("could not bind", "address already in use", "could not create any tcp/ip")


class ServiceError(RuntimeError):
    """A test service could not be started or driven."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin_dir() -> Path:
    override = os.environ.get(PG_BIN_ENV)
    if override:
        return Path(override)
    default = Path(DEFAULT_PG_BIN)
    if (default / "pg_ctl").exists():
        return default
    versions = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")]
    versions.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    if versions:
        return versions[-1]
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    return default


class PostgresServer:
    """A private PostgreSQL cluster with a ``showdist`` database, trust auth, no fsync."""

    def __init__(self, root: Path, port: int, bin_dir: Path) -> None:
        self._root = root
        self._port = port
        self._bin_dir = bin_dir
        self._running = False
        self.startup_seconds = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def start(cls, *, timeout: float = 60.0) -> PostgresServer:
        """Create a cluster in a fresh temp dir, start it and create the ``showdist`` db."""
        began = time.monotonic()
        bin_dir = _pg_bin_dir()
        if not (bin_dir / "pg_ctl").exists():
            raise ServiceError(f"pg_ctl not found in {bin_dir} (set {PG_BIN_ENV})")
        root = Path(tempfile.mkdtemp(prefix="showdist-pg-", dir="/tmp"))
        server = cls(root, free_port(), bin_dir)
        try:
            if os.geteuid() == 0:
                shutil.chown(root, user=PG_USER, group=None)
            root.chmod(0o700)
            server._initdb()
            server._start_with_retries(timeout)
            atexit.register(server.stop)
            server._create_database(DEFAULT_DATABASE)
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - began
        return server

    def stop(self) -> None:
        """Stop the server immediately and delete its directory. Safe to call twice."""
        atexit.unregister(self.stop)
        self._running = False
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run(
                    [self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate"],
                    check=False,
                    timeout=30,
                )
        _remove_tree(self._root)

    def postmaster_pid(self) -> int:
        """The server's main process (its first line of postmaster.pid)."""
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def root(self) -> Path:
        """The temp dir holding data, socket and log; removed by :meth:`stop`."""
        return self._root

    @property
    def data_dir(self) -> Path:
        return self._root / "data"

    @property
    def log_file(self) -> Path:
        return self._root / "postgres.log"

    @property
    def running(self) -> bool:
        return self._running

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the ``showdist`` database."""
        return self.url_for(DEFAULT_DATABASE)

    @property
    def dsn(self) -> str:
        """libpq / asyncpg DSN of the ``showdist`` database."""
        return self.dsn_for(DEFAULT_DATABASE)

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{PG_USER}@{HOST}:{self._port}/{database}"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{PG_USER}@{HOST}:{self._port}/{database}"

    # -- databases -----------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its SQLAlchemy async URL (see :attr:`url`)."""
        self._create_database(name)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` (closing any connections still open to it)."""
        self._check_name(name)
        self._run(
            [
                self._bin("dropdb"),
                *self._client_args(),
                "--if-exists",
                "--force",
                name,
            ],
            timeout=60,
        )

    def dump(self, name: str) -> str:
        """The database's data, as `pg_dump --data-only` writes it (what a backup holds)."""
        self._check_name(name)
        return self._run(
            [self._bin("pg_dump"), *self._client_args(), "--data-only", name], timeout=120
        ).stdout

    # -- internals -----------------------------------------------------------------------

    def _bin(self, name: str) -> str:
        return str(self._bin_dir / name)

    def _client_args(self) -> list[str]:
        return ["-h", HOST, "-p", str(self._port), "-U", PG_USER]

    @staticmethod
    def _check_name(name: str) -> None:
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")

    def _run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", PG_USER, "--", *command]
        # Output goes to a file rather than a pipe: ``pg_ctl start`` leaves a postmaster
        # behind that must not hold our end of a pipe open.
        with tempfile.TemporaryFile(mode="w+") as output:
            completed = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self._root,
                timeout=timeout,
                check=False,
                text=True,
            )
            output.seek(0)
            text = output.read()
        result = subprocess.CompletedProcess(command, completed.returncode, text, "")
        if check and completed.returncode != 0:
            raise ServiceError(
                f"{' '.join(command)} failed with exit code {completed.returncode}:\n{text}"
            )
        return result

    def _initdb(self) -> None:
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                PG_USER,
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            timeout=120,
        )

    def _server_options(self) -> str:
        return " ".join(
            [
                f"-p {self._port}",
                f"-k {self._root}",
                f"-c listen_addresses={HOST}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
            ]
        )

    def _start_with_retries(self, timeout: float, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            result = self._run(
                [
                    self._bin("pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    self._server_options(),
                ],
                check=False,
                timeout=timeout + 30,
            )
            # Mark running before waiting so that a failure below still stops it.
            self._running = result.returncode == 0
            if self._running:
                self._wait_ready(timeout)
                return
            log = _tail(self.log_file)
            if attempt < attempts and any(hint in log.lower() for hint in _PORT_IN_USE):
                self._port = free_port()
                continue
            raise ServiceError(
                f"PostgreSQL did not start (exit {result.returncode}):\n{result.stdout}\n{log}"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = self._run(
                [self._bin("pg_isready"), "-q", *self._client_args(), "-d", "postgres"],
                check=False,
                timeout=30,
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"PostgreSQL on port {self._port} not ready after {timeout}s:\n"
                    + _tail(self.log_file)
                )
            time.sleep(0.05)

    def _create_database(self, name: str) -> None:
        self._check_name(name)
        self._run([self._bin("createdb"), *self._client_args(), name], timeout=60)


# --------------------------------------------------------------------------------- Redis


def _redis_server_binary() -> str:
    override = os.environ.get(REDIS_SERVER_ENV)
    if override:
        return override
    found = shutil.which("redis-server")
    if not found:
        raise ServiceError(
            "redis-server not found; install it with `apt-get install -y redis-server` "
            f"or set {REDIS_SERVER_ENV}"
        )
    return found


def _redis_ping(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private, non-persistent ``redis-server`` child process."""

    def __init__(self, root: Path, port: int, binary: str) -> None:
        self._root = root
        self._port = port
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def start(cls, *, timeout: float = 30.0) -> RedisServer:
        """Launch redis-server on a free port and wait until it answers PING."""
        began = time.monotonic()
        binary = _redis_server_binary()
        root = Path(tempfile.mkdtemp(prefix="showdist-redis-", dir="/tmp"))
        server = cls(root, free_port(), binary)
        atexit.register(server.stop)
        try:
            for attempt in range(1, 4):
                if server._launch(timeout):
                    break
                if attempt == 3:
                    raise ServiceError(
                        f"redis-server did not start on port {server._port}:\n"
                        + _tail(server.log_file)
                    )
                server._port = free_port()  # most likely lost a race for the port
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - began
        return server

    def stop(self) -> None:
        """Stop the process and delete the temp dir. Safe to call twice."""
        atexit.unregister(self.stop)
        self._terminate()
        _remove_tree(self._root)

    def restart(self, *, timeout: float = 30.0) -> None:
        """Stop the server and start it again on the same port (all data is lost)."""
        self._terminate()
        if not self._launch(timeout):
            raise ServiceError(
                f"redis-server did not restart on port {self._port}:\n" + _tail(self.log_file)
            )

    @contextlib.contextmanager
    def down(self, *, timeout: float = 30.0) -> Iterator[None]:
        """Keep the server stopped for the duration of the block, then start it again."""
        self._terminate()
        try:
            yield
        finally:
            if not self._launch(timeout):
                raise ServiceError(
                    f"redis-server did not come back on port {self._port}:\n" + _tail(self.log_file)
                )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self._port}/0"

    @property
    def root(self) -> Path:
        return self._root

    @property
    def log_file(self) -> Path:
        return self._root / "redis.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    # -- internals -----------------------------------------------------------------------

    def _launch(self, timeout: float) -> bool:
        """Start redis-server; True once it answers PING, False if it exited early."""
        command = [
            self._binary,
            "--port",
            str(self._port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self._root),
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._root,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if _redis_ping(self._port):
                return True
            time.sleep(0.02)
        self._terminate()
        raise ServiceError(
            f"redis-server on port {self._port} not answering after {timeout}s:\n"
            + _tail(self.log_file)
        )

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
