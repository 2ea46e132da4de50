"""Use cases for diagnostic centres (tenants)."""

from __future__ import annotations

import msgspec

from domain.errors import NotFound
from domain.identity import Centre, Principal, Role
from domain.ports.repositories import CentreFilter
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.access import ensure_visible, require_role
from domain.services.auditing import Auditor
from domain.services.commands import changes_of
from domain.values import Id, Page


class CreateCentre(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    contact_email: str | None = None
    contact_phone: str | None = None
    address: str | None = None
    auto_invoice: bool = False
    deidentify_at_ingest: bool = False


class UpdateCentre(msgspec.Struct, frozen=True, kw_only=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    contact_email: str | msgspec.UnsetType | None = msgspec.UNSET
    contact_phone: str | msgspec.UnsetType | None = msgspec.UNSET
    address: str | msgspec.UnsetType | None = msgspec.UNSET
    auto_invoice: bool | msgspec.UnsetType = msgspec.UNSET
    deidentify_at_ingest: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class CentreService:
    def __init__(
        self, *, uow: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, auditor: Auditor
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._auditor = auditor

    async def create(self, principal: Principal, command: CreateCentre) -> Centre:
        require_role(principal, action="create centres")
        now = self._clock.now()
        centre = Centre(
            id=self._ids.new_id(),
            name=command.name,
            contact_email=command.contact_email,
            contact_phone=command.contact_phone,
            address=command.address,
            auto_invoice=command.auto_invoice,
            deidentify_at_ingest=command.deidentify_at_ingest,
            created_at=now,
            updated_at=now,
        )
        async with self._uow() as uow:
            await uow.centres.add(centre)
            await uow.commit()
        await self._auditor.record(
            principal, "centre.create", "centre", centre.id, centre_id=centre.id
        )
        return centre

    async def get(self, principal: Principal, centre_id: Id) -> Centre:
        async with self._uow() as uow:
            centre = await uow.centres.get(centre_id)
        if centre is None:
            raise NotFound("centre", centre_id)
        ensure_visible(principal, centre.id, "centre", centre_id)
        return centre

    async def list(self, principal: Principal, where: CentreFilter, page: Page) -> list[Centre]:
        if not principal.is_admin:
            own = await self.get(principal, principal.centre_id) if principal.centre_id else None
            return [own] if own is not None and _matches(own, where) and page.skip == 0 else []
        async with self._uow() as uow:
            return await uow.centres.list(where, page)

    async def update(self, principal: Principal, centre_id: Id, command: UpdateCentre) -> Centre:
        changes = changes_of(command)
        async with self._uow() as uow:
            centre = await uow.centres.get(centre_id)
            # tenancy first: another centre's id is not found, whoever asks
            if centre is None or not principal.can_see_centre(centre.id):
                raise NotFound("centre", centre_id)
            # a manager keeps their centre's details current; only admins switch centres on
            # and off or change how they are invoiced
            if "active" in changes or "auto_invoice" in changes:
                require_role(principal, action="activate centres or change their invoicing")
            elif "deidentify_at_ingest" in changes:
                require_role(
                    principal, Role.CENTRE_MANAGER, action="change de-identification at ingest"
                )
            else:
                require_role(principal, Role.CENTRE_MANAGER, action="edit centres")
            changed = msgspec.structs.replace(centre, updated_at=self._clock.now(), **changes)
            stored = await uow.centres.update(changed)
            await uow.commit()
        await self._auditor.record(
            principal, "centre.update", "centre", centre_id, centre_id=centre_id
        )
        return stored

    async def deactivate(self, principal: Principal, centre_id: Id) -> Centre:
        return await self.update(principal, centre_id, UpdateCentre(active=False))


def _matches(centre: Centre, where: CentreFilter) -> bool:
    if where.active is not None and centre.active != where.active:
        return False
    return where.name_contains is None or where.name_contains.lower() in centre.name.lower()
