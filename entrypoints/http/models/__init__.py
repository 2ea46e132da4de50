"""HTTP routes of the model catalogue: which models can analyse, on what device, how trusted."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.models.controllers import ModelController

MODEL_CONTROLLERS: list[ControllerRouterHandler] = [ModelController]

__all__ = ["MODEL_CONTROLLERS"]
