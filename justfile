# Hounsfield: `just serve` runs the platform on the embedded default, `just test` runs the tests.
# Both create the virtual environment and install the project the first time.

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
bin := venv / "bin"

# list the recipes
default:
    @just --list

# create .venv and install the project (again only when pyproject.toml changed)
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    stamp="{{venv}}/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ -f "$stamp" ]; then exit 0; fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "Hounsfield needs Python 3.11 or newer (python3 is $(python3 -V))" >&2; exit 1; }
    [ -x "{{bin}}/python" ] || python3 -m venv "{{venv}}"
    "{{bin}}/python" -m pip install --quiet --upgrade pip
    "{{bin}}/python" -m pip install --quiet -e '.[dev]'
    rm -f "{{venv}}"/.installed-*
    touch "$stamp"

# run the API (and, without a broker, the in-process job workers) on the embedded default or the configured services
serve *args: setup
    {{bin}}/hounsfield serve {{args}}

# run the test suite (pytest arguments pass through)
test *args: setup
    {{bin}}/pytest {{args}}

# ruff, mypy --strict on the domain, and the import-linter contracts
lint: setup
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
    {{bin}}/mypy
    {{bin}}/lint-imports --no-cache

# apply database migrations to the configured (or embedded) database
migrate: setup
    {{bin}}/hounsfield migrate

# run the benchmarks and write docs/benchmarks.md
bench: setup
    {{bin}}/python -m tests.benchmarks

# run queue workers against HOUNSFIELD_BROKER_URL and HOUNSFIELD_DATABASE_URL (args: --processes N --threads M --grace S)
worker *args: setup
    {{bin}}/hounsfield worker {{args}}

# retrain the demo model on synthetic phantoms and export it (ONNX, TorchScript, manifest); args go to `train`
export-model *args: setup
    {{bin}}/python -m model_export train {{args}}
    {{bin}}/python -m model_export export --docs docs/models.md
