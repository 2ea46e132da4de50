"""The websocket protocol's messages (see docs/api.md, "Live job progress").

Every server message is a JSON object whose ``type`` says what it is: ``job`` (a job's state),
``ack``, ``error`` or ``heartbeat``. Clients send ``{"action": "subscribe"|"unsubscribe",
"job_id": "<uuid>"}`` on ``/ws``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from domain.jobs import JobStage, JobStatus
from domain.services.job_watch import JobUpdate
from domain.values import Id

MAX_CLIENT_MESSAGE_CHARS = 4096
"""A subscribe or unsubscribe message is some 80 characters; anything far larger is refused."""


class JobMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="job"):
    job_id: Id
    status: JobStatus
    stage: JobStage | None
    progress: float
    message: str | None
    timestamp: datetime


class Ack(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="ack"):
    action: Literal["subscribe", "unsubscribe"]
    job_id: Id


class ErrorMessage(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="error"):
    job_id: str | None
    """The job the error is about, as the client gave it (``None`` when it gave none)."""
    detail: str


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="heartbeat"):
    timestamp: datetime


ServerMessage = JobMessage | Ack | ErrorMessage | Heartbeat


class ClientMessage(msgspec.Struct, frozen=True, kw_only=True):
    action: Literal["subscribe", "unsubscribe"]
    job_id: Id


class BadMessage(Exception):
    """A client message the server cannot act on; ``job_id`` is echoed in the error."""

    def __init__(self, detail: str, job_id: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.job_id = job_id


def job_message(update: JobUpdate) -> JobMessage:
    return JobMessage(
        job_id=update.job_id,
        status=update.status,
        stage=update.stage,
        progress=update.progress,
        message=update.message,
        timestamp=update.timestamp,
    )


def parse_client_message(text: str) -> ClientMessage:
    """The action a client asked for; ``BadMessage`` saying what is wrong otherwise."""
    if len(text) > MAX_CLIENT_MESSAGE_CHARS:
        raise BadMessage(f"messages are at most {MAX_CLIENT_MESSAGE_CHARS} characters")
    try:
        raw: Any = msgspec.json.decode(text)
    except msgspec.DecodeError as err:
        raise BadMessage(f"message is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise BadMessage('send an object: {"action": "subscribe", "job_id": "<uuid>"}')
    given = raw.get("job_id")
    echoed = given[:64] if isinstance(given, str) else None
    try:
        return msgspec.convert(raw, ClientMessage)
    except msgspec.ValidationError as err:
        raise BadMessage(f"{err} (actions: subscribe, unsubscribe)", echoed) from err
