"""Live job progress over websockets, mounted at the root (``/ws``, ``/ws/jobs/{job_id}``)."""

from __future__ import annotations

from entrypoints.http.websockets.handlers import WEBSOCKET_HANDLERS

__all__ = ["WEBSOCKET_HANDLERS"]
