"""Words for an analysis result: its summary, quality assessment and recommendations.

Rule-based and deliberately cautious: the demo model is not for clinical use, and every
recommendation asks for a radiologist's review. No patient data goes into these texts.
"""

from __future__ import annotations

import msgspec

from domain.analysis import AnalysisResult, Detection

LARGE_LESION_MM = 30.0
"""Diameter from which a lesion is called a mass in the recommendations."""
LOW_CONFIDENCE = 0.7
GOOD_QUALITY = 0.8


class QualityAssessment(msgspec.Struct, frozen=True, kw_only=True):
    score: float | None
    rating: str
    """``good``, ``fair``, ``poor`` or ``unknown``."""
    findings: tuple[str, ...] = ()


def _diameter(detection: Detection) -> float:
    return detection.metrics.diameter_mm if detection.metrics is not None else 0.0


def summarise(detections: tuple[Detection, ...]) -> str:
    """One sentence: how many lesions, and the largest one's size and place."""
    if not detections:
        return "No lesion was found."
    largest = max(detections, key=_diameter)
    count = len(detections)
    noun = "lesion" if count == 1 else "lesions"
    text = f"{count} {noun} found"
    if largest.metrics is not None:
        volume_ml = largest.metrics.volume_mm3 / 1000.0
        text += (
            f"; the largest measures {largest.metrics.diameter_mm:.1f} mm across "
            f"({volume_ml:.1f} mL)"
        )
        if largest.region:
            text += f", {largest.region}"
    return text + "."


def assess(result: AnalysisResult) -> QualityAssessment:
    score = result.image_quality_score
    if score is None:
        rating = "unknown"
    elif score >= GOOD_QUALITY:
        rating = "good"
    elif score >= GOOD_QUALITY / 2:
        rating = "fair"
    else:
        rating = "poor"
    return QualityAssessment(score=score, rating=rating, findings=result.input.quality_findings)


def recommendations(result: AnalysisResult) -> list[str]:
    """What a reader of the result should do next, most important first."""
    advice = ["Review the AI findings against the images before reporting."]
    detections = result.detections
    if any(_diameter(d) >= LARGE_LESION_MM for d in detections):
        advice.append(
            f"A lesion of {LARGE_LESION_MM:.0f} mm or more was found: consider prompt "
            "clinical correlation and further characterisation."
        )
    if any(d.confidence < LOW_CONFIDENCE for d in detections):
        advice.append(
            "Some findings have low confidence: confirm or reject each one on the images."
        )
    if detections:
        advice.append("Compare with prior imaging, where available, to assess change in size.")
    quality = assess(result)
    if quality.rating in {"fair", "poor"}:
        advice.append(
            "Image quality limits the analysis ("
            + "; ".join(quality.findings or ("low quality score",))
            + "): small lesions may be missed."
        )
    if not detections:
        advice.append("No lesion was found; this does not exclude disease.")
    return advice
