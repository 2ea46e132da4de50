"""One loaded model per manifest per process, shared by every thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from domain.ports.inference import ModelManifest

_Loaded = TypeVar("_Loaded")


def cache_key(manifest: ModelManifest, file_format: str) -> tuple[str, str, str]:
    """Id, version and the checksum of the file: a changed manifest loads a new model."""
    name = manifest.files.get(file_format, "")
    return (manifest.id, manifest.version, manifest.sha256.get(name, ""))


class LoadedModels(Generic[_Loaded]):
    """Loaded models by :func:`cache_key`; a model is loaded once, even when threads race."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str, str], _Loaded] = {}
        self._lock = threading.Lock()

    def get(
        self, manifest: ModelManifest, file_format: str, load: Callable[[], _Loaded]
    ) -> _Loaded:
        key = cache_key(manifest, file_format)
        loaded = self._models.get(key)
        if loaded is not None:
            return loaded
        with self._lock:  # loads are rare: one lock keeps a model from loading twice
            loaded = self._models.get(key)
            if loaded is None:
                loaded = load()
                self._models[key] = loaded
            return loaded
