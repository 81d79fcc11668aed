"""A real multi-node Ray cluster on this one machine, for the tests that lose a node.

Every node is its own `ray start --block` process (the leader of a session of its own, so
the node's processes can be told from everything else on the machine), with its own
`--temp-dir` and explicit free ports for everything Ray would otherwise put on a fixed
port, so the cluster runs beside any other Ray session on the machine (the suite's own
`ray.init()` one included) and leaves it alone. This process never calls `ray.init`: the
cluster is watched through its dashboard's state API over HTTP, and drivers run as
subprocesses with `RayCluster.client_env()`.

What this harness found about Ray (2.60) on one machine:

- The workers a raylet starts each get a process group of their own (`setpgid`), but stay in
  the node's session: `os.killpg` on the node would miss them, so a node's processes are
  those of its session, plus (should one ever leave it) every process whose environment
  carries the node's marker (`NODE_MARKER_ENV`; the agents, which retitle themselves,
  overwrite their /proc environ, but the workers keep it).
- Ray allows a different `--temp-dir` per node, but puts AF_UNIX sockets under it
  (`<temp-dir>/session_<date>_<pid>/sockets/plasma_store`, at most 107 bytes): a pytest
  `tmp_path` is too long, so the temp dirs go under `workdir` only when they fit and under
  a short `/tmp/showdist-ray-*` otherwise; either way `stop` removes them.
- `--node-ip-address 127.0.0.1` is turned into the machine's address, so nodes register
  with that; the GCS listens on every interface, so `127.0.0.1:<port>` reaches it anyway.
- `ray start --head` turns token authentication on when `~/.ray/auth_token` exists and
  `RAY_AUTH_MODE` is unset, but `ray start --address` does not look at it (and a driver
  must present the cluster's token). So every node runs with `RAY_AUTH_MODE=token` and a
  fresh `RAY_AUTH_TOKEN` of this cluster's own, and so must every driver (`client_env`).
- A raylet gives its agents 15 s (hard-coded) to start, then dies, while its `ray start`
  waits on for 30 s more (ray-project/ray#65983); on two shared cores, with the head's
  dashboard starting beside them, the agents sometimes take longer. So the nodes start one
  at a time, each once the one before is alive, and a node whose logs say it will not come
  up is started again on fresh ports (a port lost to a race fails the same way).
- A `ray start` that gets SIGTERM first drains its node for up to 30 s; the nodes run with
  `RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0` so that `stop` is quick.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from showdist.platform import RAY_ENVIRONMENT

__all__ = [
    "FAST_HEALTH_CHECK",
    "NODE_MARKER_ENV",
    "RayCluster",
    "RayClusterError",
    "RayNode",
    "still_running",
]

HOST = "127.0.0.1"

# The GCS's health checks of the raylets (Ray's defaults: every 3 s, 10 s timeout, dead
# after 5 failures in a row: 15 s or more before a lost node is declared dead). A SIGKILLed
# raylet refuses each check at once, so with these it is declared dead about `period *
# threshold` (3 s) after it went, while a live one would have to miss six checks of two
# seconds each in a row (15 s hung: this machine is shared, and a loaded one) to be.
FAST_HEALTH_CHECK: Mapping[str, int] = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 2000,
    "health_check_failure_threshold": 6,
}

# Set in each node's environment (`<cluster id>:<node name>`); every process of the node
# inherits it, which is how one that left the node's session would still be found.
NODE_MARKER_ENV = "SHOWDIST_RAY_NODE"

OBJECT_STORE_BYTES = 200 * 1000 * 1000
START_TIMEOUT_S = 90.0
NODE_ATTEMPTS = 3
KILL_TIMEOUT_S = 15.0
STOP_GRACE_S = 10.0

# What every node runs with (`env` given to `start` wins): the platform's own
# (`showdist.platform.RAY_ENVIRONMENT`), and what the harness needs.
_NODE_ENVIRONMENT = {
    **RAY_ENVIRONMENT,
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
}
# Inherited variables that would point a node or a driver at another cluster.
_FOREIGN_RAY_VARIABLES = (
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
)
_NODE_PORT_FLAGS = (
    "node-manager-port",
    "object-manager-port",
    "metrics-export-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
)
_HEAD_PORT_FLAGS = ("port", "dashboard-port", "ray-client-server-port")
# The longest socket path Ray makes under a node's temp dir, past the dir itself:
# "/session_YYYY-MM-DD_HH-MM-SS_ffffff_<pid>/sockets/plasma_store".
_SOCKET_SUFFIX_LEN = len("/session_2026-12-02_05-48-13_862418_4194304/sockets/plasma_store")
_AF_UNIX_MAX = 107
# What a node's Ray logs (*.err) say when it will not come up although `ray start` waits on.
_STARTUP_FAILURE = re.compile(
    r".*(?:address already in use|failed to bind|check failed|timed out waiting for file).*", re.I
)


class RayClusterError(RuntimeError):
    """The cluster could not be started, watched or stopped."""


@dataclass
class RayNode:
    """One node: its `ray start --block` process (leader of the node's own session, so its
    pid is the node's session id), its Ray node id, the custom resource that only this node
    has (`head_node`, `worker_node_1`, ...: schedule onto the node with it), its temp dir,
    the `ray start` output and the ports it was given (by `ray start` flag)."""

    name: str
    resource: str
    is_head: bool
    process: subprocess.Popen[bytes]
    temp_dir: Path
    log_file: Path
    ports: dict[str, int]
    marker: str
    node_id: str = ""
    gone: bool = False

    @property
    def session_id(self) -> int:
        """The session every process of the node is in (see the module's docstring)."""
        return self.process.pid

    def pids(self) -> set[int]:
        """The node's live processes (`ray start`, raylet, agents, workers, ...)."""
        return set() if self.gone else _node_pids(self.session_id, self.marker)

    def startup_failure(self) -> str:
        """Why the node will not come up, if its `ray start` exited or its Ray logs say so
        (a raylet that cannot bind its port or times out on its agents dies, but `ray
        start` waits on for half a minute)."""
        if self.process.poll() is not None:
            return f"`ray start` exited with {self.process.returncode}"
        for logs in sorted(self.temp_dir.glob("session_*/logs"))[-1:]:
            for path in sorted(logs.glob("*.err")):
                with contextlib.suppress(OSError):
                    if path.stat().st_size and (found := _STARTUP_FAILURE.search(path.read_text())):
                        return f"{path.name}: {found.group(0).strip()[:300]}"
        return ""

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the `ray start` output and of the node's main Ray logs."""
        parts = [f"--- {self.log_file}\n{_tail(self.log_file, limit)}"]
        for logs in sorted(self.temp_dir.glob("session_*/logs"))[-1:]:
            for name in (
                "raylet.err",
                "raylet.out",
                "gcs_server.err",
                "dashboard.err",
                "dashboard_agent.log",
                "runtime_env_agent.err",
            ):
                if (logs / name).exists():
                    parts.append(f"--- {logs / name}\n{_tail(logs / name, limit)}")
        return "\n".join(parts)


class RayCluster:
    """A head and `worker_nodes` worker nodes on this machine; see the module's docstring.

    Use `address` (and `client_env()`) for drivers in subprocesses, `alive_node_ids` and
    `actors_by_node` to watch it, `kill_node` to lose a node, `stop` to end it all.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        env: Mapping[str, str],
        system_config: Mapping[str, object],
    ) -> None:
        self.workdir = workdir
        self.temp_root = _temp_root(workdir)
        self.cluster_id = secrets.token_hex(6)
        self.auth_token = secrets.token_hex(32)  # (this cluster's own, not ~/.ray/auth_token)
        environ = {k: v for k, v in os.environ.items() if k not in _FOREIGN_RAY_VARIABLES}
        environ.update(_NODE_ENVIRONMENT)
        environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.auth_token})
        environ.update(env)
        self._node_env = environ
        self.system_config = dict(system_config)
        self.nodes: list[RayNode] = []
        self.address = ""
        self.dashboard_url = ""
        self.startup_seconds = 0.0
        self.stop_seconds = 0.0
        self._stopped = False

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        worker_nodes: int = 1,
        cpus_per_node: int = 2,
        env: Mapping[str, str] | None = None,
        system_config: Mapping[str, object] | None = None,
        timeout: float = START_TIMEOUT_S,
    ) -> RayCluster:
        """Start the head, then the worker nodes one by one, each once the one before is
        alive, all within `timeout` seconds. A node that fails to come up is started again
        on fresh ports (`NODE_ATTEMPTS` times in all: on two cores a raylet may give up on
        its agents' slow start, ray-project/ray#65983); then this raises with its logs.

        `env` is merged over each node's environment; `system_config` over
        `FAST_HEALTH_CHECK` for the head's `--system-config`."""
        began = time.monotonic()
        workdir.mkdir(parents=True, exist_ok=True)
        config = {**FAST_HEALTH_CHECK, **(system_config or {})}
        cluster = cls(workdir, env=env or {}, system_config=config)
        atexit.register(cluster.stop)
        try:
            cluster._start_nodes(worker_nodes, cpus_per_node, time.monotonic() + timeout)
        except BaseException:
            cluster.stop()
            raise
        cluster.startup_seconds = time.monotonic() - began
        return cluster

    def stop(self) -> None:
        """Stop every process of this cluster (and only those) and remove its temp dirs:
        SIGTERM to each node's `ray start`, SIGKILL to what is left after `STOP_GRACE_S`.
        Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        began = time.monotonic()
        live = [node for node in self.nodes if not node.gone]
        for node in live:
            with contextlib.suppress(ProcessLookupError):
                node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(node.pids() for node in live):
            time.sleep(0.1)
        errors = []
        for node in live:
            try:
                self._kill(node)
            except RayClusterError as error:
                errors.append(str(error))
        shutil.rmtree(self.temp_root, ignore_errors=True)
        self.stop_seconds = time.monotonic() - began
        if errors:
            raise RayClusterError("\n".join(errors))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the nodes -----------------------------------------------------------------------

    @property
    def head(self) -> RayNode:
        """The head node (GCS, dashboard, a raylet; resource `head_node`)."""
        return self.nodes[0]

    @property
    def workers(self) -> list[RayNode]:
        """The worker nodes, in order (resources `worker_node` and `worker_node_<n>`)."""
        return self.nodes[1:]

    @property
    def node_death_seconds(self) -> float:
        """About how long the GCS takes to declare a SIGKILLed node dead: its raylet fails
        `health_check_failure_threshold` checks in a row, one per period."""
        config = {**FAST_HEALTH_CHECK, **self.system_config}
        period = config["health_check_period_ms"]
        threshold = config["health_check_failure_threshold"]
        assert isinstance(period, int)
        assert isinstance(threshold, int)
        return period * (threshold + 1) / 1000

    def kill_node(self, node: RayNode) -> None:
        """SIGKILL every process of `node` at once (its `ray start`, raylet, agents and the
        workers it started), as losing the machine would; return when they are all gone."""
        self._kill(node)

    def pids(self) -> set[int]:
        """Every live process of this cluster, on all its nodes."""
        return set[int]().union(*(node.pids() for node in self.nodes))

    # -- what Ray says (the state API, over HTTP) -----------------------------------------

    def client_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a driver subprocess of this cluster: `base` (by default this
        process's environment) without the variables that point at another cluster, plus
        `RAY_AUTH_MODE` and `RAY_AUTH_TOKEN` (a driver needs both to connect), and the
        cluster's address as `RAY_ADDRESS` and `SHOWDIST_RAY_ADDRESS`."""
        environ = {
            k: v
            for k, v in (os.environ if base is None else base).items()
            if k not in _FOREIGN_RAY_VARIABLES
        }
        environ.update(self.auth_env())
        environ["RAY_ADDRESS"] = self.address
        environ["SHOWDIST_RAY_ADDRESS"] = self.address
        return environ

    def auth_env(self) -> dict[str, str]:
        """Just the authentication variables every node and driver of the cluster has."""
        return {
            name: self._node_env[name]
            for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
            if name in self._node_env
        }

    def alive_node_ids(self) -> set[str]:
        """The ids of the nodes the GCS holds alive."""
        return {row["node_id"] for row in self._list("nodes", state="ALIVE")}

    def actors_by_node(self, namespace: str) -> dict[str, list[str]]:
        """Node id -> the (sorted) names of the ALIVE named actors of `namespace` on it."""
        found: dict[str, list[str]] = {}
        for row in self._list("actors", state="ALIVE", ray_namespace=namespace):
            if row.get("name"):
                found.setdefault(row["node_id"], []).append(row["name"])
        return {node_id: sorted(names) for node_id, names in found.items()}

    def node_rows(self) -> list[dict[str, Any]]:
        """The state API's rows of every node (dead ones too)."""
        return self._list("nodes")

    # -- internals -----------------------------------------------------------------------

    def _start_nodes(self, worker_nodes: int, cpus_per_node: int, deadline: float) -> None:
        def head_flags(ports: dict[str, int]) -> list[str]:
            self.address = f"{HOST}:{ports['port']}"
            self.dashboard_url = f"http://{HOST}:{ports['dashboard-port']}"
            return [
                "--head",
                "--no-monitor",  # (the autoscaler: nothing to scale here)
                "--include-dashboard=true",
                f"--dashboard-host={HOST}",
                f"--system-config={json.dumps(self.system_config)}",
            ]

        self._start_node(
            "head",
            {"head_node": 1},
            (*_HEAD_PORT_FLAGS, *_NODE_PORT_FLAGS),
            cpus_per_node,
            head_flags,
            deadline,
        )
        for n in range(1, worker_nodes + 1):
            self._start_node(
                f"worker-{n}",
                {"worker_node": 1, f"worker_node_{n}": 1},
                _NODE_PORT_FLAGS,
                cpus_per_node,
                lambda _: [f"--address={self.address}"],
                deadline,
            )

    def _start_node(
        self,
        name: str,
        resources: dict[str, int],
        port_flags: tuple[str, ...],
        cpus: int,
        flags: Callable[[dict[str, int]], list[str]],
        deadline: float,
    ) -> RayNode:
        """Start a node (its own resource is the last of `resources`) and wait until it is
        alive; start it again on fresh ports if it fails to come up."""
        failures: list[str] = []
        for attempt in range(1, NODE_ATTEMPTS + 1):
            ports = dict(zip(port_flags, _free_ports(len(port_flags)), strict=True))
            node = self._launch(name, attempt, list(resources)[-1], resources, ports, cpus, flags)
            failure = self._await(node, deadline)
            if not failure:
                return node
            failures.append(f"attempt {attempt}: {failure}\n{node.log_tail()}")
            self._kill(node)
            self.nodes.remove(node)
            if failure.startswith("not alive"):
                break
        raise RayClusterError(f"Ray node {name} did not come up:\n" + "\n".join(failures))

    def _await(self, node: RayNode, deadline: float) -> str:
        """Wait until `node` is alive (""), fails to come up, or `deadline` passes (why)."""
        while not self._registered(node):
            if failure := node.startup_failure():
                return failure
            if time.monotonic() > deadline:
                return "not alive in time"
            time.sleep(0.1)
        return ""

    def _launch(
        self,
        name: str,
        attempt: int,
        resource: str,
        resources: dict[str, int],
        ports: dict[str, int],
        cpus: int,
        flags: Callable[[dict[str, int]], list[str]],
    ) -> RayNode:
        temp_dir = self.temp_root / f"{name}-{attempt}"
        temp_dir.mkdir(parents=True)
        log_file = self.workdir / f"ray-{self.cluster_id}-{name}-{attempt}.log"
        marker = f"{self.cluster_id}:{name}:{attempt}"
        argv = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--block",
            *flags(ports),
            f"--node-name={name}",
            f"--num-cpus={cpus}",
            f"--resources={json.dumps(resources)}",
            f"--temp-dir={temp_dir}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            "--min-worker-port=0",  # (0: any free port; `ray start` would take 10002-19999)
            "--max-worker-port=0",
            "--disable-usage-stats",
            # (it sends the workers' output to the drivers: the logs stay in the temp dir)
            "--include-log-monitor=false",
            *(f"--{flag}={port}" for flag, port in ports.items()),
        ]
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=temp_dir,
                env={**self._node_env, NODE_MARKER_ENV: marker},
                start_new_session=True,
            )
        node = RayNode(name, resource, name == "head", process, temp_dir, log_file, ports, marker)
        self.nodes.append(node)
        return node

    def _registered(self, node: RayNode) -> bool:
        """Whether `node` is alive (its own resource says which it is); sets its id."""
        try:
            rows = self._list("nodes", state="ALIVE")
        except RayClusterError:
            return False  # (the head's dashboard is not up yet)
        for row in rows:
            if node.resource in row.get("resources_total", {}):
                node.node_id = row["node_id"]
                return True
        return False

    def _kill(self, node: RayNode) -> None:
        if node.gone:
            return
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while pids := node.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise RayClusterError(f"Ray node {node.name}: processes {sorted(pids)} live on")
            time.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(timeout=KILL_TIMEOUT_S)  # (reap our own child)
        node.gone = True

    def _list(self, resource: str, **equal: str) -> list[dict[str, Any]]:
        params: dict[str, str | list[str]] = {"limit": "10000", "timeout": "10", "detail": "false"}
        if equal:
            params["filter_keys"] = list(equal)
            params["filter_predicates"] = ["="] * len(equal)
            params["filter_values"] = list(equal.values())
        url = f"{self.dashboard_url}/api/v0/{resource}"
        headers = {}
        if self._node_env.get("RAY_AUTH_MODE") == "token":
            headers["Authorization"] = f"Bearer {self.auth_token}"
        try:
            response = httpx.get(url, params=params, headers=headers, timeout=15, trust_env=False)
        except httpx.TransportError as error:
            raise RayClusterError(f"{url}: {error!r}") from error
        if response.status_code != 200:
            raise RayClusterError(f"{url}: HTTP {response.status_code} {response.text[:500]}")
        body = response.json()
        if not body.get("result"):
            raise RayClusterError(f"{url}: {body.get('msg')}")
        rows: list[dict[str, Any]] = body["data"]["result"]["result"]
        return rows


# ------------------------------------------------------------------------------- helpers


def _temp_root(workdir: Path) -> Path:
    """A new `workdir/ray-*` if Ray's socket paths under it fit AF_UNIX, else a short /tmp dir."""
    inside = workdir.resolve() / "ray-xxxxxxxx" / "worker-99"
    if len(str(inside)) + _SOCKET_SUFFIX_LEN <= _AF_UNIX_MAX:
        return Path(tempfile.mkdtemp(prefix="ray-", dir=workdir))
    return Path(tempfile.mkdtemp(prefix="showdist-ray-", dir="/tmp"))


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on every interface right now (held together while
    they are picked, so that none is handed out twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _tail(path: Path, limit: int) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def still_running(pids: Iterable[int]) -> set[int]:
    """Those of `pids` that are still running (a zombie, dead but not yet reaped, is not)."""
    live = dict(_live_processes())
    return {pid for pid in pids if pid in live}


def _live_processes() -> Iterator[tuple[int, int]]:
    """(pid, session id) of every process on the machine that is not a zombie."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue  # (gone meanwhile)
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields[0] != b"Z":  # (state, ppid, pgrp, session, ...)
            yield int(entry.name), int(fields[3])


def _node_pids(session_id: int, marker: str) -> set[int]:
    """The live processes of session `session_id` or with `NODE_MARKER_ENV=marker`."""
    entry = f"{NODE_MARKER_ENV}={marker}".encode()
    found = set()
    for pid, sid in _live_processes():
        if sid == session_id:
            found.add(pid)
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if entry in environ.split(b"\0"):
            found.add(pid)
    return found
