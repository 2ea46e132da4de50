"""Use cases that move a study along its workflow: assigning it and opening it for review.

``uploaded -> assigned -> in_review -> report_generated -> verified``. Assigning and opening
happen here; creating and verifying reports (:mod:`domain.services.reports`) take the rest of
the path. Nothing else sets a study's status. Another centre's study is not found.
"""

from __future__ import annotations

import msgspec

from domain.errors import Conflict, InvalidInput, PermissionDenied
from domain.events import StudyAssigned
from domain.identity import Principal, PrincipalKind, Role
from domain.ports.services import Clock
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.access import visible
from domain.services.auditing import Auditor
from domain.services.studies import require_study_writer
from domain.studies import Study, StudyStatus
from domain.values import Id


class AssignStudy(msgspec.Struct, frozen=True, kw_only=True):
    radiologist_id: Id


async def visible_study(uow: UnitOfWork, principal: Principal, study_id: Id) -> Study:
    """The study, or ``NotFound`` when it does not exist or is another centre's."""
    study = visible(principal, await uow.studies.get(study_id), "study", study_id)
    return study


def require_radiologist(principal: Principal, *, action: str) -> None:
    """Clinical acts need a signed-in radiologist: not an admin, not an API key."""
    if principal.kind is not PrincipalKind.USER or principal.role is not Role.RADIOLOGIST:
        raise PermissionDenied(f"only a radiologist may {action}")


def require_assigned(principal: Principal, study: Study, *, action: str) -> None:
    """The radiologist the study is assigned to (or an admin, where ``action`` allows one)."""
    if principal.is_admin:
        return
    require_radiologist(principal, action=action)
    if study.assigned_radiologist_id != principal.id:
        raise PermissionDenied(
            f"the study is not assigned to you; only its radiologist may {action}"
        )


class WorkflowService:
    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock, auditor: Auditor) -> None:
        self._uow = uow
        self._clock = clock
        self._auditor = auditor

    async def assign(self, principal: Principal, study_id: Id, command: AssignStudy) -> Study:
        """Assign (or reassign) a study to an active radiologist of its centre.

        Technicians and managers of the centre and admins assign; an API key needs
        ``studies:write``. A study being reported or verified cannot be reassigned.
        """
        async with self._uow() as uow:
            study = await visible_study(uow, principal, study_id)
            require_study_writer(principal, "assign studies")
            radiologist = await uow.users.get(command.radiologist_id)
            if (
                radiologist is None
                or radiologist.role is not Role.RADIOLOGIST
                or not radiologist.active
                or radiologist.centre_id != study.centre_id
            ):
                raise InvalidInput(
                    f"user {command.radiologist_id} is not an active radiologist of the "
                    "study's centre"
                )
            now = self._clock.now()
            stored = await uow.studies.update(study.assign(radiologist.id, at=now))
            uow.collect(
                StudyAssigned(
                    at=now,
                    centre_id=study.centre_id,
                    study_id=study.id,
                    radiologist_id=radiologist.id,
                )
            )
            await uow.commit()
        await self._auditor.record(
            principal,
            "study.assign",
            "study",
            study.id,
            centre_id=study.centre_id,
            detail=f"radiologist {radiologist.id}",
        )
        return stored

    async def open_review(self, principal: Principal, study_id: Id) -> Study:
        """The assigned radiologist starts reviewing the study (``assigned -> in_review``)."""
        async with self._uow() as uow:
            study = await visible_study(uow, principal, study_id)
            require_assigned(principal, study, action="open the study for review")
            if study.status is StudyStatus.REPORT_GENERATED:
                # the table allows going back to review, but only writing or verifying the
                # report moves a study on from there; reopening would strand the draft
                raise Conflict("the study already has a draft report; edit or verify it")
            stored = await uow.studies.update(
                study.move_to(StudyStatus.IN_REVIEW, at=self._clock.now())
            )
            await uow.commit()
        await self._auditor.record(
            principal, "study.review", "study", study.id, centre_id=study.centre_id
        )
        return stored
