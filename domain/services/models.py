"""The model catalogue: which models this installation can run, where, and how far to trust them."""

from __future__ import annotations

import msgspec

from domain.errors import NotFound, PermissionDenied
from domain.identity import Principal, Scope
from domain.ports.inference import InferenceEngine, ModelManifest, ModelRegistry

NOT_FOR_CLINICAL_USE = (
    "Not for clinical use: this model is not validated or cleared for diagnosis; its findings "
    "are for demonstration and research only and must not guide patient care."
)
CLINICAL_USE = (
    "Declared for clinical use by its manifest; follow the indications and validation of its "
    "supplier."
)


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A usable model: its manifest, the device analyses run it on and its use statement."""

    manifest: ModelManifest
    device: str
    """Where the analysis engine runs models, e.g. ``cpu`` or ``cuda:0``."""
    clinical_use_statement: str


class ModelCatalogue:
    """Lists the models of the registry for any signed-in user, or an API key allowed to read
    or start analyses (``jobs:read`` or ``jobs:write``).

    Args:
        registry: where the manifests come from.
        engine: the engine analyses run on (for its device).
    """

    def __init__(self, *, registry: ModelRegistry, engine: InferenceEngine) -> None:
        self._registry = registry
        self._engine = engine

    def list(self, principal: Principal) -> list[ModelInfo]:
        _require_reader(principal)
        return [self._info(manifest) for manifest in self._registry.list()]

    def get(self, principal: Principal, model_id: str) -> ModelInfo:
        _require_reader(principal)
        manifest = self._registry.get(model_id)
        if manifest is None:
            raise NotFound("model", model_id)
        return self._info(manifest)

    def _info(self, manifest: ModelManifest) -> ModelInfo:
        return ModelInfo(
            manifest=manifest,
            device=self._engine.device,
            clinical_use_statement=CLINICAL_USE if manifest.clinical_use else NOT_FOR_CLINICAL_USE,
        )


def _require_reader(principal: Principal) -> None:
    if not (principal.has_scope(Scope.JOBS_READ) or principal.has_scope(Scope.JOBS_WRITE)):
        raise PermissionDenied("this API key lacks the 'jobs:read' or 'jobs:write' scope")
