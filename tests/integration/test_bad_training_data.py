"""Bad training data is refused before it does harm, or read correctly (issue 15, "Bad training
data").

One small project (CSV exports of a generated demo) is reproduced once with the real `dvc repro`.
Each case then corrupts one input table of that project and runs the real stages: `dvc repro
validate featurize` for the cases marked ``dvc`` (DVC's own handling of the outputs is part of
what is tested), and for the others the stages' commands exactly as dvc.yaml states them, one
after the other, which is what DVC runs, without its start-up time. A refused input fails with
one clear line per problem (no traceback) that names the file, and the column and rows where there
are any; models/, mlflow.db and the last good outputs (reports/validation.json, data/features)
are unchanged, byte for byte. An accepted input gives the features the clean export gives, or the
value it holds.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from predictive_scoring.config import GenerateParams
from predictive_scoring.synth import generate_demo
from tests.projects import make_project, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RAW = "data/raw"
TABLES = ("leads", "events", "outcomes")
OVERRIDES: dict[str, dict[str, object]] = {
    "data": {
        "dir": RAW,
        "leads": "leads.csv",
        "events": "events.csv",
        "outcomes": "outcomes.csv",
        "latent": None,
    },
    "train": {"n_estimators": 60, "early_stopping_rounds": 10},
    "thresholds": {"capacity_per_week": 10, "min_recall": 0.8},
}
DEMO = GenerateParams(n_leads=600, events_per_lead=8, months=6, seed=7)
GUARDED = ("models", "mlflow.db", "reports/validation.json", "data/features")

Tables = dict[str, pd.DataFrame]


def _digest(path: Path) -> str:
    """One hash of a file, or of a folder's files with their relative paths."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _csv_tables(folder: Path) -> Tables:
    """The demo's tables with ISO timestamps, as a CRM export writes them."""
    out: Tables = {}
    for name in TABLES:
        frame = pd.read_parquet(folder / f"{name}.parquet")
        for column in frame.columns:
            if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
                frame[column] = frame[column].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        out[name] = frame
    return out


@dataclass
class Project:
    root: Path
    clean: Tables
    features: dict[str, pd.DataFrame]

    def write(self, tables: Tables) -> None:
        for name, frame in tables.items():
            frame.to_csv(self.root / RAW / f"{name}.csv", index=False)

    def path(self, name: str) -> Path:
        return self.root / RAW / f"{name}.csv"

    def guarded(self) -> dict[str, str]:
        return {name: _digest(self.root / name) for name in GUARDED}

    def repro(self, *, dvc: bool) -> tuple[int, str]:
        """Run validate then featurize: through `dvc repro`, or their dvc.yaml commands."""
        if dvc:
            proc = run([sys.executable, "-m", "dvc", "repro", "validate", "featurize"],
                       self.root, check=False)  # fmt: skip
            return proc.returncode, proc.stdout + proc.stderr
        stages = yaml.safe_load((self.root / "dvc.yaml").read_text())["stages"]
        log = ""
        for stage in ("validate", "featurize"):
            argv = shlex.split(stages[stage]["cmd"])
            proc = run([sys.executable, *argv[1:]], self.root, check=False)
            log += proc.stdout + proc.stderr
            if proc.returncode != 0:
                return proc.returncode, log
        return 0, log

    def read_features(self) -> dict[str, pd.DataFrame]:
        return {s: pd.read_parquet(self.root / "data/features" / f"{s}.parquet") for s in SPLITS}


SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The pipeline reproduced once, end to end, on CSV exports of a small demo."""
    root = make_project(tmp_path_factory.mktemp("badtraining"), OVERRIDES)
    generate_demo(root / "demo", DEMO)
    clean = _csv_tables(root / "demo")
    shutil.rmtree(root / "demo")
    (root / RAW).mkdir(parents=True)
    proj = Project(root, clean, {})
    proj.write(clean)
    run([sys.executable, "-m", "dvc", "repro"], root)
    proj.features = proj.read_features()
    yield proj


# --------------------------------------------------------------------------------------------
# The cases: each returns the corrupted tables, or writes bytes itself and returns None


def _drop_column(table: str, column: str) -> Callable[[Tables], Tables]:
    def corrupt(t: Tables) -> Tables:
        return {table: t[table].drop(columns=[column])}

    return corrupt


def _set(table: str, column: str, rows: list[int], value: object) -> Callable[[Tables], Tables]:
    def corrupt(t: Tables) -> Tables:
        frame = t[table].copy()
        frame[column] = frame[column].astype("object")
        frame.loc[rows, column] = value
        return {table: frame}

    return corrupt


def _duplicate_lead(t: Tables) -> Tables:
    leads = t["leads"]
    return {"leads": pd.concat([leads, leads.iloc[[4]]], ignore_index=True)}


def _ghost_events(t: Tables) -> Tables:
    events = t["events"].copy()
    events.loc[[2, 9], "lead_id"] = "L-GHOST"
    return {"events": events}


def _one_class(t: Tables) -> Tables:
    outcomes = t["outcomes"]
    return {"outcomes": outcomes[outcomes["stage"] != "won"]}


def _single_row(t: Tables) -> Tables:
    keep = t["outcomes"]["lead_id"].iloc[0]  # a lead with an outcome: the tables are not empty
    return {
        "leads": t["leads"][t["leads"]["lead_id"] == keep],
        "events": t["events"][t["events"]["lead_id"] == keep],
        "outcomes": t["outcomes"][t["outcomes"]["lead_id"] == keep],
    }


def _outcome_before_creation(t: Tables) -> Tables:
    outcomes = t["outcomes"].copy()
    outcomes.loc[outcomes.index[:3], "ts"] = "1995-01-01T00:00:00Z"
    return {"outcomes": outcomes}


def _won_only_early(t: Tables) -> Tables:
    """No lead created in the last 60% converts: the newest split has no positives."""
    leads, outcomes = t["leads"], t["outcomes"]
    late = leads.sort_values("created_at")["lead_id"].iloc[int(len(leads) * 0.4) :]
    won_late = outcomes["lead_id"].isin(late) & (outcomes["stage"] == "won")
    return {"outcomes": outcomes[~won_late]}


def _mixed_dates(t: Tables) -> Tables:
    leads = t["leads"].copy()
    when = pd.to_datetime(leads["created_at"])
    fmt = ["%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%dT%H:%M:%SZ"]
    leads["created_at"] = [w.strftime(fmt[i % 3]) for i, w in enumerate(when)]
    return {"leads": leads}


def _write_bytes(
    table: str, change: Callable[[bytes], bytes]
) -> Callable[[Tables], Callable[[Path], None]]:
    def corrupt(t: Tables) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            path.write_bytes(change(path.read_bytes()))

        return write

    return corrupt


def _semicolons(path: Path) -> None:
    pd.read_csv(path, dtype=str, keep_default_na=False).to_csv(path, sep=";", index=False)


@dataclass(frozen=True)
class Case:
    """A corruption of one table and what the run must say: ``expect`` None means it passes."""

    name: str
    table: str
    corrupt: Callable[[Tables], object]
    expect: tuple[str, ...] | None  # strings the error line holds besides the file name
    after_write: Callable[[Path], None] | None = None
    dvc: bool = False  # through `dvc repro` (else the stage commands as dvc.yaml states them)
    fails_in: str = "validate"  # the stage that refuses it; the outputs before it are new


LONG = "x" * 100_000
SOME = list(range(40))  # leads given a long or huge value; some of them are featurized
CASES = [
    Case("missing column", "leads", _drop_column("leads", "created_at"),
         ("'created_at'", "is missing"), dvc=True),
    Case("missing id column in events", "events", _drop_column("events", "lead_id"),
         ("'lead_id'", "is missing")),
    Case("text in a timestamp column", "events", _set("events", "ts", [3, 7], "yesterday"),
         ("'ts'", "data row 4", "data row 8")),
    Case("unknown stage", "outcomes", _set("outcomes", "stage", [1], "closed-won"),
         ("'stage'", "closed-won", "data rows 2")),
    Case("duplicate ids", "leads", _duplicate_lead, ("'lead_id'", "more than once")),
    Case("events for unknown leads", "events", _ghost_events, ("'lead_id'", "L-GHOST")),
    Case("empty file", "leads", _write_bytes("leads", lambda b: b""), ("empty",)),
    Case("header only", "leads", _write_bytes("leads", lambda b: b.split(b"\n")[0] + b"\n"),
         ("empty", "no rows")),
    Case("non-UTF-8 bytes", "leads",
         _write_bytes("leads", lambda b: b.replace(b"Manufacturing", b"Manufactur\xe9", 1)),
         ("line", "not utf-8", "data.encoding")),
    Case("NUL bytes", "events",
         _write_bytes("events", lambda b: b.replace(b",web,", b",w\x00b,", 1)),
         ("line", "column 'channel'", "NUL"), dvc=True),
    Case("future timestamps", "events", _set("events", "ts", [5], "2999-01-01T00:00:00Z"),
         ("'ts'", "future", "data row 6")),
    Case("year 0001", "leads", _set("leads", "created_at", [0], "0001-01-01T00:00:00Z"),
         ("'created_at'", "data row 1")),
    Case("epoch numbers as timestamps", "leads", _set("leads", "created_at", [2], "1714000000"),
         ("'created_at'", "data row 3")),
    Case("empty lead id", "leads", _set("leads", "lead_id", [6], ""), ("'lead_id'", "7")),
    Case("one label class", "outcomes", _one_class, ("'stage'", "one class", "won"), dvc=True),
    Case("a single row", "outcomes", _single_row, ("'stage'", "one class")),
    Case("mixed date formats", "leads", _mixed_dates,
         ("'created_at'", "ambiguous", "data row 1"), dvc=True),
    Case("non-numeric values in a numeric column", "leads",
         _set("leads", "employees", [3, 10], "lots"), ("'employees'", "data row 4", "'lots'")),
    Case("a number beyond a float", "leads", _set("leads", "employees", [8], "1" + "0" * 400),
         ("'employees'", "data row 9", "too large")),
    Case("no conversion among the newest leads", "outcomes", _won_only_early,
         ("'stage'", "split", "0 reaching 'won'"), dvc=True, fails_in="featurize"),
    Case("missing outcomes file", "outcomes",
         _write_bytes("outcomes", lambda b: b), ("not found",),
         after_write=lambda p: p.unlink()),
    # Accepted: read as the clean export (or the value given) and featurized.
    Case("wrong separator", "leads", _write_bytes("leads", lambda b: b), None,
         after_write=_semicolons, dvc=True),
    Case("a byte-order mark", "leads", _write_bytes("leads", lambda b: b"\xef\xbb\xbf" + b), None),
    Case("outcomes before creation (a warning)", "outcomes", _outcome_before_creation, None),
    Case("very long strings", "leads", _set("leads", "industry", SOME, LONG), None),
    Case("huge numbers", "leads", _set("leads", "employees", SOME, "1e300"), None),
]  # fmt: skip


@pytest.fixture
def clean_inputs(project: Project) -> Iterator[Project]:
    """The clean export back in place after each case."""
    yield project
    project.write(project.clean)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_training_data_is_refused_or_read_correctly(clean_inputs: Project, case: Case) -> None:
    project = clean_inputs
    before = project.guarded()
    corrupted = case.corrupt(project.clean)
    if isinstance(corrupted, dict):
        project.write(corrupted)
    else:
        project.write({case.table: project.clean[case.table]})
        assert callable(corrupted)
        corrupted(project.path(case.table))
    if case.after_write is not None:
        case.after_write(project.path(case.table))
    code, log = project.repro(dvc=case.dvc)
    assert "Traceback" not in log, log
    if case.expect is None:
        assert code == 0, log
        _check_accepted(project, case)
        return
    assert code != 0, f"{case.name}: accepted\n{log}"
    assert f"ERROR pipelines.{case.fails_in}:" in log, log
    problems = _problem_lines(log)
    named = [line for line in problems if f"{case.table}.csv" in line]
    assert any(all(text in line for text in case.expect) for line in named), (
        f"no line names {case.table}.csv and {case.expect}:\n" + "\n".join(problems)
    )
    after = project.guarded()
    if case.fails_in == "featurize":  # validate passed: its report is the new last good one
        del before["reports/validation.json"], after["reports/validation.json"]
    assert after == before, "a refused input changed models/, mlflow.db or outputs"


def _problem_lines(log: str) -> list[str]:
    """The stage's error: its one ERROR line, or the problem lines listed under it."""
    lines = log.splitlines()
    at = [i for i, line in enumerate(lines) if " ERROR pipelines." in line]
    assert len(at) == 1, log
    head = lines[at[0]]
    if not head.endswith("problems:"):
        return [head]
    listed = []
    for line in lines[at[0] + 1 :]:
        if not line.startswith("  - "):
            break
        listed.append(line)
    assert listed, log
    return listed


def _check_accepted(project: Project, case: Case) -> None:
    features = project.read_features()
    if case.name in ("wrong separator", "a byte-order mark"):
        for split in SPLITS:
            pd.testing.assert_frame_equal(features[split], project.features[split])
        return
    every = pd.concat(features.values(), ignore_index=True)
    rows = every[every["lead_id"].isin(project.clean["leads"]["lead_id"].iloc[SOME])]
    assert len(rows), "none of the changed leads was featurized"
    if case.name == "very long strings":
        assert (rows["industry"] == LONG).all()
    elif case.name == "huge numbers":
        assert (rows["employees"] == 1e300).all()
    else:
        report = (project.root / "reports/validation.json").read_text()
        assert "before their lead's creation" in report
