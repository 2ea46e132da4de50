"""The dependency rule is law: these tests fail the run when a layer imports what it must not."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_IN_DOMAIN = {"msgspec", "numpy", "scipy", "domain", "__future__"}


def test_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    finished = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_domain_imports_only_the_standard_library_msgspec_and_numpy():
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for path in (ROOT / "domain").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top not in ALLOWED_IN_DOMAIN:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "\n".join(offenders)


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def test_the_domain_type_checks_under_mypy_strict():
    finished = subprocess.run(
        [_tool("mypy"), "--config-file", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr


def test_ruff_finds_nothing_to_fix():
    for command in (["check", "."], ["format", "--check", "."]):
        finished = subprocess.run(
            [_tool("ruff"), *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr
