"""The benchmarks' CPU by process (bench/proc_cpu.py) counts processes that end mid-run.

Real processes: a parent (role "other") runs a child that burns CPU and ends; the parent
waits for it, so the child's CPU lands in the parent's reaped time. Before this was counted,
a pool that closed connections mid-run made PostgreSQL's figure fall short.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from bench.proc_cpu import CpuSnapshot

# Burns CPU up to 0.3 s of its own, says so, waits for a line, burns up to 0.5 s, ends.
_BURNER = """
import sys, time
def burn(until):
    while time.process_time() < until:
        pass
burn(0.3)
print("half", flush=True)
sys.stdin.readline()
burn(0.5)
"""
# Runs the burner, waits for it to end (reaping it, unless it ignores SIGCHLD, when the
# kernel reaps it), says so, waits for a line.
_PARENT = f"""
import signal, subprocess, sys
if sys.argv[1:] == ["ignore-sigchld"]:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", {_BURNER!r}]).wait()
print("reaped", flush=True)
sys.stdin.readline()
"""


def under(snap: CpuSnapshot, root: int) -> CpuSnapshot:
    """The snapshot of `root` and its descendants only (whatever else the test run has
    started, a browser for instance, stays out of the figures)."""
    keep = {root}
    grew = True
    while grew:
        more = {pid for pid, parent in snap.parents.items() if parent in keep} - keep
        keep |= more
        grew = bool(more)

    def of(d: dict[int, float]) -> dict[int, float]:
        return {pid: v for pid, v in d.items() if pid in keep}

    return CpuSnapshot(
        of(snap.seconds),
        {pid: r for pid, r in snap.roles.items() if pid in keep},
        of(snap.reaped),
        {pid: p for pid, p in snap.parents.items() if pid in keep},
    )


@contextmanager
def parent_of_a_burner(*args: str) -> Iterator[tuple[int, IO[str], IO[str]]]:
    p = subprocess.Popen(
        [sys.executable, "-c", _PARENT, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdin is not None
    assert p.stdout is not None
    try:
        yield p.pid, p.stdin, p.stdout
    finally:
        p.kill()
        p.wait()


def say(to: IO[str], line: str) -> None:
    to.write(line + "\n")
    to.flush()


def test_a_process_born_and_ended_between_snapshots_counts_in_its_parents_role() -> None:
    before = CpuSnapshot.take()
    with parent_of_a_burner() as (pid, stdin, stdout):
        assert stdout.readline().strip() == "half"
        say(stdin, "go")
        assert stdout.readline().strip() == "reaped"
        spent = under(CpuSnapshot.take(), pid).since(under(before, pid))
    # The burner's 0.5 s (its parent's own CPU is a few hundredths more).
    assert 0.45 <= spent.get("other", 0.0) < 0.8


def test_a_process_that_ends_mid_run_counts_only_what_it_spent_since() -> None:
    with parent_of_a_burner() as (pid, stdin, stdout):
        assert stdout.readline().strip() == "half"
        before = under(CpuSnapshot.take(), pid)  # the burner's 0.3 s so far: not this run's
        assert len(before.seconds) == 2  # the parent and the burner
        say(stdin, "go")
        assert stdout.readline().strip() == "reaped"
        spent = under(CpuSnapshot.take(), pid).since(before)
    # 0.2 s: not 0 (left out, as before), nor 0.5 (its whole life counted).
    assert 0.15 <= spent.get("other", 0.0) < 0.3


def test_a_parent_that_ignores_sigchld_counts_nothing_and_never_below_zero() -> None:
    """Ray's raylet ignores SIGCHLD: the kernel reaps its children and their CPU reaches no
    record. A worker of it that ends mid-run is left out, never subtracted."""
    with parent_of_a_burner("ignore-sigchld") as (pid, stdin, stdout):
        assert stdout.readline().strip() == "half"
        before = under(CpuSnapshot.take(), pid)
        assert len(before.seconds) == 2
        say(stdin, "go")
        assert stdout.readline().strip() == "reaped"
        spent = under(CpuSnapshot.take(), pid).since(before)
    assert 0.0 <= spent.get("other", 0.0) < 0.1
