"""Shared fixtures live in tests/fixtures/, one module per real service they start or reach."""

from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
]

# Property tests check behaviour, not speed: on a loaded 2-core CI machine a slow example is
# not a failure (timings belong to `just bench`).
settings.register_profile("hounsfield", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hounsfield")
