"""py-spy across the platform's processes while a benchmark runs, and a summary of each.

    Profiler(DIR).start("c16") ... .stop()   # DIR/c16-<role>-<pid>.txt, collapsed stacks
    python -m bench.profiles DIR/c16-*.txt   # the top functions by own and total samples

py-spy samples without stopping the process (`--nonblocking`), 250 times a second, only the
thread holding the GIL (`--gil`: Ray's C++ threads and idle waits are left out), so a file's
samples are the Python CPU the process spent, by function.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
from collections import Counter
from pathlib import Path

from bench.proc_cpu import CpuSnapshot

PROFILED = ("order hosts", "supplier hosts", "API replicas", "load client")


class Profiler:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, label: str) -> None:
        snap = CpuSnapshot.take()
        for pid, role in snap.roles.items():
            if role not in PROFILED:
                continue
            out = self.folder / f"{label}-{role.replace(' ', '_')}-{pid}.txt"
            self._running.append(
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        "250",
                        "--nonblocking",
                        "--gil",
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for p in self._running:
            p.send_signal(signal.SIGINT)
        for p in self._running:
            p.wait(timeout=30)
        self._running.clear()


def summary(path: Path, top: int = 25) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    out = [f"== {path.name}: {samples} samples"]
    out.append("  own:")
    out += [f"    {100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append("  total:")
    out += [f"    {100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    for f in args.files:
        print(summary(f, args.top))


if __name__ == "__main__":
    main()
