"""What a benchmark reports: tables and notes, rendered as Markdown."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Paragraphs before the table: what was measured and how."""
    remarks: list[str] = field(default_factory=list)
    """Lines after the table: anything that went wrong or was left out."""

    def markdown(self) -> list[str]:
        out = [f"## {self.title}", ""]
        for note in self.notes:
            out += [note, ""]
        if self.rows:
            out.append("| " + " | ".join(self.headers) + " |")
            out.append("|" + "|".join("---" for _ in self.headers) + "|")
            out += ["| " + " | ".join(row) + " |" for row in self.rows]
            out.append("")
        for remark in self.remarks:
            out += [remark, ""]
        return out


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:.1f}" if seconds > 0 else "-"


HTTP_HEADERS = [
    "files per request",
    "parallel requests",
    "instances",
    "MB",
    "seconds (median)",
    "instances/s",
    "MB/s",
    "instances/s range",
    "stored",
    "problems",
]


@dataclass
class HttpRuns:
    """Repeated uploads of one configuration; reported by the median time."""

    files_per_request: int
    concurrency: int
    processes: int = 1
    """Server processes (Hounsfield's ``serve --workers``)."""
    files: int = 0
    size_bytes: int = 0
    seconds: list[float] = field(default_factory=list)
    stored: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, *, files: int, size_bytes: int, seconds: float, stored: int) -> None:
        self.files, self.size_bytes = files, size_bytes
        self.seconds.append(seconds)
        self.stored.append(stored)

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else 0.0

    @property
    def instances_per_s(self) -> float:
        return self.files / self.median_s if self.median_s > 0 else 0.0

    def row(self) -> list[str]:
        seconds = self.median_s
        fastest, slowest = min(self.seconds, default=0.0), max(self.seconds, default=0.0)
        spread = f"{rate(self.files, slowest)}-{rate(self.files, fastest)}"
        stored = "/".join(str(s) for s in self.stored)
        unique = list(dict.fromkeys(self.problems))
        return [
            str(self.files_per_request),
            str(self.concurrency),
            str(self.files),
            f"{self.size_bytes / 1e6:.1f}",
            f"{seconds:.2f}",
            rate(self.files, seconds),
            rate(self.size_bytes / 1e6, seconds),
            spread if len(self.seconds) > 1 else "-",
            stored,
            "; ".join(unique[:3]) or "none",
        ]
