"""Inference adapters: the filesystem model registry and the onnxruntime and torch engines.

The engines import their runtime (onnxruntime, torch) on first use, so importing this package
is cheap.
"""

from adapters.inference.onnx_engine import OnnxInferenceEngine
from adapters.inference.registry import FilesystemModelRegistry
from adapters.inference.torch_engine import TorchInferenceEngine

__all__ = [
    "FilesystemModelRegistry",
    "OnnxInferenceEngine",
    "TorchInferenceEngine",
]
