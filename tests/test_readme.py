"""The README's module map names every module of the package, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "airflow_provider_xcompliance"
MAP_HEADING = "### Module map"


def map_entries(readme: str) -> list[str]:
    """The modules named in the first column of the table under the module map's heading."""
    section = readme.split(MAP_HEADING, 1)[1]
    rows = re.search(r"^\|.*?(?=^[^|])", section.lstrip("\n"), re.MULTILINE | re.DOTALL)
    assert rows is not None, f"no table under {MAP_HEADING!r}"
    first_cells = [line.split("|")[1] for line in rows.group(0).splitlines()[2:]]
    return [name for cell in first_cells for name in re.findall(r"`([^`]+)`", cell)]


def tree_modules(package: Path) -> set[str]:
    """Every module, as the map names it: ``ids/text.py``. A subpackage whose ``__init__.py`` holds code is a
    module of its own (``ids/``), one with an empty ``__init__.py`` only a folder; the root's is
    ``__init__.py``."""
    names = set()
    for file in package.rglob("*.py"):
        relative = file.relative_to(package)
        if relative.name != "__init__.py":
            names.add(relative.as_posix())
        elif file.read_text().strip():
            names.add("__init__.py" if relative.parent == Path() else f"{relative.parent.as_posix()}/")
    return names


def test_the_module_map_matches_the_tree() -> None:
    entries = map_entries((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    tree = tree_modules(PACKAGE)

    assert sorted(set(tree) - set(entries)) == [], "modules missing from the README's module map"
    assert sorted(set(entries) - tree) == [], "the README's module map names modules that do not exist"
    assert len(entries) == len(set(entries)), "a module is named twice in the README's module map"


def test_the_map_reader_sees_a_missing_and_a_stale_row(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    files = {"__init__.py": '"""Root."""', "a.py": "", "sub/__init__.py": "", "sub/b.py": ""}
    for name, text in files.items():
        (tmp_path / "pkg" / name).write_text(text)
    readme = f"{MAP_HEADING}\n\nIntro.\n\n| module | does |\n|---|---|\n| `a.py`, `gone.py` | x |\n\nAfter.\n"

    assert map_entries(readme) == ["a.py", "gone.py"]
    assert tree_modules(tmp_path / "pkg") == {"__init__.py", "a.py", "sub/b.py"}
