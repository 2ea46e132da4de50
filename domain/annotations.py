"""Measurements and text annotations that radiologists place on an instance."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from domain.values import Id


class MeasurementKind(enum.StrEnum):
    LINE = "line"
    AREA = "area"
    ANGLE = "angle"
    ROI = "roi"


class Measurement(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    centre_id: Id
    instance_id: Id
    kind: MeasurementKind
    points: tuple[tuple[float, float], ...]
    """Image coordinates (column, row) in pixels, in the order they were placed."""
    value: float
    unit: str
    label: str | None = None
    frame: int = 1
    author_id: Id | None = None
    created_at: datetime

    def __post_init__(self) -> None:
        needed = {MeasurementKind.LINE: 2, MeasurementKind.ANGLE: 3}.get(self.kind, 3)
        if len(self.points) < needed:
            raise ValueError(f"a {self.kind.value} needs at least {needed} points")


class Annotation(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    centre_id: Id
    instance_id: Id
    text: str
    position: tuple[float, float]
    """Image coordinates (column, row) in pixels."""
    frame: int = 1
    author_id: Id | None = None
    created_at: datetime
