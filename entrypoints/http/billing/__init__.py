"""HTTP routes of billing: the price list and invoices."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.billing.controllers import InvoiceController, PricingController

BILLING_CONTROLLERS: list[ControllerRouterHandler] = [PricingController, InvoiceController]

__all__ = ["BILLING_CONTROLLERS"]
