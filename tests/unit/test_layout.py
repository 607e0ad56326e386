"""The test tree's layout: no module imports a test module or a conftest.

pytest imports each test module and conftest itself, under a name that depends on the import
mode and on which folders are packages; importing one again from elsewhere loads a second copy
(its fixtures and module state twice) or the wrong ``conftest``. Shared helpers live in plain
modules (``tests/servers.py``, ``tests/scorers.py``, ...) or in fixtures.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(name: str) -> bool:
    return name == "conftest" or name.startswith("test_")


def forbidden_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) for every import of a ``test_*`` module or a ``conftest`` in ``source``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, alias.name)
                for alias in node.names
                if any(_is_test_module(part) for part in alias.name.split("."))
            ]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if any(_is_test_module(part) for part in (node.module or "").split(".")):
                found.append((node.lineno, module))
            else:  # `from package import test_x`: the names may be modules
                found += [
                    (node.lineno, f"{module}.{alias.name}" if node.module else module + alias.name)
                    for alias in node.names
                    if _is_test_module(alias.name)
                ]
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from conftest import API_KEY", [(1, "conftest")]),
        ("from .conftest import run", [(1, ".conftest")]),
        ("from tests.api.conftest import build_scorer", [(1, "tests.api.conftest")]),
        ("from tests.unit.test_features import LEVELS", [(1, "tests.unit.test_features")]),
        ("import tests.unit.test_features as tf", [(1, "tests.unit.test_features")]),
        ("import conftest", [(1, "conftest")]),
        ("from . import test_pipeline", [(1, ".test_pipeline")]),
        ("from .. import conftest", [(1, "..conftest")]),
        ("from tests.unit import conftest, helpers", [(1, "tests.unit.conftest")]),
        ("def f():\n    from conftest import X\n", [(2, "conftest")]),
        ("from tests.servers import uvicorn_service\nimport pytest\nimport testing", []),
        ("from predictive_scoring.scoring import Scorer\nfrom hypothesis import given", []),
    ],
)
def test_the_check_finds_every_form_of_import(
    source: str, expected: list[tuple[int, str]]
) -> None:
    assert forbidden_imports(source) == expected


def test_no_module_imports_a_test_module_or_a_conftest() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 20  # the walk found the tree
    problems = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {module}"
        for path in files
        for line, module in forbidden_imports(path.read_text())
    ]
    assert not problems, (
        "test modules and conftest.py are pytest's to import; move what is shared into a plain "
        "helper module under tests/ (tests/scorers.py, tests/service_cases.py, "
        "tests/projects.py, tests/levels.py, tests/servers.py) or a fixture:\n"
        + "\n".join(problems)
    )
