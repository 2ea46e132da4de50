"""Controllers for the price list and invoices."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from domain.billing import InvoiceStatus
from domain.identity import Principal
from domain.ports.repositories import InvoiceFilter
from domain.services.billing import CreateInvoice, CreatePrice, UpdatePrice
from domain.values import MAX_PAGE_SIZE, Page
from entrypoints.bootstrap import Container
from entrypoints.http.billing.schemas import (
    InvoiceCreate,
    InvoiceRead,
    InvoiceStatusUpdate,
    PriceCreate,
    PriceRead,
    PriceUpdate,
)
from entrypoints.http.studies.controllers import DEPENDENCIES

Skip = Annotated[int, QueryParameter(ge=0, description="Items to pass over")]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="At most this many items")
]


class PricingController(Controller):
    path = "/billing/pricing"
    tags = ["billing"]
    dependencies = DEPENDENCIES

    @post("/", operation_id="createPrice", summary="Price a modality in a centre (admin)")
    async def create(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[PriceCreate],
    ) -> PriceRead:
        command = CreatePrice(
            centre_id=data.centre_id,
            modality=data.modality,
            amount=data.amount,
            currency=data.currency,
        )
        return PriceRead.of(await container.services.billing.create_price(principal, command))

    @get("/", operation_id="listPrices", summary="Prices of the caller's centre (admins: any)")
    async def list_prices(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        centre_id: FromQuery[UUID | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[PriceRead]:
        found = await container.services.billing.list_prices(
            principal, centre_id, Page(skip=skip, limit=limit)
        )
        return [PriceRead.of(p) for p in found]

    @get("/{price_id:uuid}", operation_id="getPrice", summary="One price")
    async def get_price(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        price_id: FromPath[UUID],
    ) -> PriceRead:
        return PriceRead.of(await container.services.billing.get_price(principal, price_id))

    @patch(
        "/{price_id:uuid}",
        operation_id="updatePrice",
        summary="Change a price's amount, currency or activity (admin)",
    )
    async def update(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        price_id: FromPath[UUID],
        data: JSONBody[PriceUpdate],
    ) -> PriceRead:
        command = UpdatePrice(amount=data.amount, currency=data.currency, active=data.active)
        entry = await container.services.billing.update_price(principal, price_id, command)
        return PriceRead.of(entry)


class InvoiceController(Controller):
    path = "/billing/invoices"
    tags = ["billing"]
    dependencies = DEPENDENCIES

    @post("/", operation_id="createInvoice", summary="Invoice a study at its centre's price")
    async def create(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[InvoiceCreate],
    ) -> InvoiceRead:
        invoice = await container.services.billing.create_invoice(
            principal, CreateInvoice(study_id=data.study_id)
        )
        return InvoiceRead.of(invoice)

    @get("/", operation_id="listInvoices", summary="Invoices, newest first (admin, manager)")
    async def list_invoices(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        centre_id: FromQuery[UUID | None] = None,
        status: FromQuery[InvoiceStatus | None] = None,
        study_id: FromQuery[UUID | None] = None,
        issued_from: FromQuery[date | None] = None,
        issued_to: FromQuery[date | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[InvoiceRead]:
        where = InvoiceFilter(
            centre_id=centre_id,
            status=status,
            study_id=study_id,
            issued_from=issued_from,
            issued_to=issued_to,
        )
        found = await container.services.billing.list_invoices(
            principal, where, Page(skip=skip, limit=limit)
        )
        return [InvoiceRead.of(i) for i in found]

    @get("/{invoice_id:uuid}", operation_id="getInvoice", summary="One invoice")
    async def get_invoice(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        invoice_id: FromPath[UUID],
    ) -> InvoiceRead:
        return InvoiceRead.of(await container.services.billing.get_invoice(principal, invoice_id))

    @patch(
        "/{invoice_id:uuid}/status",
        operation_id="setInvoiceStatus",
        summary="Mark a pending invoice paid or cancelled (admin)",
    )
    async def set_status(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        invoice_id: FromPath[UUID],
        data: JSONBody[InvoiceStatusUpdate],
    ) -> InvoiceRead:
        invoice = await container.services.billing.set_invoice_status(
            principal, invoice_id, data.status
        )
        return InvoiceRead.of(invoice)
