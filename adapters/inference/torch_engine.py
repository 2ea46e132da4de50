"""``InferenceEngine`` on torch: TorchScript files, on CUDA when torch sees a GPU.

torch is imported on first use, not with this module.
"""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from adapters.inference.activation import activate, check_batch
from adapters.inference.cache import LoadedModels
from adapters.inference.files import read_verified
from domain.ports.inference import ModelManifest, ModelUnavailable

log = structlog.get_logger(__name__)

FILE_FORMAT = "torchscript"


class TorchInferenceEngine:
    """Runs the ``torchscript`` file of a manifest with ``torch.jit.load``, in
    ``torch.inference_mode``.

    One module per model (id, version, checksum) per engine, loaded on first use and shared
    by every thread. Make one engine per process. The file's SHA-256 is checked against the
    manifest on the bytes that are loaded.

    Args:
        models_dir: the models directory; a model's files are in ``models_dir / manifest.id``.
        threads: torch's intra-op CPU threads, set process-wide on the first load
            (``None``: torch's default).
        use_cuda: run on CUDA when ``torch.cuda.is_available()`` (``False``: always the CPU).
        cuda_device_id: the GPU to use.
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        threads: int | None = None,
        use_cuda: bool = True,
        cuda_device_id: int = 0,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads!r}")
        self._models_dir = Path(models_dir)
        self._threads = threads
        self._use_cuda = use_cuda
        self._cuda_device_id = cuda_device_id
        self._modules: LoadedModels[Any] = LoadedModels()

    @property
    def device(self) -> str:
        """``cuda:N`` when torch sees a GPU (and ``use_cuda``), else ``cpu``."""
        if self._use_cuda and _cuda_available():
            return f"cuda:{self._cuda_device_id}"
        return "cpu"

    def load(self, manifest: ModelManifest) -> None:
        self._module(manifest)

    def run(
        self, manifest: ModelManifest, patch: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        import torch

        batch = check_batch(patch)
        module = self._module(manifest)
        with torch.inference_mode():
            outputs = module(torch.from_numpy(batch).to(self.device))
            array = outputs.to(device="cpu", dtype=torch.float32).numpy()
        return activate(array, manifest)

    def _module(self, manifest: ModelManifest) -> Any:
        return self._modules.get(manifest, FILE_FORMAT, lambda: self._create(manifest))

    def _create(self, manifest: ModelManifest) -> Any:
        data = read_verified(self._models_dir, manifest, FILE_FORMAT)
        import torch

        if self._threads is not None:
            torch.set_num_threads(self._threads)
        device = self.device
        try:
            # TorchScript is deprecated in favour of torch.export; the archive still loads.
            # Loads run one at a time (under the cache's lock).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(io.BytesIO(data), map_location=device)
        except Exception as err:  # torch raises RuntimeError and friends for bad archives
            raise ModelUnavailable(
                f"model {manifest.id} {manifest.version}: torch cannot load "
                f"{manifest.files[FILE_FORMAT]}: {err}"
            ) from err
        module.eval()
        log.info(
            "torchscript model loaded", model=manifest.id, version=manifest.version, device=device
        )
        return module


@functools.cache
def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
