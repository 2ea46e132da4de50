"""``multipart/form-data`` uploads, read straight into memory for the upload routes.

Litestar's own form parsing writes every file part into a ``SpooledTemporaryFile`` and hands
it out as an ``UploadFile``, which the upload routes then read back whole: two more copies
of every file and a spooled-file write per chunk, a sixth of the server's CPU per ingested
file (2.9 against 2.4 ms, 16 files a request, docs/benchmarks.md). Here the parts go from the
``multipart`` package's push parser (the one Litestar uses underneath) into one ``bytes``
object each. Upload routes hold every file in memory anyway: they read them all before
storing any, so that a request is all or nothing.

The routes still document their form in OpenAPI through :func:`form_operation`, from the
dataclasses that describe it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec
import multipart
from litestar import Litestar, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.params import Body

_T = TypeVar("_T")
FORM_DATA = "multipart/form-data"
MAX_HEADER_BYTES = 8 * 1024
"""Longest header block of one part (a file name is at most a few hundred bytes)."""


@dataclass(frozen=True)
class FormFile:
    """A part sent with a file name."""

    field: str
    file_name: str
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Form:
    """What a ``multipart/form-data`` body carried: text fields and files, in order."""

    fields: dict[str, str]
    files: list[FormFile]

    def files_in(self, *names: str) -> list[FormFile]:
        """The files sent under any of ``names``, in the order they came."""
        return [f for f in self.files if f.field in names]

    def fields_as(self, type_: type[_T]) -> _T:
        """The text fields as ``type_`` (a dataclass of optional fields); fields it does not
        name are ignored, as a form field nobody reads would be.

        Raises:
            ClientException: a field's value is not one ``type_`` accepts, or a field of
                ``type_`` was sent as a file.
        """
        known = {f.name for f in dataclasses.fields(type_)}  # type: ignore[arg-type]
        for upload in self.files:
            if upload.field in known:
                raise bad_form(f"the form field {upload.field!r} must be text, not a file")
        values = {name: value for name, value in self.fields.items() if name in known}
        try:
            return msgspec.convert(values, type_, strict=False)
        except msgspec.ValidationError as err:
            raise bad_form(f"the form is not valid: {err}") from None


def bad_form(detail: str) -> ClientException:
    """A body that is not the form the route documents: 400, as a failed validation is."""
    return ClientException(detail=detail)


async def read_form(
    content_type: tuple[str, dict[str, str]],
    body: AsyncIterable[bytes],
    *,
    max_parts: int,
) -> Form:
    """Parse a ``multipart/form-data`` body as it streams in.

    ``content_type`` is the request's parsed Content-Type (``Request.content_type``); the
    body's size limit (413) is the stream's to enforce (``Request.stream()``).

    Raises:
        HTTPException: 415 when the body is not ``multipart/form-data``.
        ClientException: a malformed body, a text field that is not UTF-8 or is sent twice,
            or more than ``max_parts`` parts (400).
    """
    media_type, parameters = content_type
    if media_type.lower() != FORM_DATA:
        raise HTTPException(
            status_code=415, detail=f"send the upload as {FORM_DATA}, not {media_type!r}"
        )
    boundary = parameters.get("boundary", "")
    if not boundary:
        raise bad_form(f"the {FORM_DATA} Content-Type names no boundary")
    fields: dict[str, str] = {}
    files: list[FormFile] = []
    segment: multipart.MultipartSegment | None = None
    chunks: list[bytes] = []
    parser = multipart.PushMultipartParser(
        boundary.encode("latin-1"),
        max_header_size=MAX_HEADER_BYTES,
        max_segment_count=max_parts,
    )
    try:
        async for received in body:
            for event in parser.parse(received):
                if isinstance(event, multipart.MultipartSegment):
                    segment, chunks = event, []
                elif event is not None:
                    chunks.append(event)
                elif segment is not None:
                    _keep(segment, b"".join(chunks), fields, files)
                    segment, chunks = None, []
        parser.close()
    except multipart.ParserLimitReached as err:
        raise bad_form(f"the form has too many parts or too long a header ({err})") from None
    except multipart.MultipartError as err:
        raise bad_form(f"the {FORM_DATA} body is malformed: {err}") from None
    return Form(fields=fields, files=files)


def _keep(
    segment: multipart.MultipartSegment,
    data: bytes,
    fields: dict[str, str],
    files: list[FormFile],
) -> None:
    if segment.filename is not None:
        files.append(
            FormFile(
                field=segment.name,
                file_name=segment.filename,
                content_type=segment.content_type,
                data=data,
            )
        )
        return
    if segment.name in fields:
        raise bad_form(f"the form field {segment.name!r} was sent more than once")
    try:
        fields[segment.name] = data.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_form(
            f"the form field {segment.name!r} is not valid UTF-8 text (a file must be sent"
            " as a part with a filename)"
        ) from None


# -- OpenAPI ------------------------------------------------------------------------------


def form_operation(form: type[Any]) -> type[Operation]:
    """An ``operation_class`` for a route that reads ``form`` with :func:`read_form`: its
    request body is documented as it would be were ``form`` a ``data`` parameter (built when
    the OpenAPI document is, not when the route is declared)."""

    @dataclass
    class FormOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True, content={FORM_DATA: OpenAPIMediaType(schema=form_schema(form))}
            )

    FormOperation.__name__ = f"{form.__name__}Operation"
    return FormOperation


@functools.cache
def form_schema(form: type[Any]) -> Schema:
    """``form``'s schema as Litestar generates it for a ``data`` parameter, taken from a
    throwaway application that declares one (inline: the real application's components are
    its own routes' types only)."""

    async def declare(data: Any) -> None:
        return None

    declare.__annotations__ = {
        "data": Annotated[form, Body(media_type=RequestEncodingType.MULTI_PART)],
        "return": None,
    }
    app = Litestar([post("/")(declare)], openapi_config=OpenAPIConfig(title="form", version="0"))
    schemas = app.openapi_schema.components.schemas or {}
    schema = schemas.get(form.__name__)
    if not isinstance(schema, Schema) or "$ref" in str(schema.to_schema()):
        raise TypeError(f"{form.__name__} must be a form of plain fields and files")
    return schema
