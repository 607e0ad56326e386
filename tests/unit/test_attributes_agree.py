"""Training/serving skew audit: every path turns a lead attribute into the same feature values.

Each path is driven the way production drives it, with the Python type production hands it:

* ``train_csv``     ``schema.load_raw`` on a CSV leads export (every cell is text, ``read_table``),
                    then what ``featurize_dataset`` and ``train_model`` do: ``featurize_expr`` on
                    DuckDB, ``category_levels`` and ``encode_frame``.
* ``train_parquet`` the same on a Parquet export, where a number or boolean keeps its type.
* ``pyfunc``        ``scoring.batch_from_nested`` on a pandas frame (the MLflow pyfunc).
* ``file``          ``filescore.read_any`` on a CSV (here of one lead, so a column of one value),
                    ``score_files``' ``astype(object).where(notna, None)``, ``batch_from_frames``.
* ``serve``         ``LeadIn`` validated like FastAPI does, ``convert.to_lead_input`` with the
                    model's numeric inputs, then ``Scorer.to_batch``.
* ``lean``          ``lean.parse_leads`` on the JSON body: None (decline) or the serve features.

Online paths run ``Scorer.executor.transform``; all encode categories with the levels training
found (the whole corpus), read back as level texts. No mocks: the real functions on real files.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from tests.api.conftest import build_scorer
from tests.unit.test_features import LEVELS

from predictive_scoring.batch import connect_duckdb, featurize_expr
from predictive_scoring.config import DataParams
from predictive_scoring.dataset import _fetch_pandas
from predictive_scoring.features import FeatureDefinition, build_definition
from predictive_scoring.filescore import read_any
from predictive_scoring.online import LeadBatch
from predictive_scoring.schema import load_raw
from predictive_scoring.scoring import Scorer, batch_from_frames, batch_from_nested
from predictive_scoring.serve.convert import RequestProblem, to_lead_input
from predictive_scoring.serve.lean import parse_leads
from predictive_scoring.serve.schemas import LeadIn
from predictive_scoring.serve.settings import Settings
from predictive_scoring.serve.state import ModelHandle
from predictive_scoring.train import category_levels, encode_frame

REJECTED = "rejected"
NOT_APPLICABLE = "n/a"  # train_parquet: texts and missing values are the CSV's business
Features = dict[str, object]  # feature -> level text or number; None when missing
Result = Features | str  # or REJECTED / NOT_APPLICABLE

NOW = 1_700_000_000
FEATURES = {
    "industry": ("industry",),
    "employees": ("employees", "employees_band"),
    "job_title": ("title_seniority", "title_function"),
    "email": ("email_is_free",),
}
FILLER = {"industry": "software", "employees": 40, "job_title": "CFO", "email": "x@acme.io"}
SETTINGS = Settings(_env_file=None, allow_anonymous=True)
DATA = DataParams(
    format="flat",
    dir=".",
    leads="leads.csv",
    events=None,
    outcomes=None,
    latent=None,
    created_column=None,
    label_column="converted",
    categorical=["industry"],
    numeric=["employees"],
)


def _xfail(differs: str) -> list[Any]:
    return [pytest.mark.xfail(strict=True, reason=differs)] if differs else []


def _case(field: str, value: Any, differs: str = "") -> Any:
    return pytest.param(field, value, id=f"{field}={value!r}", marks=_xfail(differs))


CASES = [
    _case("industry", "software"),
    _case("industry", "Software"),
    _case("industry", " software "),
    _case("industry", ""),
    _case("industry", None),
    _case("industry", 7),
    _case(
        "industry",
        7.0,
        "by type, not by path: the CSV cell '7.0' is text and stays '7.0' (training and file "
        "scorer alike); the number 7.0 (Parquet, JSON) is '7' on every path",
    ),
    _case("industry", "7"),
    _case("industry", "007"),
    _case("industry", True),
    _case("industry", "true"),
    _case("industry", "None"),
    _case("industry", "NaN"),
    _case("employees", 250),
    _case("employees", 250.0),
    _case("employees", "250"),
    _case("employees", " 250 "),
    _case("employees", "2.5e2"),
    _case("employees", 10.5),
    _case("employees", ""),  # serve refuses: fine
    _case("employees", "NaN"),  # serve refuses: fine
    _case("employees", "inf"),  # serve refuses: fine
    _case("employees", -5),
    _case(
        "employees",
        True,
        "by type, not by path: the CSV text 'True' is no number (training and file scorer: "
        "missing); the boolean True (Parquet, JSON) is 1.0 on every path",
    ),
    _case("employees", None),
    _case("employees", "abc"),  # serve refuses: fine
    _case("employees", "1_000"),
    _case("job_title", "VP of Marketing"),
    _case("job_title", "  vp, MARKETING  "),
    _case("job_title", "Sr. Software Eng."),
    _case("job_title", "C.E.O."),
    _case("job_title", "Head of Sales & Ops"),
    _case("job_title", ""),
    _case("job_title", None),
    _case("job_title", 7),
    _case("job_title", "\u00a0"),  # a missing-value marker once stripped: missing everywhere
    _case("job_title", "İT Manager"),
    _case("email", "jane@acme.io"),
    _case("email", "JANE@GMAIL.COM"),
    _case("email", " jane@gmail.com "),
    _case("email", "jane@gmail.com\u00a0"),
    _case("email", "jane.gmail.com"),
    _case("email", "jane@"),
    _case("email", ""),
    _case("email", None),
    _case("email", 7),
]
CORPUS: list[tuple[str, Any]] = [(p.values[0], p.values[1]) for p in CASES]
KEYS = [(field, repr(value)) for field, value in CORPUS]  # 7 == 7.0 == True: keep them apart


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A CSV export: a value's text, an empty cell when missing."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else str(v) for k, v in r.items()} for r in rows)
    return path


def _decode(row: Any, names: list[str], levels: dict[str, list[str]], field: str) -> Features:
    """The features of ``field`` in a model row, level codes read back as level texts."""
    cells = {n: None if math.isnan(x) else float(x) for n, x in zip(names, row, strict=True)}
    return {
        n: levels[n][int(x)] if n in levels and x is not None else x
        for n, x in cells.items()
        if n in FEATURES[field]
    }


def _export_rows(cases: list[tuple[int, str, Any]], gap: str | None = None) -> list[dict]:
    """One lead per case, other attributes filled in; two more leads leave ``gap`` empty."""
    rows = [{"lead_id": f"c{i}", **FILLER, field: v, "converted": 0} for i, field, v in cases]
    blank = {gap: None} if gap else {}
    return [*rows, *({"lead_id": f"f{y}", **FILLER, **blank, "converted": y} for y in (0, 1))]


def _featurise(root: Path, name: str) -> tuple[pd.DataFrame, FeatureDefinition]:
    """What featurize_dataset does to the leads of a flat export, before the split."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        leads = (raw := load_raw(DATA.model_copy(update={"leads": name}), root=root)).leads
    definition = build_definition(  # as featurize_dataset builds it, here without events
        event_types=[],
        attribute_types=raw.attribute_types,
        windows_days=[7],
        half_life_days=14.0,
        active_days_window=30,
        job_title_column=DATA.job_title_column if DATA.job_title_column in leads else None,
        email_column=DATA.email_column if DATA.email_column in leads else None,
        employees_column=DATA.employees_column if DATA.employees_column in leads else None,
        has_events=False,
        has_created_at=False,
    )
    snaps = ibis.memtable(leads[["lead_id"]].assign(created_s=0, as_of_s=0))
    cols = ["lead_id", *(n for n, _ in definition.attributes), "job_title", "email"]
    expr = featurize_expr(snaps, ibis.memtable(leads[cols]), None, definition)
    return _fetch_pandas(connect_duckdb(), expr).set_index("lead_id"), definition


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Training's features per export kind and case, its levels and its definition."""
    root = tmp_path_factory.mktemp("exports")
    indexed = [(i, f, v) for i, (f, v) in enumerate(CORPUS)]
    _write_csv(root / "leads.csv", _export_rows(indexed))
    exports = {"leads.csv": ("train_csv", indexed)}
    typed = [c for c in indexed if c[2] is not None and not isinstance(c[2], str)]
    for field, kind in sorted({(f, type(v).__name__) for _, f, v in typed}):
        group = [c for c in typed if c[1] == field and type(c[2]).__name__ == kind]
        rows = _export_rows(group, gap=field)  # a typed column, with a gap as exports have
        name = f"{field}_{kind}.parquet"
        pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), root / name)
        exports[name] = ("train_parquet", group)
    frames = {name: _featurise(root, name) for name in exports}
    definition = frames["leads.csv"][1]
    found = category_levels(pd.concat([f for f, _ in frames.values()]), definition)
    levels = {**LEVELS, "industry": found["industry"]}
    results: dict[str, dict[int, Features]] = {"train_csv": {}, "train_parquet": {}}
    for name, (path, group) in exports.items():
        frame, d = frames[name]
        rows_of = dict(zip(frame.index, encode_frame(frame, d, levels), strict=True))
        for i, field, _ in group:
            results[path][i] = _decode(rows_of[f"c{i}"], d.feature_names, levels, field)
    return {"results": results, "levels": levels, "definition": definition}


@pytest.fixture(scope="module")
def scorer(trained: dict[str, Any]) -> Scorer:
    """A real small Scorer (tests/api/conftest.py) holding the levels training found."""
    base = build_scorer(version="audit", seed=0, rounds=5)
    assert dict(trained["definition"].attributes) == dict(base.definition.attributes)
    assert trained["definition"].derived() == base.definition.derived()
    return Scorer(
        definition=base.definition,
        levels=trained["levels"],
        booster=base.booster,
        calibrator=base.calibrator,
        thresholds=base.thresholds,
    )


def _rows(scorer: Scorer, batch: LeadBatch, field: str) -> list[Result]:
    X = scorer.executor.transform(batch)
    return [_decode(row, scorer.feature_names, scorer.levels, field) for row in X]


def _pyfunc(scorer: Scorer, field: str, values: list[Any], tmp: Path) -> list[Result]:
    frame = pd.DataFrame({"lead_id": [f"L{i}" for i in range(len(values))], field: values})
    batch, _ = batch_from_nested(frame.assign(events="[]"), now=NOW)  # pandas infers the dtype
    return _rows(scorer, batch, field)


def _file(scorer: Scorer, field: str, values: list[Any], tmp: Path) -> list[Result]:
    rows = [{"lead_id": f"L{i}", field: v} for i, v in enumerate(values)]
    frame = read_any(_write_csv(tmp / "leads.csv", rows))
    frame = frame.astype(object).where(frame.notna(), None)  # as filescore.score_files does
    return _rows(scorer, batch_from_frames(frame, None, now=NOW)[0], field)


def _lead(i: int, field: str, value: Any) -> dict[str, Any]:
    return json.loads(json.dumps({"lead_id": f"L{i}", "attributes": {field: value}}))


def _serve(scorer: Scorer, field: str, values: list[Any], tmp: Path) -> list[Result]:
    """The full route: a refused lead refuses its request, the others score together."""
    numeric = ModelHandle.of(scorer).numeric_inputs
    items: dict[int, Any] = {}
    for i, value in enumerate(values):
        try:  # FastAPI decodes the JSON, then validates the Python objects (lax mode)
            lead = LeadIn.model_validate(_lead(i, field, value))
            items[i] = to_lead_input(
                lead, now=NOW, settings=SETTINGS, numeric_inputs=numeric, loc=[]
            )
        except (ValidationError, RequestProblem):
            pass
    rows = iter(_rows(scorer, scorer.to_batch(list(items.values()), now=NOW), field))
    return [next(rows) if i in items else REJECTED for i in range(len(values))]


def _lean(scorer: Scorer, field: str, values: list[Any]) -> list[Result] | None:
    body = [_lead(i, field, v) for i, v in enumerate(values)]
    leads = parse_leads(
        json.dumps(body[0] if len(body) == 1 else {"leads": body}).encode(),
        batch=len(body) > 1,
        now=NOW,
        max_batch=SETTINGS.max_batch,
        max_events=SETTINGS.max_events_per_lead,
        clock_skew=SETTINGS.clock_skew_seconds,
        numeric_inputs=ModelHandle.of(scorer).numeric_inputs,
        columns=scorer.input_columns,
    )
    return None if leads is None else _rows(scorer, leads.batch, field)


PATHS: dict[str, Callable[[Scorer, str, list[Any], Path], list[Result]]] = {
    "pyfunc": _pyfunc,
    "file": _file,
    "serve": _serve,
}


def _results(trained: dict[str, Any], scorer: Scorer, field: str, value: Any, tmp: Path) -> Any:
    i = KEYS.index((field, repr(value)))
    out = {path: by_case.get(i, NOT_APPLICABLE) for path, by_case in trained["results"].items()}
    for name, fn in PATHS.items():
        out[name] = fn(scorer, field, [value], tmp)[0]
    return out


@pytest.mark.parametrize(("field", "value"), CASES)
def test_accepting_paths_agree(
    field: str, value: Any, trained: dict[str, Any], scorer: Scorer, tmp_path: Path
) -> None:
    results = _results(trained, scorer, field, value, tmp_path)
    accepted = {p: r for p, r in results.items() if r not in (REJECTED, NOT_APPLICABLE)}
    assert accepted.keys() >= {"train_csv", "pyfunc", "file"}, f"refused: {results}"
    assert all(r.keys() == set(FEATURES[field]) for r in accepted.values()), results
    differ = {p: r for p, r in accepted.items() if r != accepted["train_csv"]}
    assert differ == {}, f"{field}={value!r}: {results}"


@pytest.mark.parametrize(("field", "value"), [pytest.param(*p.values, id=p.id) for p in CASES])
def test_lean_declines_or_matches_serve(
    field: str, value: Any, scorer: Scorer, tmp_path: Path
) -> None:
    full = _serve(scorer, field, [value], tmp_path)
    lean = _lean(scorer, field, [value])
    assert lean is None or lean == full, f"{field}={value!r}: lean {lean}, full route {full}"
    if full != [REJECTED]:  # every attribute value the full route takes is in the lean subset
        assert lean is not None, f"{field}={value!r}: the full route takes it, lean declines"


@pytest.mark.parametrize(
    ("path", "field"),
    [pytest.param(p, f) for p in ("pyfunc", "file", "serve", "lean") for f in FEATURES],
)
def test_a_column_scores_like_its_cells(
    path: str, field: str, scorer: Scorer, tmp_path: Path
) -> None:
    """A request, frame or file with every corpus value of a field: each lead as if alone."""
    values = [v for f, v in CORPUS if f == field]
    if path == "lean":  # a refused lead would send the whole request to the full route
        values = [v for v in values if _serve(scorer, field, [v], tmp_path) != [REJECTED]]
        together = _lean(scorer, field, values)
        alone = [_serve(scorer, field, [v], tmp_path)[0] for v in values]
    else:
        together = PATHS[path](scorer, field, values, tmp_path)
        alone = [PATHS[path](scorer, field, [v], tmp_path)[0] for v in values]
    assert len(values) >= 8
    assert together == alone, [
        (v, t, a) for v, t, a in zip(values, together or [], alone, strict=False) if t != a
    ]
