"""The analysis pipeline of one volume (DESIGN.md section 7), pure numpy/scipy.

volume -> resample to the model's spacing -> intensity preprocessing -> sliding-window
inference (overlap, Gaussian blending, batched) -> probabilities back onto the volume's own
grid -> threshold and connected components (small ones dropped) -> per lesion: voxel and
patient boxes, confidence, IBSI metrics -> :class:`PipelineOutput`.

Lesions are found on the *source* grid, so the label map lines up voxel by voxel with the
series it came from (what a DICOM SEG of it needs) and the metrics use the real spacing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import msgspec
import numpy as np
import numpy.typing as npt

from domain.analysis import ProcessingTimes
from domain.errors import InvalidInput
from domain.imaging.geometry import Volume
from domain.jobs import JobStage
from domain.pipeline.intensity import window_to_unit
from domain.pipeline.lesions import FoundLesion, label_map, measure_lesions
from domain.pipeline.quality import ImageQuality, assess_quality
from domain.pipeline.resampling import grid_scale, model_grid_shape, to_model_grid, to_source_grid
from domain.pipeline.windows import sliding_window
from domain.ports.inference import InferenceEngine, ModelManifest

Progress = Callable[[JobStage, float], None]
"""Called with a stage and the fraction of that stage done (0..1); may raise to abort."""


class PipelineOptions(msgspec.Struct, frozen=True, kw_only=True):
    overlap: float = 0.5
    """Fraction of a patch shared with its neighbour along each axis."""
    batch_size: int = 4
    """Patches per inference call."""
    intensity_offset: float = 1024.0
    """Added to image values for the intensity-weighted centre of mass (CT air -> 0)."""


@dataclass(frozen=True, slots=True)
class PipelineOutput:
    """What the pipeline found in one volume.

    Attributes:
        lesions: one per label-map number, in number order.
        labels: ``(z, y, x)`` uint16 label map on the volume's grid (0 = background,
            ``lesions[n - 1]`` is number ``n``).
        quality: the image quality assessment.
        times: seconds spent in preprocessing, inference and postprocessing.
        stage_seconds: finer timings (``resample``, ``intensity``, ``inference``,
            ``to_source_grid``, ``components``, ``metrics``).
        model_shape: the volume's ``(z, y, x)`` size on the model's grid.
    """

    lesions: tuple[FoundLesion, ...]
    labels: npt.NDArray[np.uint16]
    quality: ImageQuality
    times: ProcessingTimes
    stage_seconds: dict[str, float] = field(default_factory=dict)
    model_shape: tuple[int, int, int] = (0, 0, 0)


def _ignore(stage: JobStage, fraction: float) -> None:
    """The default progress callback."""


def analyse_volume(
    volume: Volume,
    manifest: ModelManifest,
    engine: InferenceEngine,
    *,
    progress: Progress = _ignore,
    options: PipelineOptions | None = None,
) -> PipelineOutput:
    """Find, outline and measure the lesions of ``volume`` with the model of ``manifest``.

    Args:
        volume: the series' volume in modality units (HU for CT).
        manifest: the model to run; its spacing, patch, intensity preprocessing, threshold
            and minimum lesion size (in model-grid voxels, converted to source voxels by the
            two voxel volumes) are honoured.
        engine: runs the model's batches.
        progress: called at the start and end of each stage and during the long ones.
        options: overlap, batch size, intensity offset.

    Raises:
        InvalidInput: the manifest's preprocessing is unusable, or the model's output does
            not have one channel per label.
        ModelUnavailable: the engine cannot load the model.
    """
    opts = options or PipelineOptions()
    seconds: dict[str, float] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

    progress(JobStage.PREPROCESSING, 0.0)
    scale = grid_scale(volume.spacing, manifest.input_spacing_mm)
    with timed("resample"):
        resampled = to_model_grid(volume.voxels, scale)
    progress(JobStage.PREPROCESSING, 0.7)
    with timed("intensity"):
        try:
            model_input = window_to_unit(resampled, manifest.intensity)
        except ValueError as err:
            raise InvalidInput(f"model {manifest.id}: {err}") from err
    del resampled
    progress(JobStage.PREPROCESSING, 1.0)

    progress(JobStage.INFERENCE, 0.0)
    with timed("inference"):
        engine.load(manifest)
        probabilities = sliding_window(
            model_input,
            manifest.patch_size,
            lambda batch: engine.run(manifest, batch),
            overlap=opts.overlap,
            batch_size=opts.batch_size,
            progress=lambda fraction: progress(JobStage.INFERENCE, fraction),
        )
    if probabilities.shape[0] != len(manifest.labels):
        raise InvalidInput(
            f"model {manifest.id} returned {probabilities.shape[0]} channels for "
            f"{len(manifest.labels)} labels"
        )
    model_shape = model_grid_shape(volume.shape, scale)

    progress(JobStage.POSTPROCESSING, 0.0)
    with timed("to_source_grid"):
        on_source = np.stack([to_source_grid(p, volume.shape, scale) for p in probabilities])
    del probabilities
    model_voxel_mm3 = math.prod(manifest.input_spacing_mm)
    min_size = max(1, round(manifest.min_lesion_size_voxels * model_voxel_mm3 / _voxel(volume)))
    with timed("components"):
        labels, channels = label_map(
            on_source, threshold=manifest.threshold, min_size_voxels=min_size
        )
    progress(JobStage.POSTPROCESSING, 0.3)
    with timed("metrics"):
        lesions = measure_lesions(
            volume,
            labels,
            channels,
            on_source,
            manifest.labels,
            intensity_offset=opts.intensity_offset,
            progress=lambda fraction: progress(JobStage.POSTPROCESSING, 0.3 + 0.65 * fraction),
        )
        quality = assess_quality(
            volume,
            window_width=manifest.intensity.window_width,
            patch_size=manifest.patch_size,
            model_shape=model_shape,
        )
    progress(JobStage.POSTPROCESSING, 1.0)
    return PipelineOutput(
        lesions=tuple(lesions),
        labels=labels,
        quality=quality,
        times=ProcessingTimes(
            preprocessing_s=seconds["resample"] + seconds["intensity"],
            inference_s=seconds["inference"],
            postprocessing_s=seconds["to_source_grid"] + seconds["components"] + seconds["metrics"],
        ),
        stage_seconds=seconds,
        model_shape=model_shape,
    )


def _voxel(volume: Volume) -> float:
    return volume.voxel_volume_mm3
