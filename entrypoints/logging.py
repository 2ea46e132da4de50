"""Structured logging: structlog for our code, stdlib loggers (uvicorn...) routed through it.

Console output in development, one JSON object per line in production. Context bound with
:func:`bind_request` (request id, later job id) is carried by ``contextvars`` and appears on
every line logged while handling that request.

Patient data never goes to the logs: callers log identifiers, route templates and counts,
never query strings, request bodies or DICOM attributes.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from typing import Literal, TextIO

import structlog

_DROPPED_EXTRAS = ("color_message",)  # uvicorn's ANSI-coloured copy of the message


def _drop_noise(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for key in _DROPPED_EXTRAS:
        event_dict.pop(key, None)
    return event_dict


_QUERY_STRING = re.compile(
    r'((?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|WebSocket) /[^\s"?]*)\?[^\s"]*'
)


def _drop_query_strings(
    logger: object, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """uvicorn logs each websocket handshake with its query string, where browsers put their
    credentials (``/ws?token=...``); lines keep the path only."""
    event = event_dict.get("event")
    if isinstance(event, str) and "?" in event:
        event_dict["event"] = _QUERY_STRING.sub(r"\1?<query omitted>", event)
    return event_dict


_SHARED_PROCESSORS: list[structlog.typing.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    _drop_noise,
    _drop_query_strings,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(
    *,
    level: str = "info",
    log_format: Literal["console", "json"] = "console",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger for this process.

    Safe to call more than once (the last call wins); called by the CLI and the uvicorn
    factory, never at import time. Lines go to ``stream`` (default: standard error).
    """
    stream = stream if stream is not None else sys.stderr
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        final: list[structlog.typing.Processor] = [
            # Tracebacks without local variables: locals can hold patient data.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            renderer,
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        final = [renderer]

    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED_PROCESSORS,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # uvicorn installs its own handlers unless told otherwise; route them through ours.
    # Its access log prints raw paths with query strings, so it stays off (see the
    # request middleware for our own access line, by route template).
    # A dictConfig that ran earlier (uvicorn's own, an embedding application's) may have left
    # these disabled or with their own level; ours decides.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.disabled = False
        logger.setLevel(logging.NOTSET)
    logging.getLogger("uvicorn.access").disabled = True
    # HTTP client libraries log full URLs, query strings included.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger; context bound per request is added to every line."""
    return structlog.get_logger(name)  # type: ignore[no-any-return]
