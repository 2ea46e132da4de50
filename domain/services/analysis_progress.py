"""Progress of an analysis running in a worker thread, reported to the job's async reporter.

The pipeline calls ``(stage, fraction of that stage)`` from its thread; the job wants one
progress value over the whole job, never going backwards, and a way to be stopped. Each
report blocks the pipeline until the reporter has stored it, so a cancellation (the reporter
raises ``JobCancelledError``) or an abandoned run (the awaiting task was cancelled) stops the
pipeline at that point.
"""

from __future__ import annotations

import asyncio
import threading

from domain.jobs import JobStage
from domain.ports.jobs import ProgressReporter

# Where each stage's own 0..1 lands in the job's progress; inference dominates the time.
STAGE_SPANS: dict[JobStage, tuple[float, float]] = {
    JobStage.LOADING: (0.0, 0.1),
    JobStage.PREPROCESSING: (0.1, 0.2),
    JobStage.INFERENCE: (0.2, 0.85),
    JobStage.POSTPROCESSING: (0.85, 0.99),
}
STORING = 0.9
"""The share of the postprocessing stage the pipeline's own postprocessing takes; writing the
SEG and storing the result take the rest."""


class ThreadProgress:
    """Bridges the pipeline's ``(stage, fraction)`` calls, made in a worker thread, to the
    job's async reporter: monotonic over the whole job, at most every ``step``, and blocking
    the pipeline until the report is stored, so a cancellation stops it at that point."""

    def __init__(
        self, reporter: ProgressReporter, loop: asyncio.AbstractEventLoop, step: float
    ) -> None:
        self._reporter = reporter
        self._loop = loop
        self._step = step
        self._last = -1.0
        self._stage: JobStage | None = None
        self.abandoned = threading.Event()

    def overall(self, stage: JobStage, fraction: float) -> float:
        start, stop = STAGE_SPANS[stage]
        return round(start + (stop - start) * min(1.0, max(0.0, fraction)), 4)

    async def report(self, stage: JobStage, fraction: float) -> None:
        value = self.overall(stage, fraction)
        if stage is self._stage and value < self._last + self._step:
            return
        self._stage, self._last = stage, max(value, self._last)
        await self._reporter(stage, self._last)

    def from_thread(self, stage: JobStage, fraction: float) -> None:
        """The pipeline's progress callback (called in its worker thread)."""
        if self.abandoned.is_set():
            # the awaiting task was cancelled (job cancelled or taken over): stop working
            raise asyncio.CancelledError("the analysis was abandoned")
        if stage is JobStage.POSTPROCESSING:
            fraction *= STORING
        future = asyncio.run_coroutine_threadsafe(self.report(stage, fraction), self._loop)
        future.result()
