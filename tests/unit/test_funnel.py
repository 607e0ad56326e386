"""The funnel report's pure computations and its self-contained HTML."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from predictive_scoring.config import Params
from predictive_scoring.features import FeatureDefinition
from predictive_scoring.funnel import (
    FunnelReport,
    build_funnel_report,
    conversion_by_attribute,
    conversion_by_event_type,
    conversion_by_prediction,
    engagement_before_conversion,
    importance_by_group,
    monthly_stage_volumes,
    readable_bins,
    readable_number,
    render_html,
    stage_conversion,
    stage_durations,
    stage_times,
    summarise_funnel,
    title_groups,
    write_funnel_report,
)
from predictive_scoring.schema import RawData
from predictive_scoring.thresholds import Thresholds


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def leads() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "created_at": [
                _ts("2024-01-05"),
                _ts("2024-01-20"),
                _ts("2024-02-03"),
                _ts("2024-02-10"),
            ],
            "lead_source": ["web", "web", "event", None],
        }
    )


@pytest.fixture
def outcomes() -> pd.DataFrame:
    # a: mql -> sql -> won; b: mql only; c: won with no sql row; d: nothing
    return pd.DataFrame(
        {
            "lead_id": ["a", "a", "a", "b", "c"],
            "stage": ["mql", "sql", "won", "mql", "won"],
            "ts": [
                _ts("2024-01-07"),
                _ts("2024-01-17"),
                _ts("2024-02-16"),
                _ts("2024-01-21"),
                _ts("2024-03-01"),
            ],
        }
    )


@pytest.fixture
def events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ["a", "a", "a", "b", "b", "c"],
            "event_type": ["demo", "demo", "web", "web", "web", "demo"],
            # a's second demo comes after a won: it must not count as preceding conversion
            "ts": [
                _ts("2024-01-06"),
                _ts("2024-03-01"),
                _ts("2024-01-06"),
                _ts("2024-01-21"),
                _ts("2024-01-22"),
                _ts("2024-02-05"),
            ],
        }
    )


def test_stage_times_are_monotone_and_skip_absent_stages(
    leads: pd.DataFrame, outcomes: pd.DataFrame
) -> None:
    times = stage_times(leads, outcomes)
    assert list(times.columns) == ["lead_id", "lead", "mql", "sql", "won"]  # no opportunity
    c = times.set_index("lead_id").loc["c"]
    assert c["sql"] == c["won"] == _ts("2024-03-01")  # winning implies passing sql and mql
    assert c["mql"] == _ts("2024-03-01")
    counts = times.drop(columns=["lead_id"]).notna().sum().tolist()
    assert counts == [4, 3, 2, 2]


def test_monthly_volumes_count_stage_entries(leads: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    volumes = monthly_stage_volumes(stage_times(leads, outcomes))
    assert volumes.loc["2024-01", "lead"] == 2
    assert volumes.loc["2024-02", "won"] == 1
    assert volumes.loc["2024-03", "won"] == 1
    assert volumes["lead"].sum() == 4


def test_conversion_and_durations(leads: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    times = stage_times(leads, outcomes)
    conv = stage_conversion(times).set_index(["from", "to"])
    assert conv.loc[("lead", "mql"), "rate"] == pytest.approx(0.75)
    assert conv.loc[("mql", "sql"), "rate"] == pytest.approx(2 / 3)
    assert conv.loc[("lead", "won"), "n_to"] == 2
    dur = stage_durations(times).set_index(["from", "to"])
    assert dur.loc[("lead", "mql"), "n"] == 3
    assert dur.loc[("sql", "won"), "median_days"] == pytest.approx((30 + 0) / 2)


def test_conversion_by_attribute_gives_rate_and_lift(leads: pd.DataFrame) -> None:
    label = pd.Series([1, 0, 1, 0])
    table = conversion_by_attribute(leads, label, "lead_source")
    assert table.loc["web", "rate"] == pytest.approx(0.5)
    assert table.loc["event", "lift"] == pytest.approx(2.0)
    assert table.loc["(missing)", "conversions"] == 0


def test_conversion_by_event_type_counts_leads_once(
    leads: pd.DataFrame, events: pd.DataFrame
) -> None:
    table = conversion_by_event_type(events, leads, pd.Series([1, 0, 1, 0]))
    assert table.loc["demo", "leads"] == 2
    assert table.loc["demo", "rate"] == pytest.approx(1.0)
    assert table.loc["web", "rate"] == pytest.approx(0.5)


def test_engagement_before_conversion_ignores_later_events(
    leads: pd.DataFrame, outcomes: pd.DataFrame, events: pd.DataFrame
) -> None:
    table = engagement_before_conversion(events, stage_times(leads, outcomes), target="won")
    assert table.loc["demo", "per_converter"] == pytest.approx(1.0)  # a: 1 (not 2), c: 1
    assert table.loc["web", "per_other"] == pytest.approx(1.0)  # b: 2, d: 0
    assert table.index[0] == "demo"


def test_conversion_by_prediction_orders_stages_and_grades() -> None:
    preds = pd.DataFrame({"p": [0.9, 0.6, 0.3, 0.15, 0.01], "label": [1, 1, 0, 0, 0]})
    table = conversion_by_prediction(preds, Thresholds(mql=0.2, sql=0.5, base_rate=0.04))
    stage = table[table["by"] == "stage"].set_index("level")
    assert stage.loc["SQL", "n"] == 2 and stage.loc["SQL", "rate"] == 1.0
    assert stage.loc["nurture", "n"] == 2
    grade = table[table["by"] == "grade"].set_index("level")
    assert grade["n"].tolist() == [2, 1, 1, 1]


def test_importance_by_group_sums_event_features() -> None:
    definition = FeatureDefinition(
        event_types=("demo",), attributes=(("industry", "categorical"),)
    )
    importance = pd.DataFrame(
        {"feature": ["n_demo_7d", "days_since_demo", "industry"], "gain": [3.0, 1.0, 4.0]}
    )
    table = importance_by_group(importance, definition)
    assert table.loc["demo", "gain"] == pytest.approx(4.0)
    assert table["share"].sum() == pytest.approx(1.0)


def test_html_is_self_contained(leads: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    raw = RawData(
        leads=leads, events=None, outcomes=outcomes, attribute_types={"lead_source": "categorical"}
    )
    report = build_funnel_report(raw, Params())
    page = render_html(report)
    assert "data:image/png;base64," in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert any("No engagement events" in note for note in report.notes)


def test_flat_export_degrades_to_label_rates() -> None:
    leads = pd.DataFrame(
        {"lead_id": list("abcdef"), "country": list("xxyyzz"), "label": [1, 0, 1, 1, 0, 0]}
    )
    raw = RawData(
        leads=leads, events=None, outcomes=None, attribute_types={"country": "categorical"}
    )
    params = Params.model_validate({"data": {"format": "flat", "label_column": "converted"}})
    report = build_funnel_report(raw, params)
    assert isinstance(report, FunnelReport)
    assert "Conversion by country" in report.tables
    assert "Volume per stage and month" not in report.tables
    assert any("not available" in note for note in report.notes)


def test_spellings_of_one_value_are_one_row() -> None:
    spellings = ["US", "usa", " United States", "UNITED STATES", "Germany", "germany "]
    leads = pd.DataFrame(
        {"lead_id": list("abcdef"), "country": spellings, "label": [1, 0, 1, 1, 0, 0]}
    )
    raw = RawData(
        leads=leads, events=None, outcomes=None, attribute_types={"country": "categorical"}
    )
    aliases = {"country": {"US": "United States", "USA": "United States"}}
    params = Params.model_validate(
        {
            "data": {"format": "flat", "label_column": "converted"},
            "featurize": {"category_aliases": aliases},
        }
    )
    table = build_funnel_report(raw, params).tables["Conversion by country"]
    # one row per value, shown as the aliases' canonical spelling or the data's usual one
    assert table["n"].to_dict() == {"United States": 4, "Germany": 2}


def test_a_value_is_shown_as_its_most_frequent_spelling() -> None:
    leads = pd.DataFrame(
        {"lead_id": list("abcde"), "country": ["FR", "fr ", "FR", "DE", "Deutschland"]}
    )
    raw = RawData(
        leads=leads.assign(label=[1, 0, 1, 0, 0]),
        events=None,
        outcomes=None,
        attribute_types={"country": "categorical"},
    )
    aliases = {"country": {"DE": "Germany", "Deutschland": "Germany"}}
    params = Params.model_validate(
        {
            "data": {"format": "flat", "label_column": "converted"},
            "featurize": {"category_aliases": aliases},
        }
    )
    table = build_funnel_report(raw, params).tables["Conversion by country"]
    assert table["n"].to_dict() == {"FR": 3, "Germany": 2}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (36891.948000000004, "36,900"),
        (3_786_318.063, "3.79M"),
        (101_882_361_544.53, "102B"),
        (27.0, "27"),
        (895.8, "896"),
        (0.12345, "0.123"),
        (12.34, "12.3"),
    ],
)
def test_readable_number_has_three_significant_digits(value: float, text: str) -> None:
    assert readable_number(value) == text


def test_bins_have_round_edges_in_ascending_order() -> None:
    rng = np.random.default_rng(3)
    revenue = pd.Series(np.exp(rng.normal(16, 2, size=2_000)))
    revenue.iloc[:100] = np.nan
    labels, order = readable_bins(revenue)
    assert len(order) == 5 and labels.isna().sum() == 100
    assert set(labels.dropna()) == set(order)
    for label in order:  # "36,800-3.79M": two round numbers, no float noise, no brackets
        low, high = label.split("\u2013")
        for edge in (low, high):
            digits = edge.rstrip("KMBT").replace(",", "").replace(".", "").strip("0")
            assert len(digits) <= 3, label
        assert "(" not in label and "]" not in label


def test_whole_number_bins_do_not_overlap() -> None:
    employees = pd.Series(np.arange(1, 1001, dtype="float64"))
    labels, order = readable_bins(employees)
    ranges = [[int(x.replace(",", "")) for x in label.split("\u2013")] for label in order]
    assert ranges[0][0] == 1 and ranges[-1][1] == 1000
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert start == end + 1  # "1-201", "202-400": each whole number in exactly one bin
    assert labels.value_counts().between(195, 205).all()


def test_numeric_table_keeps_bin_order_and_missing_last() -> None:
    leads = pd.DataFrame({"employees": [*range(1, 41), None, None]})
    label = pd.Series([0] * 20 + [1] * 20 + [0, 1])
    table = conversion_by_attribute(leads, label, "employees")
    assert list(table.index)[-1] == "(missing)"
    assert list(table.index)[:-1] == readable_bins(leads["employees"])[1]
    assert table["rate"].iloc[0] == 0.0 and table["rate"].iloc[-2] == 1.0


def test_job_titles_are_grouped_by_the_features_seniority_and_function() -> None:
    titles = pd.Series(["VP Marketing", "Sr. Software Engineer", "Head of Sales", None, "Owner"])
    groups = title_groups(titles)
    assert groups["seniority"].tolist() == ["vp", "senior", "director", "(missing)", "c_level"]
    assert groups["function"].tolist() == [
        "marketing",
        "engineering",
        "sales",
        "(missing)",
        "other",
    ]


def test_report_groups_titles_instead_of_listing_them() -> None:
    titles = [f"Marketing Manager {i}" for i in range(30)] + ["CEO", None]
    leads = pd.DataFrame({"lead_id": range(32), "job_title": titles, "label": [1, 0] * 16})
    raw = RawData(
        leads=leads, events=None, outcomes=None, attribute_types={"job_title": "categorical"}
    )
    params = Params.model_validate({"data": {"format": "flat", "label_column": "converted"}})
    report = build_funnel_report(raw, params)
    assert "Conversion by job_title" not in report.tables
    seniority = report.tables["Conversion by job-title seniority (job_title)"]
    assert seniority["n"].to_dict() == {"manager": 30, "c_level": 1, "(missing)": 1}
    function = report.tables["Conversion by job-title function (job_title)"]
    assert "(other)" not in function.index


def test_summary_opens_the_report(
    leads: pd.DataFrame, outcomes: pd.DataFrame, events: pd.DataFrame
) -> None:
    raw = RawData(
        leads=leads,
        events=events,
        outcomes=outcomes,
        attribute_types={"lead_source": "categorical"},
    )
    preds = pd.DataFrame(
        {
            "split": ["test"] * 5 + ["train"],
            "p": [0.9, 0.6, 0.3, 0.15, 0.01, 0.9],
            "label": [1, 1, 0, 0, 0, 0],
        }
    )
    thresholds = Thresholds(mql=0.2, sql=0.5, base_rate=0.04)
    report = build_funnel_report(raw, Params(), predictions=preds, thresholds=thresholds)
    summary = report.summary
    assert summary is not None
    assert summary.stages == [("lead", 4), ("mql", 3), ("sql", 2), ("won", 2)]
    assert ("sql", "won", pytest.approx(15.0)) in summary.median_days
    assert summary.grades is not None
    assert summary.grades.set_index("level")["n"].to_dict() == {"A": 2, "B": 1, "C": 1, "D": 1}
    page = render_html(report)
    top = page[: page.index("<h2>", page.index("Summary") + 10)]  # the summary comes first
    assert page.index("Summary") < page.index("Volume per stage and month")
    for text in ("75%", "67%", "MQL", "SQL", "won", "Median time", "grade", "100.0%"):
        assert text in page
    assert "50.0%</b> of leads reached won" in top


def test_summary_of_a_flat_export_says_how_many_converted() -> None:
    summary = summarise_funnel(label=pd.Series([1, 0, 0, 1]), target="Converted", horizon_days=90)
    assert summary.stages == [] and summary.conversions == 2 and summary.n_leads == 4
    page = render_html(FunnelReport(title="t", summary=summary))
    assert "<b>2</b> of <b>4</b> leads (50.0%) converted (label column 'Converted')" in page


def test_tables_show_no_row_numbers_and_readable_cells(
    leads: pd.DataFrame, outcomes: pd.DataFrame
) -> None:
    raw = RawData(
        leads=leads, events=None, outcomes=outcomes, attribute_types={"lead_source": "categorical"}
    )
    page = render_html(build_funnel_report(raw, Params()))
    conversion = page[page.index("<h2>Conversion between stages</h2>") :]
    conversion = conversion[: conversion.index("</table>")]
    assert "<th></th>" not in conversion and "<th>0</th>" not in conversion
    assert "<td>75.0%</td>" in conversion  # lead -> mql as a percentage
    assert "<th>from</th>" in conversion


def test_write_funnel_report_from_params(
    tmp_path: Path, leads: pd.DataFrame, outcomes: pd.DataFrame
) -> None:
    data = tmp_path / "data" / "raw"
    data.mkdir(parents=True)
    leads.to_parquet(data / "leads.parquet")
    outcomes.to_parquet(data / "outcomes.parquet")
    params = {"data": {"dir": "data/raw", "events": None, "latent": None}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = write_funnel_report(params_path=tmp_path / "params.yaml", output=tmp_path / "r.html")
    page = out.read_text()
    assert "Conversion between stages" in page
    assert "No scored predictions" in page
    assert not np.any([p.name.endswith(".tmp") for p in tmp_path.iterdir()])
