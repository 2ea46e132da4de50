"""``InferenceEngine`` on onnxruntime: the CUDA provider where it loads, the CPU one otherwise.

onnxruntime-gpu lists ``CUDAExecutionProvider`` as available even when the CUDA and cuDNN
libraries it needs are missing, and then logs an error for every session that asks for it.
So the CUDA provider is only requested after a quiet probe: a GPU is visible to the driver
(``cuDeviceGetCount``) and the provider library loads with its dependencies. A session that
still comes up without CUDA is used on the CPU, with one warning for the process.

onnxruntime is imported on first use, not with this module: listing models or building the
container costs nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import sys
import threading
from dataclasses import dataclass
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

FILE_FORMAT = "onnx"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True, slots=True)
class _Session:
    session: Any  # onnxruntime.InferenceSession
    input_name: str
    output_name: str
    providers: tuple[str, ...]


class OnnxInferenceEngine:
    """Runs the ``onnx`` file of a manifest with onnxruntime.

    One session per model (id, version, checksum) per engine, created on first use and then
    shared by every thread (``InferenceSession.run`` is thread-safe). Make one engine per
    process. The file's SHA-256 is checked against the manifest on the bytes that are loaded.

    Args:
        models_dir: the models directory; a model's files are in ``models_dir / manifest.id``.
        threads: onnxruntime intra-op threads per session (``None``: one per core).
        use_cuda: ask for the CUDA provider when it can load (``False``: always the CPU).
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
        self._sessions: LoadedModels[_Session] = LoadedModels()
        self._cuda_failed = threading.Event()

    @property
    def device(self) -> str:
        """``cuda:N`` while the CUDA provider is in use (or would be), else ``cpu``."""
        return f"cuda:{self._cuda_device_id}" if self._cuda_wanted() else "cpu"

    def load(self, manifest: ModelManifest) -> None:
        self._session(manifest)

    def run(
        self, manifest: ModelManifest, patch: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        batch = check_batch(patch)
        loaded = self._session(manifest)
        (outputs,) = loaded.session.run([loaded.output_name], {loaded.input_name: batch})
        return activate(np.asarray(outputs, dtype=np.float32), manifest)

    def providers(self, manifest: ModelManifest) -> tuple[str, ...]:
        """The execution providers the model's session runs on (loads it if needed)."""
        return self._session(manifest).providers

    def _session(self, manifest: ModelManifest) -> _Session:
        return self._sessions.get(manifest, FILE_FORMAT, lambda: self._create(manifest))

    def _cuda_wanted(self) -> bool:
        return self._use_cuda and not self._cuda_failed.is_set() and cuda_provider_loads()

    def _create(self, manifest: ModelManifest) -> _Session:
        data = read_verified(self._models_dir, manifest, FILE_FORMAT)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads or 0
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        providers: list[Any] = [CPU_PROVIDER]
        if self._cuda_wanted():
            providers.insert(0, (CUDA_PROVIDER, {"device_id": self._cuda_device_id}))
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as err:  # onnxruntime raises its own exception classes
            raise ModelUnavailable(
                f"model {manifest.id} {manifest.version}: onnxruntime cannot load "
                f"{manifest.files[FILE_FORMAT]}: {err}"
            ) from err
        active = tuple(session.get_providers())
        if len(providers) > 1 and CUDA_PROVIDER not in active:
            self._cuda_failed.set()
            log.warning(
                "onnxruntime CUDA provider unavailable; running on the CPU", model=manifest.id
            )
        inputs, outputs = session.get_inputs(), session.get_outputs()
        log.info(
            "onnx model loaded",
            model=manifest.id,
            version=manifest.version,
            providers=list(active),
            threads=self._threads,
        )
        return _Session(
            session=session,
            input_name=inputs[0].name,
            output_name=outputs[0].name,
            providers=active,
        )


@functools.cache
def cuda_provider_loads() -> bool:
    """Whether onnxruntime's CUDA provider can run here: built in, a GPU visible to the
    driver, and the provider library loading with its CUDA/cuDNN dependencies. Quiet: the
    probe loads libraries with ctypes, onnxruntime logs nothing."""
    import onnxruntime as ort

    if CUDA_PROVIDER not in ort.get_available_providers() or not gpu_visible():
        return False
    name = (
        "onnxruntime_providers_cuda.dll"
        if sys.platform == "win32"
        else ("libonnxruntime_providers_cuda.so")
    )
    library = Path(ort.__file__).parent / "capi" / name
    if _loads(library):
        return True
    # CUDA/cuDNN from the nvidia-* wheels are found once preloaded (torch does this too).
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            preload()
    return _loads(library)


def gpu_visible() -> bool:
    """Whether the CUDA driver is installed and sees at least one GPU."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if driver.cuInit(0) != 0:
            return False
        return bool(driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0)
    return False


def _loads(library: Path) -> bool:
    if not library.exists():
        return False
    try:
        ctypes.CDLL(str(library))
    except OSError:
        return False
    return True
