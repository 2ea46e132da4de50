"""Analyses: the job handler that runs the pipeline, and the reads of its results.

:class:`AnalysisService` is the :class:`~domain.ports.jobs.JobHandler` of analysis jobs: it
loads the job's series, reads the volume, runs :func:`domain.pipeline.analyse_volume` in a
worker thread (progress bridged to the job's reporter, which also carries cancellation),
writes a DICOM SEG of the lesions when the source is DICOM, stores one
:class:`~domain.analysis.AnalysisResult` and calls the ``on_result`` hooks (the AI report
draft). Reads are centre-scoped: another centre's job or result is not found.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from domain.analysis import AnalysisResult, Detection, InputMetadata
from domain.errors import Conflict, InvalidInput, NotFound
from domain.findings import summarise
from domain.identity import SYSTEM_PRINCIPAL, Principal
from domain.imaging.geometry import Volume
from domain.imaging.ingest import ImageFormat
from domain.jobs import Job, JobStage
from domain.pipeline import PipelineOptions, PipelineOutput, analyse_volume
from domain.ports.blobs import BlobNotFound, BlobStore
from domain.ports.imaging import StoredFile, VolumeReader
from domain.ports.inference import InferenceEngine, ModelManifest, ModelRegistry
from domain.ports.jobs import ProgressReporter
from domain.ports.segmentation import Segment, SegmentationSource, SegmentationWriter
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.access import visible
from domain.services.analysis_progress import STORING, ThreadProgress
from domain.services.auditing import Auditor
from domain.services.jobs import require_job_reader
from domain.services.series_files import analysis_series_id, load_series
from domain.values import Id

_log = logging.getLogger(__name__)

ResultHook = Callable[[AnalysisResult], Awaitable[None]]


def segmentation_key(job: Job) -> str:
    """The deterministic blob key of a job's SEG: a retry overwrites, never duplicates."""
    return f"centres/{job.centre_id}/studies/{job.study_id}/analyses/{job.id}/segmentation.dcm"


class AnalysisService:
    """The analysis job handler and the reads of analysis results.

    Args:
        uow: units of work.
        blobs: where the series' files are and the SEG goes.
        models: the installed models.
        engine: runs them.
        volumes: reads stored files into volumes.
        segmentations: writes DICOM SEGs; ``None`` stores no SEG.
        clock, ids, auditor: as everywhere.
        on_result: awaited after a result is stored (and again on a retry that finds it), in
            order; each must be idempotent.
        options: pipeline options (overlap, batch size).
        progress_step: smallest rise of the job's progress worth a report within a stage.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        blobs: BlobStore,
        models: ModelRegistry,
        engine: InferenceEngine,
        volumes: VolumeReader,
        segmentations: SegmentationWriter | None,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor,
        on_result: Sequence[ResultHook] = (),
        options: PipelineOptions | None = None,
        progress_step: float = 0.02,
    ) -> None:
        self._uow = uow
        self._blobs = blobs
        self._models = models
        self._engine = engine
        self._volumes = volumes
        self._segmentations = segmentations
        self._clock = clock
        self._ids = ids
        self._auditor = auditor
        self._on_result = tuple(on_result)
        self._options = options or PipelineOptions()
        self._progress_step = progress_step

    # -- the job handler -----------------------------------------------------------------

    async def __call__(self, job: Job, progress: ProgressReporter) -> None:
        """Analyse the job's series and store its result (see the module docstring)."""
        async with self._uow() as uow:
            existing = await uow.results.get_for_job(job.id)
        if existing is not None:  # an earlier attempt stored it and died before finishing
            await self._run_hooks(existing)
            return
        bridge = ThreadProgress(progress, asyncio.get_running_loop(), self._progress_step)
        await bridge.report(JobStage.LOADING, 0.0)
        manifest = self._models.get(job.model_id)
        if manifest is None:
            raise InvalidInput(f"model '{job.model_id[:200]}' is not installed")
        series_id = job.series_id or await analysis_series_id(self._uow, job.study_id)
        series, _, files = await load_series(self._uow, self._blobs, series_id)
        if series.centre_id != job.centre_id or series.study_id != job.study_id:
            raise NotFound("series of job", series_id)
        await bridge.report(JobStage.LOADING, 0.5)
        volume = await asyncio.to_thread(self._volumes.read_volume, files)
        await bridge.report(JobStage.LOADING, 1.0)
        output = await self._in_thread(
            bridge,
            lambda: analyse_volume(
                volume, manifest, self._engine, progress=bridge.from_thread, options=self._options
            ),
        )
        await bridge.report(JobStage.POSTPROCESSING, STORING)
        key = await self._write_segmentation(job, manifest, volume, files, output)
        result = self._result(job, manifest, volume, files[0].format, output, key)
        stored = await self._store(result)
        # no progress report after this: a cancellation arriving now would only hide the
        # stored result; the runner sets 1.0 when it completes the job
        await self._auditor.record(
            SYSTEM_PRINCIPAL,
            "analysis.create",
            "analysis",
            stored.id,
            centre_id=stored.centre_id,
            detail=f"job {job.id}, model {manifest.id} {manifest.version}, "
            f"{len(stored.detections)} detection(s)",
        )
        await self._run_hooks(stored)

    async def _in_thread(
        self, bridge: ThreadProgress, work: Callable[[], PipelineOutput]
    ) -> PipelineOutput:
        try:
            return await asyncio.to_thread(work)
        except asyncio.CancelledError:
            bridge.abandoned.set()  # the thread stops at its next progress report
            raise

    async def _write_segmentation(
        self,
        job: Job,
        manifest: ModelManifest,
        volume: Volume,
        files: Sequence[StoredFile],
        output: PipelineOutput,
    ) -> str | None:
        dicom = all(f.format is ImageFormat.DICOM for f in files)
        if self._segmentations is None or not dicom or not output.lesions:
            return None
        writer = self._segmentations
        segments = [
            Segment(
                number=lesion.number,
                label=f"{lesion.label} {lesion.number}",
                description=f"{lesion.label}, {lesion.region}",
            )
            for lesion in output.lesions
        ]
        source = SegmentationSource(
            files=tuple(f.data for f in files),
            series_description=f"AI segmentation ({manifest.id} {manifest.version})",
            algorithm_name=manifest.id,
            algorithm_version=manifest.version,
        )
        try:
            data = await asyncio.to_thread(writer.write, source, volume, output.labels, segments)
        except InvalidInput as err:
            # the findings and metrics stand without a SEG; losing them for it would be worse
            _log.warning("job %s: no DICOM SEG for this series: %s", job.id, err.detail)
            return None
        key = segmentation_key(job)
        await self._blobs.put(key, data, content_type="application/dicom")
        return key

    def _result(
        self,
        job: Job,
        manifest: ModelManifest,
        volume: Volume,
        image_format: ImageFormat,
        output: PipelineOutput,
        key: str | None,
    ) -> AnalysisResult:
        detections = tuple(
            Detection(
                label=lesion.label,
                confidence=lesion.confidence,
                voxel_box=lesion.voxel_box,
                patient_box=lesion.patient_box,
                mask_key=key,
                segment_number=lesion.number if key is not None else None,
                metrics=lesion.metrics,
                region=lesion.region,
            )
            for lesion in output.lesions
        )
        confidences = [d.confidence for d in detections]
        return AnalysisResult(
            id=self._ids.new_id(),
            job_id=job.id,
            study_id=job.study_id,
            centre_id=job.centre_id,
            model_id=manifest.id,
            model_version=manifest.version,
            detections=detections,
            summary=summarise(detections),
            overall_confidence=sum(confidences) / len(confidences) if confidences else 0.0,
            image_quality_score=output.quality.score,
            input=InputMetadata(
                format=image_format.value,
                dimensions=volume.shape,
                voxel_spacing_mm=volume.spacing,
                quality_findings=output.quality.findings,
            ),
            times=output.times,
            segmentation_key=key,
            created_at=self._clock.now(),
        )

    async def _store(self, result: AnalysisResult) -> AnalysisResult:
        """Insert the result once; a concurrent run that got there first wins."""
        try:
            async with self._uow() as uow:
                await uow.results.add(result)
                await uow.commit()
            return result
        except Conflict:
            async with self._uow() as uow:
                first = await uow.results.get_for_job(result.job_id)
            if first is None:
                raise
            return first

    async def _run_hooks(self, result: AnalysisResult) -> None:
        for hook in self._on_result:
            await hook(result)

    # -- reads -----------------------------------------------------------------------------

    async def result_for_job(self, principal: Principal, job_id: Id) -> AnalysisResult:
        """The result of a job the principal may see; ``Conflict`` while the job runs,
        ``NotFound`` when it ended without one."""
        result = await self._result_of(principal, job_id)
        await self._audit(principal, result, "result")
        return result

    async def mask_for_job(self, principal: Principal, job_id: Id) -> bytes:
        """The DICOM SEG of a job's result (Part 10 bytes)."""
        result = await self._result_of(principal, job_id)
        if result.segmentation_key is None:
            raise NotFound("segmentation of job", job_id)
        try:
            seg = await self._blobs.get(result.segmentation_key)
        except BlobNotFound as err:
            raise NotFound("segmentation of job", job_id) from err
        await self._audit(principal, result, "mask")
        return seg

    async def _result_of(self, principal: Principal, job_id: Id) -> AnalysisResult:
        async with self._uow() as uow:
            job = visible(principal, await uow.jobs.get(job_id), "job", job_id)
            require_job_reader(principal)
            result = await uow.results.get_for_job(job_id)
        if result is None and not job.finished:
            # the job exists and the caller may see it: say why there is nothing yet
            raise Conflict(
                f"job {job_id} is {job.status.value}; its result appears when it completes"
            )
        if result is None:
            raise NotFound("result of job", job_id)
        return result

    async def analysis(self, principal: Principal, result_id: Id) -> AnalysisResult:
        """One analysis result by its id."""
        async with self._uow() as uow:
            result = visible(principal, await uow.results.get(result_id), "analysis", result_id)
        require_job_reader(principal)
        await self._audit(principal, result, "analysis")
        return result

    async def _audit(self, principal: Principal, result: AnalysisResult, view: str) -> None:
        await self._auditor.record(
            principal,
            "analysis.read",
            "analysis",
            result.id,
            centre_id=result.centre_id,
            detail=view,
        )
