"""Shared fixtures live in tests/fixtures/, one module per real service they start or reach."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.postgres",
    "tests.fixtures.s3",
]
