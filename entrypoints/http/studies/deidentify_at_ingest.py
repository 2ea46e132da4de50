"""De-identification at ingest, for centres that turn it on (``deidentify_at_ingest``).

Every DICOM file of an upload into such a centre is de-identified under the centre's plan
(the same new UIDs and date offset for every upload) before it is read and stored, so the file
as received is never kept. NIfTI, PNG and JPEG files carry no DICOM header and pass through.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.images.formats import detect_format
from domain.deidentification import DeidentificationPlan
from domain.errors import InvalidInput
from domain.imaging import ImageFormat
from domain.services.deidentification import DeidentificationService
from domain.services.uploads import StudyOverrides
from domain.values import Id

Prepare = Callable[[bytes], bytes]
_PATIENT_FIELDS = ("patient_name", "patient_id", "patient_age", "patient_sex")


async def ingest_preparer(service: DeidentificationService, centre_id: Id) -> Prepare | None:
    """What to do to each uploaded file's bytes before reading it, or None (store as sent)."""
    plan = await service.plan_for_upload(centre_id)
    if plan is None:
        return None

    def prepare(data: bytes, plan: DeidentificationPlan = plan) -> bytes:
        if detect_format(data) in (ImageFormat.NIFTI, ImageFormat.PNG, ImageFormat.JPEG):
            return data
        return service.deidentify_upload(data, plan)

    return prepare


def refuse_patient_fields(prepare: Prepare | None, overrides: StudyOverrides) -> None:
    """A de-identifying centre does not take patient details alongside the files."""
    given = [name for name in _PATIENT_FIELDS if getattr(overrides, name) is not None]
    if prepare is not None and given:
        raise InvalidInput(f"this centre de-identifies uploads; leave out {', '.join(given)}")
