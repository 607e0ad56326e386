"""The own-data path on real exports: how a CSV is read, ids, lead numbers, post-contact columns,
the one-class label, and the messages that name what the user wrote (issues 14 and 15)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictive_scoring.config import DataParams, load_params
from predictive_scoring.errors import ConfigError, DataValidationError
from predictive_scoring.leakage import reached_at, review_post_contact
from predictive_scoring.read import csv_dialect, read_table
from predictive_scoring.schema import load_raw, validate
from predictive_scoring.thresholds import Thresholds, threshold_table

NOW = pd.Timestamp("2025-01-01", tz="UTC")
REPO = Path(__file__).resolve().parents[2]

# The UCI "Bank Marketing" export as it is published: semicolons, every text value quoted.
BANK = 'age;"job";"marital";"education";"balance";"y"\n' + "".join(
    f'{30 + i % 40};"{["admin.", "services", "technician"][i % 3]}";'
    f'"{["married", "single"][i % 2]}";"{["primary", "secondary"][i % 2]}";'
    f'{(i * 37) % 900};"{"yes" if i % 5 == 0 else "no"}"\n'
    for i in range(60)
)


def _flat(tmp_path: Path, name: str = "bank.csv", **update: object) -> DataParams:
    values: dict[str, object] = {
        "format": "flat",
        "dir": str(tmp_path),
        "leads": name,
        "events": None,
        "outcomes": None,
        "latent": None,
        "id_column": None,
        "created_column": None,
        "label_column": "y",
    }
    values.update(update)
    return DataParams.model_validate(values)


# --------------------------------------------------------------------------------------------
# Reading a CSV: separator, quotes, encoding, NUL bytes


def test_a_semicolon_export_with_quotes_is_detected_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "bank.csv").write_text(BANK)
    with caplog.at_level(logging.INFO, logger="predictive_scoring.read"):
        raw = load_raw(_flat(tmp_path), root=tmp_path, now=NOW)
    assert {"age", "job", "marital", "balance"} <= set(raw.attribute_types)
    assert raw.leads["job"].iloc[0] == "admin."  # the quotes are gone
    assert int(raw.leads["label"].sum()) == 12
    said = [r.getMessage() for r in caplog.records if "CSV separator" in r.getMessage()]
    assert len(said) == 1 and "';' (detected)" in said[0], said


def test_the_data_section_sets_the_separator(tmp_path: Path) -> None:
    (tmp_path / "bank.csv").write_text(BANK)
    dialect = csv_dialect(tmp_path / "bank.csv", sep=",")
    assert dialect.sep == "," and not dialect.detected
    frame = read_table(tmp_path / "bank.csv", sep=",")
    assert len(frame.columns) == 1  # what the user asked for, and the error will show why


def test_a_missing_column_is_named_with_the_columns_as_written(tmp_path: Path) -> None:
    (tmp_path / "bank.csv").write_text(BANK)
    with pytest.raises(DataValidationError) as err:
        load_raw(_flat(tmp_path, label_column="subscribed"), root=tmp_path, now=NOW)
    (problem,) = err.value.problems
    assert "required column 'subscribed' is missing" in problem
    assert "columns found: age, job, marital, education, balance, y" in problem


def test_the_columns_found_are_the_users_names_not_the_renamed_ones(tmp_path: Path) -> None:
    pd.DataFrame({"Lead Id": ["a", "b"], "Converted": [1, 0], "x": [1, 2]}).to_csv(
        tmp_path / "crm.csv", index=False
    )
    data = _flat(tmp_path, "crm.csv", id_column="Lead Id", label_column="Won?")
    with pytest.raises(DataValidationError) as err:
        load_raw(data, root=tmp_path, now=NOW)
    (problem,) = err.value.problems
    assert "columns found: Lead Id, Converted, x" in problem and "lead_id" not in problem


def test_nul_bytes_are_refused_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "bank.csv").write_bytes(BANK.encode().replace(b"services", b"serv\x00ices", 1))
    with pytest.raises(DataValidationError) as err:
        read_table(tmp_path / "bank.csv")
    (problem,) = err.value.problems
    assert "bank.csv: line 3, column 'job' holds a NUL byte" in problem


def test_bytes_outside_the_encoding_name_their_line_and_the_setting(tmp_path: Path) -> None:
    text = BANK.replace('"admin."', '"administração"', 1)
    (tmp_path / "bank.csv").write_bytes(text.encode("cp1252"))
    with pytest.raises(DataValidationError) as err:
        read_table(tmp_path / "bank.csv")
    (problem,) = err.value.problems
    assert "bank.csv: line 2 holds bytes" in problem and "data.encoding" in problem
    raw = load_raw(_flat(tmp_path, encoding="cp1252"), root=tmp_path, now=NOW)
    assert raw.leads["job"].iloc[0] == "administração"


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "bank.csv").write_bytes(b"")
    with pytest.raises(DataValidationError, match=r"bank.csv: the file is empty"):
        read_table(tmp_path / "bank.csv")


# --------------------------------------------------------------------------------------------
# Ids: id_column: null, lead numbers


def test_id_column_null_numbers_the_rows(tmp_path: Path) -> None:
    (tmp_path / "bank.csv").write_text(BANK)
    (tmp_path / "params.yaml").write_text(
        f"data:\n  format: flat\n  dir: {tmp_path}\n  leads: bank.csv\n  events: null\n"
        "  outcomes: null\n  latent: null\n  id_column: null\n  created_column: null\n"
        "  label_column: y\n"
    )
    data = load_params(tmp_path / "params.yaml").data
    raw = load_raw(data, root=tmp_path, now=NOW)
    assert raw.leads["lead_id"].tolist()[:3] == ["row-1", "row-2", "row-3"]
    assert not any("numbered" in w for w in raw.warnings)


def test_id_column_null_is_refused_in_one_line_for_the_contract(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("data:\n  id_column: null\n")
    with pytest.raises(ConfigError, match=r"data.id_column is null.*only a flat export"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("order", ["sorted", "shuffled, with gaps, handed out in time order"])
def test_a_lead_number_is_dropped_with_a_warning(tmp_path: Path, order: str) -> None:
    rng = np.random.default_rng(3)
    n = 300
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 10**7, n)), "s")
    number = 579_533 + np.sort(rng.choice(90_000, n, replace=False))
    frame = pd.DataFrame(
        {
            "seq": number,
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "visits": rng.poisson(3, n),
            "y": (rng.random(n) < 0.3).astype(int),
        }
    )
    if order != "sorted":
        frame = frame.sample(frac=1, random_state=1)
    frame.to_csv(tmp_path / "crm.csv", index=False)
    raw = load_raw(_flat(tmp_path, "crm.csv", created_column="created"), root=tmp_path, now=NOW)
    assert "seq" not in raw.attribute_types and "visits" in raw.attribute_types
    assert any("'seq' looks like a row number or id" in w for w in raw.warnings)


def test_a_column_named_like_a_number_is_an_id_even_unsorted(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    n = 200
    frame = pd.DataFrame(
        {"Lead Number": rng.choice(10**6, n, replace=False), "y": rng.integers(0, 2, n)}
    )
    frame.to_csv(tmp_path / "crm.csv", index=False)
    raw = load_raw(_flat(tmp_path, "crm.csv"), root=tmp_path, now=NOW)
    assert "Lead Number" not in raw.attribute_types


# --------------------------------------------------------------------------------------------
# Post-contact columns: flagged for review, with the evidence, apart from certain leaks


def _with_rating(tmp_path: Path) -> DataParams:
    rng = np.random.default_rng(11)
    n = 2000
    y = rng.random(n) < 0.25
    # Sales rates most converted leads and a third of the others, after the first call.
    rated = np.where(y, rng.random(n) < 0.8, rng.random(n) < 0.35)
    rating = np.where(rated, rng.integers(1, 6, n), -1).astype(object)
    rating[~rated] = ""
    frame = pd.DataFrame(
        {
            "source": rng.choice(["web", "ads", "event"], n),
            "pages": rng.poisson(4, n),
            "lead_rating": rating,
            "y": np.where(y, "yes", "no"),
        }
    )
    frame.to_csv(tmp_path / "crm.csv", index=False)
    return _flat(tmp_path, "crm.csv")


def test_a_post_contact_column_is_flagged_for_review_with_its_evidence(tmp_path: Path) -> None:
    data = _with_rating(tmp_path)
    report = validate(data, root=tmp_path, now=NOW)
    assert report.leakage == []  # not a certain leak: it stays under leakage_auc
    (flag,) = report.review
    assert flag.column == "lead_rating" and flag.reason == "post_contact" and flag.kind == "review"
    assert flag.evidence is not None and 0.7 <= flag.evidence["auc"] < data.leakage_auc
    assert flag.evidence["missing_rate_converted"] < 0.3 < flag.evidence["missing_rate_other"]
    out = report.to_dict()
    assert out["n_review_flags"] == 1 and out["review"][0]["evidence"] == flag.evidence
    assert "may be filled in after contact" in flag.message()


def test_columns_filled_alike_in_both_classes_are_not_flagged() -> None:
    rng = np.random.default_rng(5)
    n = 1000
    y = pd.Series((rng.random(n) < 0.3).astype("int8"))
    leads = pd.DataFrame(
        {"pages": pd.Series(rng.poisson(4, n) + 3 * y).where(rng.random(n) < 0.6)}
    )
    assert review_post_contact(leads, y, {"pages": "numeric"}) == []


def test_the_validate_stage_logs_each_flag_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _with_rating(tmp_path)
    (tmp_path / "params.yaml").write_text(
        f"data:\n  format: flat\n  dir: {tmp_path}\n  leads: crm.csv\n  events: null\n"
        "  outcomes: null\n  latent: null\n  id_column: null\n  created_column: null\n"
        "  label_column: y\n"
    )
    monkeypatch.syspath_prepend(str(REPO))
    from pipelines import validate as stage

    report = tmp_path / "validation.json"
    argv = ["validate.py", "--params", str(tmp_path / "params.yaml"), "--report", str(report)]
    monkeypatch.setattr(sys, "argv", argv)
    with caplog.at_level(logging.INFO):
        assert stage.main() == 0
    said = [r.getMessage() for r in caplog.records if "'lead_rating'" in r.getMessage()]
    assert len(said) == 1, said
    assert '"review"' in report.read_text()


# --------------------------------------------------------------------------------------------
# The label and the thresholds' volumes


def test_no_outcome_reaching_the_target_is_one_line_naming_the_label(tmp_path: Path) -> None:
    leads = pd.DataFrame(
        {"lead_id": [f"L{i}" for i in range(8)], "created_at": ["2024-01-01T00:00:00Z"] * 8}
    )
    outcomes = pd.DataFrame(
        {"lead_id": ["L0", "L1"], "stage": ["mql", "lost"], "ts": ["2024-02-01"] * 2}
    )
    leads.to_csv(tmp_path / "leads.csv", index=False)
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    data = DataParams(
        dir=str(tmp_path), leads="leads.csv", events=None, outcomes="outcomes.csv", latent=None
    )
    with pytest.raises(DataValidationError) as err:
        validate(data, root=tmp_path, now=NOW, target_stage="won")
    (problem,) = err.value.problems
    assert "outcomes.csv: column 'stage': the label has one class" in problem
    assert "none of the 8 leads reaches 'won'" in problem and "featurize.target_stage" in problem


def test_reached_at_keeps_its_time_type_when_no_lead_reaches_the_stage() -> None:
    leads = pd.DataFrame({"lead_id": ["a", "b"]})
    outcomes = pd.DataFrame(
        {
            "lead_id": ["a"],
            "stage": ["mql"],
            "ts": pd.to_datetime(["2024-01-01"], utc=True).astype("datetime64[us, UTC]"),
        }
    )
    got = reached_at(outcomes, leads, "won")
    assert got.isna().all() and isinstance(got.dtype, pd.DatetimeTZDtype)


def test_text_in_the_head_count_or_a_number_beyond_a_float_names_the_rows(
    tmp_path: Path,
) -> None:
    frame = pd.DataFrame(
        {
            "employees": ["10", "lots", "30", "1" + "0" * 400] + ["5"] * 20,
            "revenue": ["1e999"] + ["100"] * 23,
            "y": [1, 0] * 12,
        }
    )
    frame.to_csv(tmp_path / "crm.csv", index=False)
    with pytest.raises(DataValidationError) as err:
        load_raw(_flat(tmp_path, "crm.csv"), root=tmp_path, now=NOW)
    problems = err.value.problems
    assert any("'employees'" in p and "data row 2 'lots'" in p for p in problems), problems
    assert any("'employees'" in p and "too large" in p and "data row 4" in p for p in problems)
    assert any("'revenue'" in p and "too large" in p and "data row 1" in p for p in problems)


def test_volumes_without_dates_are_per_scored_batch() -> None:
    t = Thresholds(mql=0.3, sql=0.6, base_rate=0.5)
    rows = threshold_table(
        [0, 1, 0, 1], [0.1, 0.7, 0.4, 0.9], weeks=1.0, thresholds=t, split="test",
        per="batch of 4 leads",
    )  # fmt: skip
    assert {r["volume_per"] for r in rows} == {"batch of 4 leads"}
    assert next(r for r in rows if r["stage"] == "SQL")["leads_per_week"] == 2


# --------------------------------------------------------------------------------------------
# The generate stage and the recipes


def test_generate_skips_the_demo_when_data_dir_is_your_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "params.yaml").write_text(
        f"generate:\n  n_leads: 100000\ndata:\n  dir: {tmp_path / 'crm'}\n"
    )
    monkeypatch.syspath_prepend(str(REPO))
    from pipelines import generate as stage

    out = tmp_path / "demo"
    argv = ["generate.py", "--params", str(tmp_path / "params.yaml"), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    assert stage.main() == 0
    assert [p.name for p in out.iterdir()] == ["SKIPPED.txt"]
    assert "data.dir" in (out / "SKIPPED.txt").read_text()


@pytest.mark.parametrize(
    ("recipe", "source"),
    [
        ("uci", "https://archive.ics.uci.edu/dataset/468/"),
        ("olist", "https://www.kaggle.com/datasets/olistbr/marketing-funnel-olist"),
    ],
)
def test_a_recipe_without_its_data_blames_src_and_says_where_to_get_it(
    tmp_path: Path, recipe: str, source: str
) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / recipe / "prepare.py"),
         "--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    (line,) = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert f"--src {tmp_path / 'nowhere'}" in line and source in line
    assert "params.yaml" not in line and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
