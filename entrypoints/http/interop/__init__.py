"""HTTP routes of de-identification and export."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.interop.controllers import InteropController

INTEROP_CONTROLLERS: list[ControllerRouterHandler] = [InteropController]

__all__ = ["INTEROP_CONTROLLERS"]
