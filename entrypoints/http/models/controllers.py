"""``/models``: the analysis models this installation can run."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter

from domain.identity import Principal
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import provide_container
from entrypoints.http.models.schemas import ModelRead
from entrypoints.http.security import provide_principal

ModelId = Annotated[str, PathParameter(min_length=1, max_length=200, description="Model id")]


class ModelController(Controller):
    path = "/models"
    tags = ["models"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "principal": Provide(provide_principal, sync_to_thread=False),
    }

    @get("/", operation_id="listModels", summary="The models analyses can use, by id")
    async def list_models(
        self, container: NamedDependency[Container], principal: NamedDependency[Principal]
    ) -> list[ModelRead]:
        return [ModelRead.of(info) for info in container.services.models.list(principal)]

    @get(
        "/{model_id:str}",
        operation_id="getModel",
        summary="One model: manifest, version, metrics, device and clinical-use statement",
    )
    async def get_model(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        model_id: ModelId,
    ) -> ModelRead:
        return ModelRead.of(container.services.models.get(principal, model_id))
