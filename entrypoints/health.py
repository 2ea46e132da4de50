"""Health probes the composition root adds, and the runner behind ``/health/detailed``.

A probe (``domain.ports.HealthProbe``) raises when its component is unusable and may return
a short detail. A probe raising :class:`Degraded` reports a component that works but is
incomplete (no models installed, a configured broker that is not used yet): the platform
still answers, so the overall status stays 200.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from domain.errors import DomainError
from domain.ports import HealthProbe

Status = Literal["ok", "degraded", "error"]

DEFAULT_PROBE_TIMEOUT_S = 5.0
_MAX_DETAIL_CHARS = 300
_MODEL_FILE_SUFFIXES = (".onnx", ".pt")


class Degraded(Exception):
    """Raised by a probe whose component works but not fully; the message is the detail."""


class Unreachable(Exception):
    """A configured service did not answer."""


class ComponentHealth(msgspec.Struct, frozen=True, kw_only=True):
    status: Status
    response_time_ms: float
    detail: str | None = None


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    status: Status
    components: dict[str, ComponentHealth]

    @property
    def healthy(self) -> bool:
        """Whether the platform can serve: every component ok or degraded."""
        return self.status != "error"


async def check_health(
    probes: Sequence[HealthProbe], *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
) -> HealthReport:
    """Run every probe concurrently, each bounded by ``timeout_s``."""
    results = await asyncio.gather(*(_run_probe(probe, timeout_s=timeout_s) for probe in probes))
    components = {probe.component: result for probe, result in zip(probes, results, strict=True)}
    statuses = {result.status for result in results}
    overall: Status = (
        "error" if "error" in statuses else "degraded" if "degraded" in statuses else "ok"
    )
    return HealthReport(status=overall, components=components)


async def _run_probe(probe: HealthProbe, *, timeout_s: float) -> ComponentHealth:
    started = time.perf_counter()
    status: Status
    try:
        async with asyncio.timeout(timeout_s):
            detail = await probe.check()
        status = "ok"
    except Degraded as err:
        status, detail = "degraded", str(err)
    except TimeoutError:
        status, detail = "error", f"no answer within {timeout_s:g} s"
    except Exception as err:
        status, detail = "error", _describe(err)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return ComponentHealth(status=status, response_time_ms=elapsed_ms, detail=detail)


def _describe(err: Exception) -> str:
    text = err.detail if isinstance(err, DomainError) else (str(err) or type(err).__name__)
    line = " ".join(text.split())
    return line[:_MAX_DETAIL_CHARS]


class PingProbe:
    """A component whose health is one call: ``ping`` raises when it is unusable."""

    def __init__(
        self,
        component: str,
        ping: Callable[[], Awaitable[object]],
        *,
        describe: str | None = None,
    ) -> None:
        self._component = component
        self._ping = ping
        self._describe = describe

    @property
    def component(self) -> str:
        return self._component

    async def check(self) -> str | None:
        answer = await self._ping()
        if isinstance(answer, str) and answer:
            return answer if self._describe is None else f"{answer} ({self._describe})"
        return self._describe


class InProcessQueueProbe:
    """The queue while jobs run inside the serving process (no broker configured)."""

    component = "queue"

    async def check(self) -> str | None:
        return "in-process (no HOUNSFIELD_BROKER_URL set)"


class ModelsProbe:
    """The models directory: each model is a sub-directory with a manifest or weights."""

    component = "models"

    def __init__(self, models_dir: Path) -> None:
        self._models_dir = models_dir

    async def check(self) -> str | None:
        names = await asyncio.to_thread(installed_models, self._models_dir)
        if not names:
            raise Degraded(f"no models installed in {self._models_dir}")
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        return f"{len(names)} model(s) in {self._models_dir}: {shown}"


def installed_models(models_dir: Path) -> list[str]:
    """Names of the sub-directories of ``models_dir`` that hold a manifest or model file."""
    if not models_dir.is_dir():
        return []
    names = []
    for entry in sorted(models_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        files = [child.name for child in entry.iterdir()]
        if "manifest.json" in files or any(f.endswith(_MODEL_FILE_SUFFIXES) for f in files):
            names.append(entry.name)
    return names
