"""The default ``ReportWriter``: a fixed template filled from the analysis result.

Deterministic and offline, so a draft can be reproduced from its result. A writer backed by a
language model implements the same port (``draft(study, result) -> ReportText``).
Coordinates are DICOM patient coordinates (LPS, mm); no patient demographics are written.
"""

from __future__ import annotations

import msgspec

from domain.analysis import AnalysisResult, Detection
from domain.reports import AI_DRAFT_NOTICE
from domain.studies import Study

AI_NOTICE = AI_DRAFT_NOTICE


class DraftText(msgspec.Struct, kw_only=True):
    findings: str
    impression: str


def quality_phrase(score: float | None) -> str:
    """Image quality in words: good (>= 0.7), adequate (>= 0.4), limited, or not assessed."""
    if score is None:
        return "not assessed"
    grade = "good" if score >= 0.7 else "adequate" if score >= 0.4 else "limited"
    return f"{grade} (score {score:.2f})"


def _location(detection: Detection) -> str:
    box = detection.patient_box
    if detection.metrics is not None:
        x, y, z = detection.metrics.centre_of_mass_mm
    else:
        x, y, z = ((lo + hi) / 2 for lo, hi in zip(box.minimum_mm, box.maximum_mm, strict=True))
    first, last = detection.voxel_box.start[0] + 1, detection.voxel_box.stop[0]
    slices = f"slice {first}" if last <= first else f"slices {first}-{last}"
    return f"centred at ({x:.1f}, {y:.1f}, {z:.1f}) mm (patient LPS), {slices}"


def _size(detection: Detection) -> str:
    box = detection.patient_box
    extent = [hi - lo for lo, hi in zip(box.minimum_mm, box.maximum_mm, strict=True)]
    size = " x ".join(f"{e:.1f}" for e in extent) + " mm (x, y, z extent)"
    if detection.metrics is not None:
        size += f", maximum 3D diameter {detection.metrics.maximum_3d_diameter_mm:.1f} mm"
    return size


def _volume(detection: Detection) -> str:
    if detection.metrics is None:
        return "volume not measured"
    volume = detection.metrics.volume_mesh_mm3
    return f"volume {volume:.1f} mm3 ({volume / 1000:.2f} mL)"


def _finding(number: int, detection: Detection) -> str:
    return (
        f"{number}. {detection.label}: {_location(detection)}; size {_size(detection)}; "
        f"{_volume(detection)}; confidence {detection.confidence:.0%}."
    )


class TemplateReportWriter:
    """Fills the template: the AI notice, model and quality, one finding per lesion."""

    async def draft(self, study: Study, result: AnalysisResult) -> DraftText:
        lines = [
            AI_NOTICE,
            f"Model: {result.model_id} {result.model_version}. "
            f"Modality: {study.modality.value}. "
            f"Image quality: {quality_phrase(result.image_quality_score)}.",
            "",
            "Findings:",
        ]
        ordered = sorted(result.detections, key=lambda d: -d.confidence)
        lines += [_finding(n, d) for n, d in enumerate(ordered, start=1)]
        if not ordered:
            lines.append("No lesion detected by the model.")
        if result.summary:
            lines += ["", f"Model summary: {result.summary}"]
        return DraftText(findings="\n".join(lines), impression=self._impression(result))

    @staticmethod
    def _impression(result: AnalysisResult) -> str:
        confidence = f"overall model confidence {result.overall_confidence:.0%}"
        count = len(result.detections)
        if count == 0:
            head = f"No suspicious lesion detected ({confidence})."
        else:
            measured = [d.metrics for d in result.detections if d.metrics is not None]
            head = f"{count} suspicious lesion{'s' if count > 1 else ''} detected ({confidence})"
            if measured:
                largest = max(measured, key=lambda m: m.volume_mesh_mm3)
                head += (
                    f"; the largest measures {largest.volume_mesh_mm3:.1f} mm3, "
                    f"maximum diameter {largest.maximum_3d_diameter_mm:.1f} mm"
                )
            head += "."
        return f"{head} Preliminary AI draft: requires verification by a radiologist."
