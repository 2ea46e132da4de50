"""Helpers for the studies, images, upload and presigned-upload API tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from PIL import Image

from adapters.storage import FilesystemBlobStore
from domain.ports.repositories import StudyFilter
from domain.values import Page
from entrypoints.bootstrap import Container
from tests.api.identity_fixtures import World

FileSpec = tuple[str, bytes]


def multipart(files: list[FileSpec], field: str = "files") -> list[tuple[str, Any]]:
    return [(field, (name, data, "application/octet-stream")) for name, data in files]


async def post_studies(
    client: httpx.AsyncClient, headers: dict[str, str], files: list[FileSpec], **fields: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/studies", headers=headers, files=multipart(files), data=fields or None
    )


async def upload_one(
    client: httpx.AsyncClient, headers: dict[str, str], name: str, data: bytes, **fields: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/upload", headers=headers, files=multipart([(name, data)], "file"), data=fields
    )


def stored_keys(container: Container) -> list[str]:
    """Every object in the application's filesystem blob store (hidden temp files aside)."""
    store = container.blob_store
    assert isinstance(store, FilesystemBlobStore)
    root: Path = store.root
    if not root.exists():
        return []
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and not path.name.startswith(".")
    )


async def study_count(container: Container) -> int:
    services = container.services
    admin_view = await services.studies.list(_system(), StudyFilter(), Page(limit=1000))
    return admin_view[1]


def _system() -> Any:
    from domain.identity import SYSTEM_PRINCIPAL

    return SYSTEM_PRINCIPAL


async def new_centre(world: World, name: str) -> UUID:
    response = await world.client.post(
        "/api/v1/centres", headers=world.admin.headers, json={"name": name}
    )
    assert response.status_code == 201, response.text
    return UUID(response.json()["id"])


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.format == "PNG"
        picture.load()
        return picture.size
