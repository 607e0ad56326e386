"""One way in: every input path reaches the scorer through the same rules.

The decoders (JSON, files, the pyfunc's frame, Python objects) only hand values on; these tests
drive each the way production does and check that a lead scores alike on every path, and that
each rule refuses or reports what the model never saw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import ibis
import numpy as np
import pandas as pd
import pytest
from tests.scorers import NOW, build_scorer

from predictive_scoring.batch import category_expr
from predictive_scoring.config import FIELD_MAP_ENV, read_field_map
from predictive_scoring.errors import ConfigError, ScoringInputError
from predictive_scoring.features import build_definition
from predictive_scoring.filescore import score_files
from predictive_scoring.ingress import (
    FieldMap,
    LeadInput,
    Limits,
    ModelInputs,
    raw_from_frames,
    raw_from_lead_inputs,
    raw_from_nested,
)
from predictive_scoring.read import read_table
from predictive_scoring.schema import parse_timestamps
from predictive_scoring.scoring import FRAME_LIMITS, Scorer, score_nested
from predictive_scoring.serve.decode import decode_leads
from predictive_scoring.serve.schemas import LeadIn
from predictive_scoring.timestamps import read_seconds

SCORER = build_scorer(version="1", seed=0, rounds=10).with_metadata(
    inputs={"required": ["created_at"], "non_negative": ["employees"]}
)
SERVICE = Limits(max_leads=100, max_events_per_lead=50)
CREATED = "2023-10-01T00:00:00Z"
LEAD: dict[str, Any] = {
    "lead_id": "L-1",
    "attributes": {"industry": "software", "employees": 250, "job_title": "VP Marketing"},
    "created_at": CREATED,
    "events": [
        {"event_type": "demo_request", "ts": "2023-11-01T10:00:00Z"},
        {"event_type": "web_visit", "ts": 1_698_796_800},
    ],
}


def _json(lead: dict[str, Any], *, scorer: Scorer = SCORER) -> Any:
    raw = decode_leads(json.dumps(lead).encode(), batch=False)
    return scorer.score_admitted(scorer.admit(raw, now=NOW, limits=SERVICE), n_reasons=0)[0]


def _refused(lead: dict[str, Any]) -> ScoringInputError:
    with pytest.raises(ScoringInputError) as info:
        _json(lead)
    return info.value


# --------------------------------------------------------------------------------------------
# One timestamp reader: the corpus every path reads alike

NOON = 1_740_830_400  # 2025-03-01T12:00:00Z
TIMES = [
    ("2025-03-01T12:00:00Z", NOON),
    ("2025-03-01T12:00:00+02:00", NOON - 7_200),
    ("2025-03-01T12:00:00", NOON),  # naive means UTC
    ("2025-03-01T12:00:00.999999Z", NOON),  # fractions floored
    ("2025-03-01", NOON - 43_200),
    ("2025-03-01 12:00:00", NOON),
    (1_700_000_000, 1_700_000_000),
    (1_700_000_000.7, 1_700_000_000),
    ("1700000000", 1_700_000_000),  # a number as text is a number
    (1_700_000_000_000, 1_700_000_000),  # over 2e10: milliseconds
    (20_000_000_000, 20_000_000_000),  # the boundary itself is still seconds
    ("2024-02-29T23:59:59Z", 1_709_251_199),
    ("2023-02-29T00:00:00Z", None),  # no such day
    ("2025-13-01T00:00:00Z", None),
    ("yesterday", None),
]


@pytest.mark.parametrize(("value", "expected"), TIMES, ids=[repr(v) for v, _ in TIMES])
def test_every_form_reads_alike(value: Any, expected: int | None) -> None:
    """A list (the JSON decoders' shape, fast kernel first), an object column (frames, the
    pyfunc) and the text of a CSV cell give one second, or are all refused."""
    as_list, bad_list = read_seconds([value])
    as_column, bad_column = read_seconds(pd.Series([value], dtype=object))
    as_text, bad_text = read_seconds(pd.Series([str(value)], dtype=object))
    if expected is None:
        assert bad_list[0] and bad_column[0] and bad_text[0]
        return
    assert not (bad_list[0] or bad_column[0])
    assert as_list[0] == as_column[0] == expected
    if not isinstance(value, float):  # str(1.7e9 + 0.7) is the same number; checked above
        assert as_text[0] == expected and not bad_text[0]


@pytest.mark.parametrize(
    "text", ["2025-03-01T12:00:00Z", "2025-03-01T12:00:00+02:00", "2025-03-01", "2024-02-29"]
)
def test_training_reads_iso_texts_as_serving_does(text: str) -> None:
    parsed, bad = parse_timestamps(pd.Series([text]))
    assert not bad.iloc[0]
    seconds = int(parsed.iloc[0].timestamp())
    assert seconds == read_seconds([text])[0][0]


def test_training_refuses_the_epoch_numbers_serving_reads() -> None:
    _, bad = parse_timestamps(pd.Series(["1700000000"]))
    assert bad.iloc[0]
    assert read_seconds(["1700000000"], numbers=False)[1][0]


# --------------------------------------------------------------------------------------------
# Every decoder hands the scorer the same lead


def _frames(lead: dict[str, Any], tmp: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    leads = pd.DataFrame(
        [{"lead_id": lead["lead_id"], "created_at": lead["created_at"], **lead["attributes"]}]
    )
    events = pd.DataFrame([{"lead_id": lead["lead_id"], **e} for e in lead["events"]])
    leads.to_csv(tmp / "leads.csv", index=False)
    events.to_csv(tmp / "events.csv", index=False)
    return read_table(tmp / "leads.csv"), read_table(tmp / "events.csv")


def test_a_lead_scores_alike_on_every_path(tmp_path: Path) -> None:
    expected = _json(LEAD).probability
    leads, events = _frames(LEAD, tmp_path)
    from_files = SCORER.score_admitted(
        SCORER.admit(raw_from_frames(leads, events), now=NOW, limits=FRAME_LIMITS), n_reasons=0
    )[0]
    nested = leads.assign(events=json.dumps(LEAD["events"]))
    pyfunc = score_nested(SCORER, nested, now=NOW)
    python = SCORER.score(
        [
            LeadInput(
                lead_id="L-1",
                attributes=LEAD["attributes"],
                events=[(e["event_type"], e["ts"]) for e in LEAD["events"]],
                created_at=CREATED,
            )
        ],
        now=NOW,
        n_reasons=0,
    )[0]
    assert from_files.probability == expected
    assert pyfunc["probability"].iloc[0] == expected
    assert python.probability == expected


def test_an_id_sent_as_14_0_is_the_integer_id_14() -> None:
    # JSON Schema's integer includes 14.0: the declared "string or integer" must take it, on
    # both decoders (the pydantic models explain what msgspec declines).
    assert _json({**LEAD, "lead_id": 14.0}).lead_id == "14"
    assert LeadIn.model_validate_json(json.dumps({**LEAD, "lead_id": 14.0})).lead_id == 14.0


def test_the_pydantic_decoder_only_explains_what_msgspec_declines() -> None:
    from fastapi.exceptions import RequestValidationError

    with pytest.raises(RequestValidationError) as info:
        decode_leads(b'{"lead_id": "x", "attributes": {"industry": {"a": 1}}}', batch=False)
    assert info.value.errors()[0]["loc"][:3] == ("body", "attributes", "industry")


# --------------------------------------------------------------------------------------------
# What the model never saw


def test_a_lead_without_the_required_creation_date_is_refused() -> None:
    err = _refused({"lead_id": "X"})
    assert err.loc == ["body", "created_at"] and err.kind == "missing"
    assert "never saw a lead without it" in str(err)


def test_the_required_inputs_follow_from_the_training_rows() -> None:
    from predictive_scoring.ingress import input_profile

    frame = pd.DataFrame(
        {"lead_age_days": [1.0, 2.0], "industry": ["a", None], "employees": [3.0, None]}
    )
    profile = input_profile(frame, SCORER.definition)
    assert profile["required"] == ["created_at"]
    assert "employees" in profile["non_negative"]
    frame.loc[0, "lead_age_days"] = math.nan
    assert input_profile(frame, SCORER.definition)["required"] == []


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"as_of": "2023-01-01T00:00:00Z"}, ["body", "as_of"], "as_of_before_created"),
        ({"attributes": {"employees": -5}}, ["body", "attributes", "employees"], "negative"),
        ({"attributes": {"employees": "-5"}}, ["body", "attributes", "employees"], "negative"),
        ({"attributes": {"employees": 10**309}}, ["body", "attributes", "employees"], None),
        ({"created_at": 0}, ["body", "created_at"], "timestamp_range"),
        ({"created_at": "0001-01-01T00:00:00Z"}, ["body", "created_at"], "timestamp_range"),
        ({"as_of": -86_400}, ["body", "as_of"], "timestamp_range"),
        # times no date can hold: the message shows the number, not a 500
        ({"as_of": 253_402_300_800_000.0}, ["body", "as_of"], "future_timestamp"),
        ({"created_at": -1e15}, ["body", "created_at"], "timestamp_range"),
        ({"created_at": "2999-01-01"}, ["body", "created_at"], "future_timestamp"),
        (
            {"events": [{"event_type": "web_visit", "ts": "2027-01-01T00:00:00Z"}]},
            ["body", "events", 0, "ts"],
            "future_timestamp",
        ),
        ({"lead_id": ""}, ["body", "lead_id"], "lead_id"),
        ({"lead_id": "x" * 257}, ["body", "lead_id"], "lead_id"),
        ({"lead_id": 1.5}, ["body", "lead_id"], "lead_id"),
    ],
)
def test_inputs_out_of_bounds_are_refused_naming_the_field(
    change: dict[str, Any], loc: list[Any], kind: str | None
) -> None:
    err = _refused({**LEAD, **change})
    assert err.loc == loc
    assert kind is None or err.kind == kind


@pytest.mark.parametrize("spelling", ["Software", " SOFTWARE ", "software\t", "SoftWare"])
def test_case_and_spaces_of_a_category_do_not_matter(spelling: str) -> None:
    lead = {**LEAD, "attributes": {**LEAD["attributes"], "industry": spelling}}
    scored = _json(lead)
    assert scored.probability == _json(LEAD).probability
    assert scored.warnings == []


def test_an_unseen_category_scores_as_missing_and_is_reported() -> None:
    unseen = _json({**LEAD, "attributes": {**LEAD["attributes"], "industry": "space mining"}})
    missing = _json({**LEAD, "attributes": {**LEAD["attributes"], "industry": None}})
    assert unseen.probability == missing.probability
    [warning] = unseen.warnings
    assert (warning.field, warning.value) == ("industry", "space mining")
    assert "missing" in warning.action


def test_an_unseen_event_type_is_ignored_and_reported() -> None:
    chat = {"event_type": "chatbot_conversation", "ts": "2023-11-01T10:00:00Z"}
    with_chat = _json({**LEAD, "events": [*LEAD["events"], chat, chat]})
    assert with_chat.probability == _json(LEAD).probability
    assert [(w.field, w.value) for w in with_chat.warnings] == [
        ("event_type", "chatbot_conversation")
    ]


def test_aliases_are_one_value_in_training_and_online() -> None:
    definition = build_definition(
        event_types=["web_visit"],
        attribute_types={"country": "categorical"},
        windows_days=[7],
        half_life_days=7,
        active_days_window=7,
        job_title_column=None,
        email_column=None,
        employees_column=None,
        has_events=True,
        has_created_at=True,
        aliases={"country": {"US": "United States", "USA": "United States"}},
    )
    spellings = ["US", "usa", " United States ", "UNITED STATES", "Germany", " ", None]
    online = [definition.category_key("country", s) for s in spellings]
    assert online == ["united states"] * 4 + ["germany", None, None]
    table = ibis.memtable({"country": spellings}, schema={"country": "string"})
    expr = category_expr(table.country, definition.alias_map("country"))
    batch = table.select(key=expr).to_pandas()["key"]
    assert [None if pd.isna(v) else v for v in batch] == online
    again = json.loads(json.dumps(definition.to_dict()))
    assert type(definition).from_dict(again).category_key("country", "USA") == "united states"


def test_model_inputs_say_what_training_saw() -> None:
    inputs = ModelInputs.of(SCORER.definition, SCORER.levels, SCORER.metadata["inputs"])
    assert inputs.required == ("created_at",)
    assert "employees" in inputs.numeric and "industry" in inputs.categorical
    assert inputs.event_types == frozenset(SCORER.definition.event_types)


# --------------------------------------------------------------------------------------------
# The file scorer: the same rules, errors naming the file's row, a warnings column


def test_the_file_scorer_writes_warnings_and_scores_as_the_service(tmp_path: Path) -> None:
    lead = {**LEAD, "attributes": {**LEAD["attributes"], "industry": "Space Mining"}}
    _frames(lead, tmp_path)
    out = tmp_path / "scored.csv"
    summary = score_files(
        scorer=SCORER,
        leads=tmp_path / "leads.csv",
        events=tmp_path / "events.csv",
        output=out,
        as_of="2023-11-14T22:13:20Z",
    )
    scored = pd.read_csv(out)
    assert scored["probability"].iloc[0] == pytest.approx(_json(lead).probability, abs=1e-12)
    assert "industry='Space Mining'" in scored["warnings"].iloc[0]
    assert summary.warnings == {"industry=Space Mining": 1}


@pytest.mark.parametrize(
    ("as_of", "event_ts", "says"),
    [
        ("yesterday", "2023-11-01T00:00:00Z", "--as-of: cannot read 'yesterday'"),
        (None, "2027-01-01T00:00:00Z", "events.csv: column 'ts' row 1"),
        (None, "not a time", "events.csv: column 'ts' row 1: cannot read 'not a time'"),
    ],
)
def test_file_errors_are_one_line_naming_the_row(
    tmp_path: Path, as_of: str | None, event_ts: str, says: str
) -> None:
    lead = {**LEAD, "events": [{"event_type": "web_visit", "ts": event_ts}]}
    _frames(lead, tmp_path)
    out = tmp_path / "scored.csv"
    with pytest.raises(ScoringInputError) as info:
        score_files(
            scorer=SCORER,
            leads=tmp_path / "leads.csv",
            events=tmp_path / "events.csv",
            output=out,
            as_of=as_of,
        )
    assert says in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()


def test_a_nested_frame_names_its_bad_cell() -> None:
    frame = pd.DataFrame(
        {"lead_id": ["a", "b"], "created_at": [CREATED] * 2, "events": ["[]", "{not json"]}
    )
    with pytest.raises(ScoringInputError, match="column 'events' row 2"):
        raw_from_nested(frame)


def test_python_leads_take_the_same_rules() -> None:
    raw = raw_from_lead_inputs([LeadInput(lead_id="a", created_at=CREATED, as_of="2023-01-01")])
    with pytest.raises(ScoringInputError, match="before created_at"):
        SCORER.admit(raw, now=NOW, limits=FRAME_LIMITS)
    assert np.isnan(read_seconds([None])[0][0])


def test_a_file_attribute_error_names_its_column_and_row(tmp_path: Path) -> None:
    second = {**LEAD, "lead_id": "L-2", "attributes": {**LEAD["attributes"], "employees": -3}}
    _frames(LEAD, tmp_path)
    leads = pd.concat([read_table(tmp_path / "leads.csv"), _frames(second, tmp_path)[0]])
    with pytest.raises(ScoringInputError, match=r"leads: column 'employees' row 2: .*negative"):
        SCORER.admit(raw_from_frames(leads.reset_index(drop=True), None), limits=FRAME_LIMITS)


def test_the_score_command_reads_the_export_as_named(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from predictive_scoring.cli import app

    bundle = SCORER.save(tmp_path / "bundle")
    leads = pd.DataFrame(
        {
            "Lead Id": ["a", "b"],
            "Created": [CREATED, "2023-10-02"],
            "industry": ["SOFTWARE", "Space Mining"],
            "employees": ["250", ""],
        }
    )
    leads.to_csv(tmp_path / "leads.csv", sep=";", index=False)
    args = ["score", "--leads", str(tmp_path / "leads.csv"), "--output", str(tmp_path / "o.csv")]
    args += ["--bundle", str(bundle), "--params", str(tmp_path / "none.yaml")]
    args += ["--as-of", "2023-11-01T00:00:00Z"]
    wrong = CliRunner().invoke(app, args)
    # The separator is detected (read.csv_dialect): the error names the columns as written.
    assert wrong.exit_code != 0 and "columns found: Lead Id, Created" in wrong.output
    assert not (tmp_path / "o.csv").exists()
    named = [*args, "--sep", ";", "--id-column", "Lead Id", "--created-column", "Created"]
    done = CliRunner().invoke(app, named)
    assert done.exit_code == 0, done.output
    scored = pd.read_csv(tmp_path / "o.csv", dtype=str)
    assert scored["Lead Id"].tolist() == ["a", "b"]
    assert "Space Mining" in scored["warnings"].iloc[1] and pd.isna(scored["warnings"].iloc[0])
    assert "industry=Space Mining: 1 lead(s)" in done.output


# --------------------------------------------------------------------------------------------
# The CRM's own field names: one map, every way in

HUBSPOT = FieldMap(
    {
        "hs_object_id": "lead_id",
        "createdate": "created_at",
        "industry": "industry",  # a flat record's field named as the model's: listed as itself
        "numberofemployees": "employees",
        "jobtitle": "job_title",
    }
)
PLAIN = {**LEAD, "events": []}  # a CRM record carries no engagement log


def test_a_crm_record_scores_as_the_same_lead_named_the_models_way() -> None:
    record = {
        "hs_object_id": "L-1",
        "createdate": CREATED,
        "industry": "software",
        "numberofemployees": "250",  # CRMs send numbers as text
        "jobtitle": "VP Marketing",
    }
    raw = decode_leads(json.dumps(record).encode(), batch=False, fields=HUBSPOT)
    scored = SCORER.score_admitted(SCORER.admit(raw, now=NOW, limits=SERVICE), n_reasons=0)[0]
    assert (scored.lead_id, scored.probability) == ("L-1", _json(PLAIN).probability)
    inside = {**PLAIN, "attributes": {"numberofemployees": 250, "jobtitle": "VP Marketing"}}
    inside["attributes"]["industry"] = "software"
    batch = json.dumps({"leads": [inside]}).encode()
    raw = decode_leads(batch, batch=True, fields=HUBSPOT)
    again = SCORER.score_admitted(SCORER.admit(raw, now=NOW, limits=SERVICE), n_reasons=0)[0]
    assert again.probability == scored.probability


def test_a_crm_export_and_the_pyfunc_frame_take_the_map_of_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _json(PLAIN).probability
    export = pd.DataFrame(
        {
            "Id": ["L-1"],
            "CreatedDate": [CREATED],
            "Industry": ["software"],
            "NumberOfEmployees": [250],
            "Title": ["VP Marketing"],
        }
    )
    salesforce = {
        "Id": "lead_id",
        "CreatedDate": "created_at",
        "Industry": "industry",
        "NumberOfEmployees": "employees",
        "Title": "job_title",
    }
    explicit = raw_from_frames(export, None, fields=FieldMap(salesforce))
    scored = SCORER.score_admitted(SCORER.admit(explicit, now=NOW, limits=FRAME_LIMITS))[0]
    assert scored.probability == expected
    monkeypatch.setenv(FIELD_MAP_ENV, json.dumps(salesforce))  # the setting, read by the ingress
    assert score_nested(SCORER, export, now=NOW)["probability"].iloc[0] == expected
    export.to_csv(tmp_path / "leads.csv", index=False)
    out = tmp_path / "scored.csv"
    score_files(
        scorer=SCORER,
        leads=tmp_path / "leads.csv",
        events=None,
        output=out,
        as_of="2023-11-14T22:13:20Z",
    )
    assert pd.read_csv(out)["probability"].iloc[0] == pytest.approx(expected, abs=1e-12)


def test_a_map_to_an_input_the_model_does_not_take_is_refused_naming_it() -> None:
    wrong = FieldMap({"numberofemployees": "employes"})
    raw = decode_leads(json.dumps(PLAIN).encode(), batch=False, fields=wrong)
    with pytest.raises(ConfigError) as info:
        SCORER.admit(raw, now=NOW, limits=SERVICE)
    assert "'numberofemployees': 'employes'" in str(info.value)
    assert FIELD_MAP_ENV in str(info.value) and "employees" in str(info.value)


def test_a_field_sent_under_both_names_is_refused_naming_it() -> None:
    both = {**PLAIN, "attributes": {"employees": 250, "numberofemployees": 300}}
    with pytest.raises(ScoringInputError) as info:
        decode_leads(json.dumps({"leads": [both]}).encode(), batch=True, fields=HUBSPOT)
    assert info.value.loc == ["body", "leads", 0, "attributes", "numberofemployees"]
    # one map may serve two CRMs; a record that sends both of their names is refused
    two = FieldMap({"numberofemployees": "employees", "NumberOfEmployees": "employees"})
    record = {**PLAIN, "numberofemployees": 250, "NumberOfEmployees": 300}
    with pytest.raises(ScoringInputError, match="both give 'employees'"):
        decode_leads(json.dumps(record).encode(), batch=False, fields=two)
    columns = pd.DataFrame({"lead_id": ["a"], "numberofemployees": [1], "NumberOfEmployees": [2]})
    with pytest.raises(ScoringInputError, match="columns 'numberofemployees' and 'Number"):
        raw_from_frames(columns, None, fields=two)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{not json", "not valid JSON"),
        ("/nowhere/map.json", "neither JSON nor a file"),
        ('["a", "b"]', "neither JSON nor a file"),
        ('{"a": 1}', "must map a field name to an input"),
        ('{"a": "b", "b": "employees"}', "both as a CRM field and as a target"),
    ],
)
def test_a_malformed_map_says_what_is_wrong(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        read_field_map(value)


def test_a_map_may_live_in_a_yaml_or_json_file(tmp_path: Path) -> None:
    # one map for two CRMs: several fields may give one input, a name may map to itself
    text = "NumberOfEmployees: employees\nnumberofemployees: employees\nLeadSource: lead_source\n"
    (tmp_path / "map.yaml").write_text(text + "industry: industry\nIndustry: industry\n")
    (tmp_path / "map.json").write_text('{"NumberOfEmployees": "employees"}')
    assert read_field_map(str(tmp_path / "map.yaml")) == {
        "NumberOfEmployees": "employees",
        "numberofemployees": "employees",
        "LeadSource": "lead_source",
        "industry": "industry",
        "Industry": "industry",
    }
    assert read_field_map(str(tmp_path / "map.json")) == {"NumberOfEmployees": "employees"}
