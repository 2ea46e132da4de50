"""Credentials in query strings never reach the logs (browsers put websocket tokens there)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from entrypoints.logging import configure_logging


@pytest.fixture
def buffer() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    configure_logging(level="info", log_format="json", stream=stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_uvicorn_websocket_handshake_lines_keep_the_path_but_not_the_token(
    buffer: io.StringIO,
) -> None:
    # uvicorn's own words for an accepted websocket handshake
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:50312", "/ws/jobs/42?token=eyJsecret.jwt"
    )
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" 403', "127.0.0.1:50313", "/ws?token=hf_secretkey&x=1"
    )

    lines = [json.loads(line)["event"] for line in buffer.getvalue().splitlines()]
    assert lines == [
        '127.0.0.1:50312 - "WebSocket /ws/jobs/42?<query omitted>" [accepted]',
        '127.0.0.1:50313 - "WebSocket /ws?<query omitted>" 403',
    ]


def test_other_lines_with_question_marks_are_left_alone(buffer: io.StringIO) -> None:
    structlog.get_logger("test").info("is the queue up?")

    assert json.loads(buffer.getvalue())["event"] == "is the queue up?"
