"""The command line's small promises: a version, one-line errors, sentences that read right."""

from __future__ import annotations

from importlib.metadata import version

import pytest
import typer
from typer.testing import CliRunner

from predictive_scoring.cli import app
from predictive_scoring.explain import feature_describers
from predictive_scoring.features import build_definition


def test_version_prints_the_installed_version() -> None:
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0
    assert done.output.strip() == f"predictive-scoring {version('predictive-scoring')}"


def test_serve_without_a_key_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API_KEYS", "ADMIN_KEYS", "OUTCOME_KEYS", "ALLOW_ANONYMOUS"):
        monkeypatch.delenv(f"PREDICTIVE_SCORING_{name}", raising=False)
    monkeypatch.chdir("/")  # no .env to read
    done = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert done.exit_code == 1
    assert "Traceback" not in done.output
    assert done.output.strip().startswith("error: no API key configured")
    assert len(done.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("days_since_demo_request", 1.2, "requested a demo 1 day ago"),
        ("days_since_demo_request", 3.0, "requested a demo 3 days ago"),
        ("lead_age_days", 1.0, "lead created 1 day ago"),
        ("lead_age_days", 30.0, "lead created 30 days ago"),
        ("n_demo_request_1d", 1.0, "1 demo request in the last day"),
        ("n_demo_request_7d", 2.0, "2 demo requests in the last 7 days"),
        ("active_days_1d", 1.0, "active on 1 day in the last day"),
    ],
)
def test_reasons_say_day_or_days(feature: str, value: float, text: str) -> None:
    definition = build_definition(
        event_types=["demo_request"],
        attribute_types={},
        windows_days=[1, 7],
        half_life_days=7,
        active_days_window=1,
        job_title_column=None,
        email_column=None,
        employees_column=None,
        has_events=True,
        has_created_at=True,
    )
    describe = feature_describers(definition, {})[definition.feature_names.index(feature)]
    assert describe(value) == text


def _command_paths() -> list[list[str]]:
    """Every command as the words that name it: [], ['serve'], ['outcomes', 'import']."""
    group = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        paths += [[name, sub] for sub in getattr(command, "commands", {})]
    return paths


@pytest.mark.parametrize("words", _command_paths(), ids=lambda w: " ".join(w) or "main")
def test_help_shows_no_type_after_a_flag(words: list[str]) -> None:
    done = CliRunner().invoke(app, [*words, "--help"], env={"COLUMNS": "120"})
    assert done.exit_code == 0, done.output
    assert "<bool>" not in done.output
    assert "--help" in done.output


def test_help_still_shows_the_type_of_an_option_that_takes_a_value() -> None:
    done = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "120"})
    assert "<int>" in done.output and "<bool>" not in done.output
