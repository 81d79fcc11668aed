"""CPU time by process, read from /proc, for the benchmarks' "CPU per lifecycle" figures.

Every process a benchmark starts descends from it: Ray's GCS, raylet and workers, Serve's
proxy or HAProxy, PostgreSQL (through runuser), Redis and the sandbox supplier. A snapshot
walks /proc once, keeps the benchmark's own process and its descendants, and sums their user
and system time by role (read from the process's title: Ray names its workers
`ray::ClassName.method`). The difference of two snapshots over a timed run, divided by the
lifecycles it completed, is the CPU each role spent per lifecycle.

A process that ends during the run still counts when its parent waits for it: the parent's
/proc record carries the CPU of the children it has waited for (`cutime` + `cstime`), and the
difference of that, less what an ended child had spent before the first snapshot, is charged
to the parent's role. That is how PostgreSQL's backends count when a pool closes a connection
mid-run (before 2026-12-04 they were left out, and PostgreSQL's figure fell short whenever a
pool churned). A parent that ignores SIGCHLD (Ray's raylet, for its workers) reaps nothing
into its record, so a Ray worker that ends mid-run is still left out. The load client's own
children (py-spy, pg_ctl) are the benchmark's tools, not counted.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")

# Process title fragment → role, first match wins.
_ROLES: tuple[tuple[str, str], ...] = (
    ("OrderHost", "order hosts"),
    ("SupplierHost", "supplier hosts"),
    ("ApiIngress", "API replicas"),
    ("SettlementActor", "settlement actor"),
    ("CallbackCourier", "callback courier"),
    ("ProxyActor", "Serve proxy"),
    ("ServeController", "Serve controller"),
    ("pretix.wsgi", "pretix (gunicorn)"),
    ("haproxy", "HAProxy"),
    ("redis-server", "Redis"),
    ("suppliers.sandbox", "sandbox supplier"),
    ("gcs_server", "Ray GCS"),
    ("raylet", "Ray raylet"),
    ("ray::", "Ray other workers"),
    ("dashboard", "Ray agents"),
    ("runtime_env", "Ray agents"),
    ("log_monitor", "Ray agents"),
)
# Roles that are not the platform's: the load client and the supplier are outside it.
OUTSIDE = frozenset({"load client", "sandbox supplier", "pretix (gunicorn)"})


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, user + system ticks, the same of the children it has waited for) of one
    process."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _role(pid: int, me: int) -> str:
    if pid == me:
        return "load client"
    if (_read(f"/proc/{pid}/comm") or "").strip() == "postgres":
        return "PostgreSQL"
    title = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    if not title.strip():
        title = _read(f"/proc/{pid}/comm") or ""
    for fragment, role in _ROLES:
        if fragment in title:
            return role
    return "other"


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds by pid, with each pid's role, for the benchmark's process tree."""

    seconds: dict[int, float]
    roles: dict[int, str]
    reaped: dict[int, float] = field(default_factory=dict)  # its waited-for children's CPU
    parents: dict[int, int] = field(default_factory=dict)

    @classmethod
    def take(cls, extra_roots: tuple[int, ...] = ()) -> CpuSnapshot:
        """The benchmark's process tree, and the trees of `extra_roots` (daemons such as
        PostgreSQL's postmaster, which `pg_ctl` detaches from its starter)."""
        me = os.getpid()
        parents: dict[int, int] = {}
        ticks: dict[int, int] = {}
        reaped: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = _stat(int(name))
                if st is not None:
                    parents[int(name)], ticks[int(name)], reaped[int(name)] = st
        children: dict[int, list[int]] = defaultdict(list)
        for pid, parent in parents.items():
            children[parent].append(pid)
        mine, todo = [], [me, *extra_roots]
        while todo:
            pid = todo.pop()
            mine.append(pid)
            todo.extend(children.get(pid, ()))
        mine = [pid for pid in mine if pid in ticks]
        roles = {pid: _role(pid, me) for pid in mine}
        return cls(
            {pid: ticks[pid] / _TICK for pid in mine},
            roles,
            # The load client's children are the benchmark's tools (py-spy, pg_ctl).
            {pid: reaped[pid] / _TICK for pid in mine if roles[pid] != "load client"},
            {pid: parents[pid] for pid in mine},
        )

    def since(self, before: CpuSnapshot) -> dict[str, float]:
        """CPU seconds by role between `before` and this snapshot. A process that started in
        between counts from zero; one that ended in between counts in the role of its
        nearest ancestor still running, from the CPU that ancestor has reaped since, less
        what the ended ones had spent before `before`. Never below zero: a parent that
        ignores SIGCHLD (Ray's raylet does) reaps nothing into its own record, and what its
        ended children spent is lost, as it was before."""
        by_role: dict[str, float] = defaultdict(float)
        for pid, secs in self.seconds.items():
            by_role[self.roles[pid]] += secs - before.seconds.get(pid, 0.0)
        earlier: dict[int, float] = defaultdict(float)  # by the ancestor that reaped it
        for pid, secs in before.seconds.items():
            if pid in self.seconds:
                continue
            ancestor = before.parents.get(pid)
            while ancestor is not None and ancestor not in self.seconds:
                ancestor = before.parents.get(ancestor)
            if ancestor is not None:
                earlier[ancestor] += secs + before.reaped.get(pid, 0.0)
        for pid, reaped in self.reaped.items():
            since = reaped - before.reaped.get(pid, 0.0) - earlier.get(pid, 0.0)
            by_role[self.roles[pid]] += max(0.0, since)
        return dict(by_role)


def cpu_lines(
    by_role: dict[str, float],
    lifecycles: int,
    *,
    unit: str = "lifecycle",
    target_ms: float | None = None,
    platform_total: bool = True,
) -> list[str]:
    """The table a benchmark prints: ms of CPU per lifecycle by role, the platform's total
    (every role but the load client and the supplier) and the whole machine's."""
    per = {role: 1000.0 * secs / max(1, lifecycles) for role, secs in by_role.items()}
    lines = [
        f"    {role:>20}: {ms:6.2f} ms/{unit}"
        for role, ms in sorted(per.items(), key=lambda kv: -kv[1])
        if ms >= 0.005
    ]
    platform = sum(ms for role, ms in per.items() if role not in OUTSIDE)
    target = "" if target_ms is None else f"  (target <= {target_ms:g})"
    if platform_total:
        lines.append(f"    {'platform in all':>20}: {platform:6.2f} ms/{unit}{target}")
    lines.append(f"    {'all processes':>20}: {sum(per.values()):6.2f} ms/{unit}")
    return lines
