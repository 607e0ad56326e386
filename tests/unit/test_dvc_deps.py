"""dvc.yaml names exactly the code and the params each stage runs on, derived from the imports.

A stage's code deps are its script, every `pipelines/` helper and every module of
`src/predictive_scoring/` the script imports, transitively, including imports inside functions
(and the `__init__` of every package on the way). Imports under ``if TYPE_CHECKING:`` never run
and are left out. A stage's params are the params.yaml sections (or single keys) its scripts and
modules read from ``load_params(...)``. A missing dep means `dvc repro` keeps a stale model after
a code change; a dep listed but never imported re-runs a stage for nothing. Both fail here with
the line to change in dvc.yaml.
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from predictive_scoring.config import Params

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "predictive_scoring"
SRC = "src"
PIPELINES = "pipelines"


# --- imports ----------------------------------------------------------------------------------
def module_file(root: Path, module: str) -> Path | None:
    """The file of a package module (``a.b`` -> src/a/b.py or src/a/b/__init__.py), or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root / SRC / Path(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def helper_file(root: Path, module: str) -> Path | None:
    """A `pipelines/` helper: ``pipelines.x`` or plain ``x`` (the script's own folder is on
    sys.path when DVC runs ``python pipelines/<stage>.py``)."""
    parts = module.split(".")
    if parts[0] == PIPELINES:
        parts = parts[1:]
    if not parts:
        return None
    base = root / PIPELINES / Path(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(root: Path, path: Path) -> str:
    """The dotted package a file's relative imports start from (a/b.py and a/__init__.py: a)."""
    return ".".join(path.relative_to(root / SRC).parts[:-1])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(root: Path, path: Path) -> set[str]:
    """Dotted names of the modules a file imports, at top level or in functions.

    ``import a.b.c`` and ``from a.b.c import x`` import a, a.b and a.b.c; ``x`` too when it is
    a submodule. Relative imports are resolved against the file's package.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    in_package = path.is_relative_to(root / SRC)
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if not in_package:
                    raise AssertionError(f"{path}: relative import outside the package")
                package = _package_of(root, path).split(".")
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [
                f"{base}.{alias.name}" for alias in node.names if alias.name != "*"
            ]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


@dataclass
class Closure:
    """Files a script runs, each with the import chain that first reached it."""

    files: dict[Path, list[str]] = field(default_factory=dict)


def import_closure(root: Path, script: Path) -> Closure:
    """The script, its `pipelines/` helpers and the package modules it imports, transitively."""
    closure = Closure(files={script: [script.relative_to(root).as_posix()]})
    queue = [script]
    while queue:
        current = queue.pop(0)
        for module in sorted(imported_modules(root, current)):
            found = module_file(root, module)
            if found is None and not current.is_relative_to(root / SRC):
                found = helper_file(root, module)
            if found is None or found in closure.files:
                continue
            closure.files[found] = [*closure.files[current], module]
            queue.append(found)
    return closure


# --- params -----------------------------------------------------------------------------------
SECTIONS: dict[str, set[str]] = {
    name: set(info.annotation.model_fields)  # type: ignore[union-attr]
    for name, info in Params.model_fields.items()
}


def _is_load_params(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "load_params")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "load_params")
    )


def params_read(path: Path) -> set[str]:
    """params.yaml entries a file reads: ``section`` or ``section.key``.

    Follows names bound to ``load_params(...)`` (``params.data.dir`` reads ``data.dir``,
    ``params.data`` passed on reads ``data``) and to ``load_params(...).section`` (the whole
    section). A params object used any other way cannot be followed and fails the test.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    roots: set[str] = set()
    reads: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _is_load_params(node)):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute):  # load_params(...).section
            reads.add(parent.attr)
            continue
        target = None
        if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
            target = parent.targets[0]
        elif isinstance(parent, ast.AnnAssign):
            target = parent.target
        if not isinstance(target, ast.Name):
            raise AssertionError(
                f"{path}:{node.lineno}: load_params(...) used in a way this test cannot "
                "follow; bind it to a name or read one section from it"
            )
        roots.add(target.id)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and node.id in roots):
            continue
        if isinstance(node.ctx, ast.Store):
            continue
        parent = parents.get(node)
        if not isinstance(parent, ast.Attribute) or parent.attr not in SECTIONS:
            raise AssertionError(
                f"{path}:{node.lineno}: the whole params object is used here, so the sections "
                "it reads cannot be derived; pass the sections it needs instead"
            )
        section = parent.attr
        grand = parents.get(parent)
        if isinstance(grand, ast.Attribute) and grand.attr in SECTIONS[section]:
            reads.add(f"{section}.{grand.attr}")
        else:
            reads.add(section)
    return reads


# --- dvc.yaml ---------------------------------------------------------------------------------
@dataclass
class Stage:
    name: str
    script: Path
    deps: list[str]
    params: list[str]


def _entries(items: list[object]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(str(k) for k in item)  # `- file.yaml: [keys]` or `- path: {opts}`
    return out


def dvc_stages(root: Path) -> list[Stage]:
    """The python stages of dvc.yaml: the script named in ``cmd``, deps and params."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())
    stages = []
    for name, stage in spec["stages"].items():
        scripts = [t for t in shlex.split(stage["cmd"]) if t.endswith(".py")]
        if not scripts:
            continue
        params: list[str] = []
        for item in stage.get("params", []):
            if isinstance(item, dict):  # `- other.yaml: [keys]`
                for keys in item.values():
                    params.extend(keys or [])
            else:
                params.append(str(item))
        stages.append(
            Stage(
                name=name,
                script=root / scripts[0],
                deps=_entries(stage.get("deps", [])),
                params=params,
            )
        )
    return stages


def code_problems(root: Path, stage: Stage) -> list[str]:
    """What dvc.yaml gets wrong about a stage's code deps, each with the line to change."""
    closure = import_closure(root, stage.script)
    expected = {p.relative_to(root).as_posix(): chain for p, chain in closure.files.items()}
    listed = {
        d for d in stage.deps if d.startswith((f"{SRC}/", f"{PIPELINES}/")) and "${" not in d
    }
    problems = [
        f'add the line "      - {path}" to stages.{stage.name}.deps in dvc.yaml '
        f"(imported by {' -> '.join(expected[path])})"
        for path in sorted(set(expected) - listed)
    ]
    problems += [
        f'remove the line "      - {path}" from stages.{stage.name}.deps in dvc.yaml '
        f"({stage.script.relative_to(root).as_posix()} never imports it)"
        for path in sorted(listed - set(expected))
    ]
    return problems


def params_problems(root: Path, stage: Stage) -> list[str]:
    """What dvc.yaml gets wrong about a stage's params, each with the line to change."""
    reads: dict[str, str] = {}
    for path in import_closure(root, stage.script).files:
        for entry in params_read(path):
            reads.setdefault(entry, path.relative_to(root).as_posix())
    listed = set(stage.params)
    problems = []
    for entry, where in sorted(reads.items()):
        section = entry.split(".")[0]
        if entry in listed or section in listed:
            continue
        problems.append(
            f'add the line "      - {entry}" to stages.{stage.name}.params in dvc.yaml '
            f"({where} reads params.{entry})"
        )
    read_sections = {e.split(".")[0] for e in reads}
    for entry in sorted(listed):
        used = entry in reads if "." in entry else entry in read_sections
        if not used:
            problems.append(
                f'remove the line "      - {entry}" from stages.{stage.name}.params in dvc.yaml '
                f"(no code of the stage reads params.{entry})"
            )
    return problems


# --- the project's own dvc.yaml ---------------------------------------------------------------
STAGES = dvc_stages(ROOT)


def test_every_stage_runs_a_script() -> None:
    names = {s.name for s in STAGES}
    assert {"train", "thresholds", "evaluate", "export"} <= names
    for stage in STAGES:
        assert stage.script.is_file(), f"stage '{stage.name}': {stage.script} not found"


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_stage_deps_are_exactly_the_code_it_imports(stage: Stage) -> None:
    problems = code_problems(ROOT, stage)
    assert not problems, f"dvc.yaml stage '{stage.name}':\n" + "\n".join(problems)


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_stage_params_are_exactly_the_sections_it_reads(stage: Stage) -> None:
    problems = params_problems(ROOT, stage)
    assert not problems, f"dvc.yaml stage '{stage.name}':\n" + "\n".join(problems)


# --- the derivation itself, on a tiny project -------------------------------------------------
def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


TINY = {
    "src/predictive_scoring/__init__.py": "from predictive_scoring.errors import E\n",
    "src/predictive_scoring/errors.py": "class E(Exception): ...\n",
    "src/predictive_scoring/config.py": "def load_params(p): ...\n",
    "src/predictive_scoring/a.py": "from . import b\nfrom .sub import c\n",
    "src/predictive_scoring/b.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from predictive_scoring import typed_only\n"
        "def f():\n    import predictive_scoring.lazy\n"
    ),
    "src/predictive_scoring/lazy.py": "",
    "src/predictive_scoring/typed_only.py": "",
    "src/predictive_scoring/unused.py": "",
    "src/predictive_scoring/sub/__init__.py": "",
    "src/predictive_scoring/sub/c.py": "from ..errors import E\n",
    "pipelines/_helper.py": "from predictive_scoring import a\n",
    "pipelines/stage.py": (
        "import _helper\nfrom predictive_scoring.config import load_params\n"
        "params = load_params('params.yaml')\n"
        "x = params.train\ny = params.data.dir\n"
        "z = load_params('params.yaml').export\n"
    ),
}


def test_closure_follows_relative_lazy_and_helper_imports(tmp_path: Path) -> None:
    _write(tmp_path, TINY)
    closure = import_closure(tmp_path, tmp_path / "pipelines/stage.py")
    got = {p.relative_to(tmp_path).as_posix() for p in closure.files}
    assert got == {
        "pipelines/stage.py",
        "pipelines/_helper.py",
        "src/predictive_scoring/__init__.py",
        "src/predictive_scoring/errors.py",
        "src/predictive_scoring/config.py",
        "src/predictive_scoring/a.py",
        "src/predictive_scoring/b.py",
        "src/predictive_scoring/lazy.py",
        "src/predictive_scoring/sub/__init__.py",
        "src/predictive_scoring/sub/c.py",
    }
    chain = closure.files[tmp_path / "src/predictive_scoring/lazy.py"]
    assert chain[0] == "pipelines/stage.py" and chain[-1] == "predictive_scoring.lazy"


def test_params_reads_sections_and_keys(tmp_path: Path) -> None:
    _write(tmp_path, TINY)
    assert params_read(tmp_path / "pipelines/stage.py") == {"train", "data.dir", "export"}
    (tmp_path / "pipelines/whole.py").write_text(
        "from predictive_scoring.config import load_params\n"
        "params = load_params('p')\nrun(params)\n"
    )
    with pytest.raises(AssertionError, match="whole params object"):
        params_read(tmp_path / "pipelines/whole.py")


def test_problems_name_the_stage_and_the_line_to_change(tmp_path: Path) -> None:
    _write(tmp_path, TINY)
    stage = Stage(
        name="stage",
        script=tmp_path / "pipelines/stage.py",
        deps=[
            "pipelines/stage.py",
            "pipelines/_helper.py",
            "src/predictive_scoring/__init__.py",
            "src/predictive_scoring/errors.py",
            "src/predictive_scoring/config.py",
            "src/predictive_scoring/a.py",
            "src/predictive_scoring/b.py",
            "src/predictive_scoring/sub/__init__.py",
            "src/predictive_scoring/sub/c.py",
            "src/predictive_scoring/unused.py",
            "data/features",
        ],
        params=["train", "data", "promote"],
    )
    assert code_problems(tmp_path, stage) == [
        'add the line "      - src/predictive_scoring/lazy.py" to stages.stage.deps in dvc.yaml '
        "(imported by pipelines/stage.py -> _helper -> predictive_scoring.a -> "
        "predictive_scoring.b -> predictive_scoring.lazy)",
        'remove the line "      - src/predictive_scoring/unused.py" from stages.stage.deps in '
        "dvc.yaml (pipelines/stage.py never imports it)",
    ]
    assert params_problems(tmp_path, stage) == [
        'add the line "      - export" to stages.stage.params in dvc.yaml '
        "(pipelines/stage.py reads params.export)",
        'remove the line "      - promote" from stages.stage.params in dvc.yaml '
        "(no code of the stage reads params.promote)",
    ]
