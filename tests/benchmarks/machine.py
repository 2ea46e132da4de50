"""A description of the machine a benchmark ran on, for the results page."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    """CPUs this process may run on (the affinity mask), not the host's total."""
    memory_gib: float
    python: str
    system: str
    commit: str
    date: str
    load: tuple[float, float, float] | None = None
    """The 1, 5 and 15 minute load averages when the run started (other work on the cores)."""

    def lines(self) -> list[str]:
        lines = [
            f"- date: {self.date}",
            f"- commit: {self.commit}",
            f"- CPU: {self.cpu}, {self.cores} cores available",
            f"- memory: {self.memory_gib:.1f} GiB",
            f"- Python {self.python} on {self.system}",
        ]
        if self.load is not None:
            averages = ", ".join(f"{average:.1f}" for average in self.load)
            lines.append(f"- load average at the start (1, 5, 15 min): {averages}")
        return lines


def describe(repo: Path) -> Machine:
    return Machine(
        cpu=_cpu_model(),
        cores=len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count() or 1,
        memory_gib=_memory_kib() / 1024**2,
        python=platform.python_version(),
        system=platform.platform(terse=True),
        commit=_commit(repo),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load=os.getloadavg() if hasattr(os, "getloadavg") else None,
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _commit(repo: Path) -> str:
    """The commit, and the tracked files that differ from it (this page excepted)."""
    head = (_git(repo, "rev-parse", "--short", "HEAD") or "").strip() or "unknown"
    status = _git(repo, "status", "--porcelain", "--untracked-files=no") or ""
    changed = sorted(
        line[3:].strip()
        for line in status.splitlines()
        if len(line) > 3 and not line[3:].strip().endswith("docs/benchmarks.md")
    )
    if not changed:
        return f"`{head}`"
    return f"`{head}` with uncommitted changes to {', '.join(changed)}"
