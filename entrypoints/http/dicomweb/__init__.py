"""DICOMweb (PS3.18) at ``/dicomweb``: STOW-RS, QIDO-RS and WADO-RS, authenticated and rate
limited like the API and scoped to the caller's centre."""

from __future__ import annotations

from litestar import Router

from entrypoints.http.dicomweb.qido import DICOMWEB_PATH, QidoController
from entrypoints.http.dicomweb.stow import StowController
from entrypoints.http.dicomweb.wado import WadoController
from entrypoints.http.security import AuthenticationMiddleware


def dicomweb_router() -> Router:
    return Router(
        path=DICOMWEB_PATH,
        route_handlers=[QidoController, WadoController, StowController],
        middleware=[AuthenticationMiddleware()],
    )


__all__ = ["DICOMWEB_PATH", "dicomweb_router"]
