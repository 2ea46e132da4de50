"""HTTP route that measures a segmentation a user brings: ``POST /measure``."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.measure.controllers import MeasureController

MEASURE_CONTROLLERS: list[ControllerRouterHandler] = [MeasureController]

__all__ = ["MEASURE_CONTROLLERS"]
