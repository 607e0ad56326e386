"""Outcomes back in: each bad row is refused by its place, a refused batch stores nothing, and
the store returns each (lead, stage, time) once however often it was sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from predictive_scoring.cli import app
from predictive_scoring.config import DataParams
from predictive_scoring.errors import ScoringInputError
from predictive_scoring.outcomes import (
    STAGES,
    check_outcomes,
    outcomes_from_frame,
    outcomes_from_items,
    read_outcome_file,
    read_outcomes,
    store_outcomes,
)
from predictive_scoring.records import OUTCOME_COLUMNS, OUTCOMES, write_part

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z

GOOD: list[dict[str, Any]] = [
    {"lead_id": "L-1", "stage": "sql", "ts": "2025-11-03T10:00:00Z"},
    {
        "lead_id": "L-1",
        "stage": "sql_rejected",
        "ts": "2025-11-04T09:30:00Z",
        "reason": "no budget",
    },
    {"lead_id": 42, "stage": "won", "ts": 1_762_000_000},
]


def _check(items: list[dict[str, Any]], **options: Any) -> Any:
    return check_outcomes(outcomes_from_items(items), now=NOW, **options)


def _parts(store: Path) -> list[Path]:
    return sorted((store / OUTCOMES).glob("*/[!.]*.parquet"))


def _keys(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    return [
        (r.lead_id, r.stage, r.ts.strftime("%Y-%m-%dT%H:%M:%SZ"))
        for r in frame.itertuples(index=False)
    ]


# (id, the second row of a batch, the field its error must name, the kind)
BAD_ROWS: list[tuple[str, dict[str, Any], str, str]] = [
    ("lead_id_empty", {"lead_id": "", "stage": "sql", "ts": "2025-11-03"}, "lead_id", "lead_id"),
    ("lead_id_missing", {"stage": "sql", "ts": "2025-11-03"}, "lead_id", "lead_id"),
    ("lead_id_too_long", {"lead_id": "x" * 257, "stage": "sql", "ts": 1}, "lead_id", "lead_id"),
    (
        "lead_id_fraction",
        {"lead_id": 1.5, "stage": "sql", "ts": "2025-11-03"},
        "lead_id",
        "lead_id",
    ),
    ("stage_unknown", {"lead_id": "a", "stage": "closed", "ts": "2025-11-03"}, "stage", "stage"),
    ("stage_missing", {"lead_id": "a", "ts": "2025-11-03"}, "stage", "stage"),
    ("stage_number", {"lead_id": "a", "stage": 3, "ts": "2025-11-03"}, "stage", "stage"),
    ("ts_missing", {"lead_id": "a", "stage": "sql"}, "ts", "missing"),
    ("ts_garbage", {"lead_id": "a", "stage": "sql", "ts": "last tuesday"}, "ts", "timestamp"),
    (
        "ts_future",
        {"lead_id": "a", "stage": "sql", "ts": "2026-01-01T00:06:00Z"},
        "ts",
        "future_timestamp",
    ),
    ("ts_before_1990", {"lead_id": "a", "stage": "sql", "ts": 0}, "ts", "timestamp_range"),
    (
        "ts_after_year_9999",
        {"lead_id": "a", "stage": "sql", "ts": 253_402_300_800_000.0},
        "ts",
        "future_timestamp",
    ),
    (
        "reason_too_long",
        {"lead_id": "a", "stage": "lost", "ts": "2025-11-03", "reason": "r" * 201},
        "reason",
        "too_long",
    ),
]


@pytest.mark.parametrize(
    ("row", "field", "kind"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS]
)
def test_a_bad_row_is_refused_by_its_row_and_field(
    row: dict[str, Any], field: str, kind: str
) -> None:
    with pytest.raises(ScoringInputError) as refused:
        _check([GOOD[0], row, GOOD[2]])
    assert refused.value.loc == ["body", "outcomes", 1, field]
    assert refused.value.kind == kind
    assert str(refused.value).startswith(f"outcomes[1].{field}: ")


def test_the_first_bad_row_is_named_whatever_its_field() -> None:
    rows = [GOOD[0], GOOD[1], {"lead_id": "a", "stage": "sql", "ts": "soon"}, {"stage": "x"}]
    with pytest.raises(ScoringInputError) as refused:
        _check(rows)
    assert refused.value.loc == ["body", "outcomes", 2, "ts"]


def test_within_a_row_the_fields_are_named_in_order() -> None:
    row = {"lead_id": "a", "stage": "sql", "ts": "soon", "reason": "r" * 201}
    with pytest.raises(ScoringInputError) as refused:
        _check([row])
    assert refused.value.loc == ["body", "outcomes", 0, "ts"]


def test_the_clock_skew_is_a_setting() -> None:
    ahead = [{"lead_id": "a", "stage": "sql", "ts": NOW + 600}]
    with pytest.raises(ScoringInputError, match="lies in the future"):
        _check(ahead)
    assert _check(ahead, skew_seconds=900).num_rows == 1


def test_a_batch_over_the_limit_is_refused_whole() -> None:
    with pytest.raises(ScoringInputError, match="at most 2 per call") as refused:
        _check(GOOD, max_rows=2)
    assert refused.value.loc == ["body", "outcomes"]


def test_a_good_batch_becomes_the_stores_table() -> None:
    rows = [
        *GOOD,
        {"lead_id": "L-2", "stage": " SQL_Accepted ", "ts": "2025-11-05", "reason": " "},
    ]
    table = _check(rows, source="file")
    assert table.schema.names == list(OUTCOME_COLUMNS)
    assert [table.schema.field(n).type for n in OUTCOME_COLUMNS] == list(OUTCOME_COLUMNS.values())
    frame = table.to_pandas()
    assert frame["lead_id"].tolist() == ["L-1", "L-1", "42", "L-2"]
    assert frame["stage"].tolist() == ["sql", "sql_rejected", "won", "sql_accepted"]
    assert frame["reason"].tolist()[1] == "no budget"
    assert frame["reason"].isna().tolist() == [True, False, True, True]  # blank is no reason
    assert set(frame["source"]) == {"file"}
    assert (frame["received_at"] == pd.Timestamp(NOW, unit="s", tz="UTC")).all()
    assert frame["ts"].iloc[2] == pd.Timestamp(1_762_000_000, unit="s", tz="UTC")


def test_every_stage_of_the_contract_and_of_sales_is_known() -> None:
    rows = [{"lead_id": "a", "stage": s, "ts": "2025-11-03T00:00:00Z"} for s in STAGES]
    assert _check(rows).column("stage").to_pylist() == list(STAGES)
    assert {"mql", "sql", "opportunity", "won", "lost", "sql_accepted", "sql_rejected"} == set(
        STAGES
    )


def test_posting_the_same_batch_twice_stores_it_once(tmp_path: Path) -> None:
    first = store_outcomes(tmp_path, _check(GOOD))
    again = store_outcomes(tmp_path, _check(GOOD))
    assert (first.received, first.stored, first.already_known) == (3, 3, 0)
    assert (again.received, again.stored, again.already_known) == (3, 0, 3)
    assert len(_parts(tmp_path)) == 1  # nothing was written the second time
    stored = read_outcomes(tmp_path)
    assert list(stored.columns) == ["lead_id", "stage", "ts", "reason"]
    assert _keys(stored) == [
        ("42", "won", "2025-11-01T12:26:40Z"),
        ("L-1", "sql", "2025-11-03T10:00:00Z"),
        ("L-1", "sql_rejected", "2025-11-04T09:30:00Z"),
    ]
    assert stored["reason"].tolist()[2] == "no budget"


def test_one_time_written_three_ways_is_one_outcome(tmp_path: Path) -> None:
    same = ["2025-11-03T11:00:00+01:00", "2025-11-03T10:00:00.400Z", 1_762_164_000_000]
    rows = [{"lead_id": "a", "stage": "sql", "ts": ts} for ts in same]
    done = store_outcomes(tmp_path, _check([*rows, {**rows[0], "stage": "mql"}]))
    assert (done.stored, done.already_known) == (2, 2)
    assert _keys(read_outcomes(tmp_path)) == [
        ("a", "mql", "2025-11-03T10:00:00Z"),
        ("a", "sql", "2025-11-03T10:00:00Z"),
    ]


def test_a_partly_known_batch_stores_only_what_is_new(tmp_path: Path) -> None:
    store_outcomes(tmp_path, _check(GOOD[:2]))
    done = store_outcomes(tmp_path, _check(GOOD))
    assert (done.stored, done.already_known) == (1, 2)
    assert len(read_outcomes(tmp_path)) == 3


def test_reading_deduplicates_what_two_replicas_stored_at_once(tmp_path: Path) -> None:
    # Two replicas that checked the store before either wrote both store the rows: read once.
    write_part(tmp_path, OUTCOMES, check_outcomes(outcomes_from_items(GOOD), now=NOW))
    later = outcomes_from_items([{**GOOD[1], "reason": "not the decision maker"}])
    write_part(tmp_path, OUTCOMES, check_outcomes(later, now=NOW + 5))
    write_part(tmp_path, OUTCOMES, check_outcomes(outcomes_from_items(GOOD), now=NOW + 9))
    stored = read_outcomes(tmp_path)
    assert len(_parts(tmp_path)) == 3 and len(stored) == 3
    assert stored.set_index("stage").loc["sql_rejected", "reason"] == "no budget"  # first wins


def test_an_empty_store_reads_as_an_empty_frame_of_the_same_shape(tmp_path: Path) -> None:
    empty = read_outcomes(tmp_path / "nothing-yet")
    store_outcomes(tmp_path, _check(GOOD))
    full = read_outcomes(tmp_path)
    assert empty.empty and list(empty.columns) == ["lead_id", "stage", "ts", "reason"]
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    assert str(full["ts"].dt.tz) == "UTC"


def test_reading_with_a_given_connection(tmp_path: Path) -> None:
    import duckdb

    store_outcomes(tmp_path, _check(GOOD))
    with duckdb.connect() as con:
        assert len(read_outcomes(tmp_path, con)) == 3
        assert store_outcomes(tmp_path, _check(GOOD), con=con).already_known == 3


def test_a_file_problem_names_the_file_the_column_and_the_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"Lead": ["a", "b"], "Stage": ["sql", "sql_rejected"], "When": ["2025-11-03", "nope"]}
    )
    raw = outcomes_from_frame(
        frame, source="crm.csv", id_column="Lead", stage_column="Stage", time_column="When"
    )
    with pytest.raises(ScoringInputError) as refused:
        check_outcomes(raw, now=NOW)
    assert str(refused.value).startswith("crm.csv: column 'When' row 2: cannot read 'nope'")
    assert refused.value.loc == [2, "When"]


def test_a_missing_column_names_it_and_the_separator(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text("lead_id;stage;ts\na;sql;2025-11-03\n")
    assert list(read_outcome_file(path).lead_ids) == ["a"]  # the separator is detected
    comma = DataParams(sep=",")  # ...unless the data section says otherwise
    with pytest.raises(ScoringInputError, match=r"'lead_id' .*separator looks like ';'"):
        read_outcome_file(path, data=comma)


# --------------------------------------------------------------------------------------------
# predictive-scoring outcomes import


def _export(path: Path, rows: list[list[str]]) -> Path:
    header = "Lead Id;Stage Name;Changed At;Why\n"
    path.write_text(header + "".join(";".join(r) + "\n" for r in rows))
    return path


PARAMS = """\
data:
  sep: ";"
  id_column: Lead Id
  stage_column: Stage Name
  outcome_time_column: Changed At
"""


@pytest.fixture
def cli_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env of the project
    for name in ("PREDICTIVE_SCORING_LOG_DIR", "PREDICTIVE_SCORING_CLOCK_SKEW_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "params.yaml").write_text(PARAMS)
    return tmp_path


def _import(*args: str) -> Any:
    return CliRunner().invoke(app, ["outcomes", "import", *args])


def test_import_reads_a_semicolon_export_named_by_the_data_section(cli_dir: Path) -> None:
    export = _export(
        cli_dir / "stages.csv",
        [
            ["L-1", "sql", "2025-11-03T10:00:00Z", ""],
            ["L-1", "sql_rejected", "2025-11-04T09:30:00Z", "not the decision maker"],
            ["007", "won", "2025-11-05", ""],
        ],
    )
    store = cli_dir / "store"
    done = _import(str(export), "--store", str(store), "--reason-column", "Why")
    assert done.exit_code == 0, done.output
    assert done.output.startswith(f"3 outcomes from {export}: 3 stored, 0 already known")
    again = _import(str(export), "--store", str(store), "--reason-column", "Why")
    assert "3 stored" not in again.output and "0 stored, 3 already known" in again.output
    stored = read_outcomes(store)
    assert _keys(stored) == [
        ("L-1", "sql", "2025-11-03T10:00:00Z"),
        ("L-1", "sql_rejected", "2025-11-04T09:30:00Z"),
        ("007", "won", "2025-11-05T00:00:00Z"),  # the id keeps its leading zeros
    ]
    assert stored["reason"].tolist()[1] == "not the decision maker"


def test_import_goes_to_the_services_store_by_default(
    cli_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREDICTIVE_SCORING_LOG_DIR", str(cli_dir / "shared"))
    export = _export(cli_dir / "stages.csv", [["L-1", "mql", "2025-11-03", ""]])
    assert _import(str(export)).exit_code == 0
    assert len(read_outcomes(cli_dir / "shared")) == 1


def test_import_of_a_bad_row_names_it_in_one_line_and_stores_nothing(cli_dir: Path) -> None:
    export = _export(
        cli_dir / "stages.csv",
        [["L-1", "sql", "2025-11-03", ""], ["L-2", "closed won", "2025-11-04", ""]],
    )
    store = cli_dir / "store"
    refused = _import(str(export), "--store", str(store))
    assert refused.exit_code == 1
    lines = refused.output.strip().splitlines()
    assert lines == [
        f"error: {export}: column 'Stage Name' row 2: unknown stage 'closed won'; use one of "
        + ", ".join(STAGES)
    ]
    assert _parts(store) == [] and read_outcomes(store).empty


def test_import_with_the_wrong_separator_says_which_to_use(cli_dir: Path) -> None:
    export = _export(cli_dir / "stages.csv", [["L-1", "sql", "2025-11-03", ""]])
    wrong = _import(str(export), "--store", str(cli_dir / "store"), "--sep", ",")
    assert wrong.exit_code == 1 and "the separator looks like ';'" in wrong.output


def test_import_reads_parquet_with_typed_columns_and_no_reasons(cli_dir: Path) -> None:
    export = cli_dir / "stages.parquet"
    pd.DataFrame(
        {
            "Lead Id": [101, 102],
            "Stage Name": ["MQL", "lost"],
            "Changed At": pd.to_datetime(["2025-11-03 10:00", "2025-11-04 09:30"], utc=True),
        }
    ).to_parquet(export)
    done = _import(str(export), "--store", str(cli_dir / "store"))
    assert done.exit_code == 0, done.output
    stored = read_outcomes(cli_dir / "store")
    assert _keys(stored) == [
        ("101", "mql", "2025-11-03T10:00:00Z"),
        ("102", "lost", "2025-11-04T09:30:00Z"),
    ]
    assert stored["reason"].isna().all()
