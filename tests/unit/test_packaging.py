"""What the package declares (its installed metadata, from pyproject.toml) is what it imports: no unused
runtime dependency, no undeclared one, and the emulator's server stack only in its extra."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "airflow_provider_xcompliance"
REQUIREMENTS = [Requirement(r) for r in requires("airflow-provider-xcompliance") or []]
# Distributions whose import name is not their own name.
MODULE_OF = {"apache-airflow": "airflow", "universal-pathlib": "upath"}


def declared(extra: str | None = None) -> list[Requirement]:
    """The requirements of one extra, or the runtime ones."""
    if extra is None:
        return [r for r in REQUIREMENTS if r.marker is None]
    return [r for r in REQUIREMENTS if r.marker is not None and r.marker.evaluate({"extra": extra})]


def declared_modules(extra: str | None = None) -> set[str]:
    names = (canonicalize_name(r.name) for r in declared(extra))
    return {MODULE_OF.get(name, name) for name in names}


def imported_modules(files: list[Path]) -> set[str]:
    """Top-level third-party modules the files import (anywhere, lazily too)."""
    modules: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"__future__", "airflow_provider_xcompliance"}


EMULATOR_FILES = sorted((PACKAGE / "emulator").glob("*.py"))
CORE_FILES = sorted(set(PACKAGE.rglob("*.py")) - set(EMULATOR_FILES))


def test_every_runtime_dependency_is_imported_and_every_import_declared() -> None:
    runtime, emulator_extra = declared_modules(), declared_modules("emulator")

    assert imported_modules(CORE_FILES) | imported_modules(EMULATOR_FILES) - emulator_extra == runtime
    assert imported_modules(EMULATOR_FILES) <= runtime | emulator_extra
    assert not imported_modules(CORE_FILES) & emulator_extra


def test_the_dev_extra_brings_the_emulator() -> None:
    assert any(r.name == "airflow-provider-xcompliance" and "emulator" in r.extras for r in declared("dev"))


def run_without_server_stack(code: str) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a fresh interpreter where starlette and uvicorn cannot be imported."""
    blocked = "import sys\nsys.modules['starlette'] = None\nsys.modules['uvicorn'] = None\n"
    return subprocess.run(
        [sys.executable, "-c", blocked + code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )


def test_no_provider_module_imports_the_emulator() -> None:
    """Checked in the source: Airflow 3.0 imports starlette itself, so blocking it at run time shows nil."""
    for file in CORE_FILES:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
                assert not any(n.startswith("airflow_provider_xcompliance.emulator") for n in names), file


def test_the_emulator_names_its_extra_when_the_server_stack_is_missing() -> None:
    completed = run_without_server_stack("import airflow_provider_xcompliance.emulator")

    assert completed.returncode != 0
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ModuleNotFoundError: The X API emulator needs starlette"), last_line
    assert "pip install 'airflow-provider-xcompliance[emulator]'" in last_line
