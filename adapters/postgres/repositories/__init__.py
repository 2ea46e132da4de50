"""One PostgreSQL repository per aggregate, each working on the unit of work's connection."""

from adapters.postgres.repositories.annotations import (
    PostgresAnnotationRepository,
    PostgresMeasurementRepository,
)
from adapters.postgres.repositories.billing import (
    PostgresInvoiceRepository,
    PostgresPriceListRepository,
)
from adapters.postgres.repositories.identity import (
    PostgresApiKeyRepository,
    PostgresCentreRepository,
    PostgresUserRepository,
)
from adapters.postgres.repositories.jobs import (
    PostgresAnalysisResultRepository,
    PostgresJobRepository,
)
from adapters.postgres.repositories.reports import PostgresReportRepository
from adapters.postgres.repositories.studies import (
    PostgresInstanceRepository,
    PostgresSeriesRepository,
    PostgresStudyRepository,
)

__all__ = [
    "PostgresAnalysisResultRepository",
    "PostgresAnnotationRepository",
    "PostgresApiKeyRepository",
    "PostgresCentreRepository",
    "PostgresInstanceRepository",
    "PostgresInvoiceRepository",
    "PostgresJobRepository",
    "PostgresMeasurementRepository",
    "PostgresPriceListRepository",
    "PostgresReportRepository",
    "PostgresSeriesRepository",
    "PostgresStudyRepository",
    "PostgresUserRepository",
]
