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
MODULE_OF = {"apache-airflow": "airflow"}
# Imported only where an extra's provider brought it (the OpenLineage provider brings the openlineage client).
OPTIONAL = {"openlineage"}


def declared(extra: str | None = None) -> list[Requirement]:
    """The requirements of one extra, or the runtime ones."""
    if extra is None:
        return [r for r in REQUIREMENTS if r.marker is None]
    return [r for r in REQUIREMENTS if r.marker is not None and r.marker.evaluate({"extra": extra})]


def module_of(distribution: str) -> str:
    name = canonicalize_name(distribution)
    if name.startswith(
        "apache-airflow-providers-"
    ):  # apache-airflow-providers-common-sql: airflow.providers.common.sql
        return "airflow.providers." + name.removeprefix("apache-airflow-providers-").replace("-", ".")
    return MODULE_OF.get(name, name)


def declared_modules(extra: str | None = None) -> set[str]:
    return {module_of(r.name) for r in declared(extra)}


def imported_modules(files: list[Path]) -> set[str]:
    """Third-party modules the files import (anywhere, lazily too), with every parent package."""
    names: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
    parts = (name.split(".") for name in names)
    modules = {".".join(part[:n]) for part in parts for n in range(1, len(part) + 1)}
    skipped = set(sys.stdlib_module_names) | {"__future__", "airflow_provider_xcompliance"}
    return {module for module in modules if module.split(".")[0] not in skipped}


def top_level(modules: set[str]) -> set[str]:
    return {module.split(".")[0] for module in modules}


EMULATOR_FILES = sorted((PACKAGE / "emulator").glob("*.py"))
CORE_FILES = sorted(set(PACKAGE.rglob("*.py")) - set(EMULATOR_FILES))


def test_every_runtime_dependency_is_imported_and_every_import_declared() -> None:
    runtime, emulator_extra = declared_modules(), declared_modules("emulator")
    core, emulator = imported_modules(CORE_FILES), imported_modules(EMULATOR_FILES)

    assert runtime <= core | emulator
    assert top_level(core) <= top_level(runtime) | OPTIONAL
    assert top_level(emulator) <= top_level(runtime | emulator_extra)
    assert not core & emulator_extra


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
