"""The `predictive-scoring` command: demo data, batch scoring of CRM files, promotion, serving."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from predictive_scoring.errors import PredictiveScoringError, redact

_F = TypeVar("_F", bound=Callable[..., Any])


def _hide_flag_types(params: list[Any]) -> None:
    """A flag takes no value, so its help shows no type (typer's rich help prints `<bool>`)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""


class _Command(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _Group(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _hide_flag_types(self.get_params(ctx))
        super().format_help(ctx, formatter)


class _App(typer.Typer):
    """A Typer app whose commands and groups show flags without a type in --help."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[_F], _F]:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _App(
    name="predictive-scoring",
    help="Predictive lead scoring: calibrated, explained, leakage-free.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
logger = logging.getLogger("predictive_scoring.cli")

ParamsOption = Annotated[Path, typer.Option("--params", help="params.yaml to read")]


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {redact(str(exc))}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"predictive-scoring {version('predictive-scoring')}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    from predictive_scoring.io import setup_logging

    setup_logging("DEBUG" if verbose else "INFO")


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="folder for the demo tables")] = Path("data/demo"),
    n_leads: Annotated[int | None, typer.Option(help="override generate.n_leads")] = None,
    events_per_lead: Annotated[float | None, typer.Option(help="mean events per lead")] = None,
    seed: Annotated[int | None, typer.Option(help="override generate.seed")] = None,
    params: ParamsOption = Path("params.yaml"),
) -> None:
    """Simulate a B2B funnel (leads, events, outcomes) with known ground truth."""
    from predictive_scoring.config import GenerateParams, load_params
    from predictive_scoring.synth import generate_demo

    base = load_params(params).generate if params.exists() else GenerateParams()
    updates = {
        k: v
        for k, v in {"n_leads": n_leads, "events_per_lead": events_per_lead, "seed": seed}.items()
        if v is not None
    }
    summary = generate_demo(out, base.model_copy(update=updates), progress=sys.stderr.isatty())
    typer.echo(
        f"{int(summary['n_leads'])} leads, {int(summary['n_events'])} events, "
        f"{int(summary['n_outcomes'])} outcomes -> {out}"
    )


BundleOption = Annotated[
    Path | None,
    typer.Option(
        "--bundle",
        "--model",
        help="score with this model bundle folder instead of the MLflow champion "
        "(default: PREDICTIVE_SCORING_BUNDLE_DIR, else models:/lead-scoring@champion)",
    ),
]


def _column(help_text: str) -> Any:
    return typer.Option(help=f"{help_text} (default: the data section of --params)")


@app.command()
def score(
    leads: Annotated[
        Path,
        typer.Option(
            help="CSV or Parquet of leads: an id column, created_at (required when the model "
            "never saw a lead without it), any attribute columns, optionally as_of"
        ),
    ],
    output: Annotated[Path, typer.Option(help="where to write the scored CSV")],
    events: Annotated[
        Path | None,
        typer.Option(help="CSV or Parquet of events: lead id, event type and time columns"),
    ] = None,
    bundle: BundleOption = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="score as of this time, ISO 8601 such as 2026-11-30T00:00:00Z "
            "(default: now; an as_of column in the leads wins)"
        ),
    ] = None,
    params: Annotated[
        Path, typer.Option("--params", help="params.yaml whose data section names the columns")
    ] = Path("params.yaml"),
    sep: Annotated[str | None, _column("CSV field separator, e.g. ';'")] = None,
    id_column: Annotated[str | None, _column("the lead id column of both files")] = None,
    created_column: Annotated[str | None, _column("the leads' creation time column")] = None,
    event_type_column: Annotated[str | None, _column("the events' type column")] = None,
    event_time_column: Annotated[str | None, _column("the events' time column")] = None,
    log_dir: Annotated[
        str | None,
        typer.Option(
            help="the score log to add these scores to: a folder or an fsspec URL "
            "(default: PREDICTIVE_SCORING_LOG_DIR, else logs/)"
        ),
    ] = None,
    log: Annotated[
        bool | None,
        typer.Option(
            "--log/--no-log",
            help="record the scores in the score log (default: PREDICTIVE_SCORING_LOG_ENABLED, "
            "else on)",
        ),
    ] = None,
) -> None:
    """Score a CRM export into a file the CRM can import (written atomically).

    Files are read as training reads them; column names and the separator come from the data
    section of params.yaml unless an option names them. Every lead is checked before any is
    scored: an error names the file, the column and the row, and nothing is written. The output
    has your id column, probability, score, stage, grade, reasons, warnings and the model's
    lineage (version, definition hash, thresholds version, training data hash). The model is the
    one the service would serve, unless --bundle names a bundle. The scores are added to the
    score log (source "file") unless --no-log.
    """
    from predictive_scoring.config import DataParams, load_params
    from predictive_scoring.filescore import score_files
    from predictive_scoring.serve.app import choose_served_model
    from predictive_scoring.serve.settings import Settings

    try:
        data = load_params(params).data if params.exists() else DataParams()
        named = {
            "sep": sep,
            "id_column": id_column,
            "created_column": created_column,
            "event_type_column": event_type_column,
            "event_time_column": event_time_column,
        }
        data = data.model_copy(update={k: v for k, v in named.items() if v is not None})
        settings = Settings()
        if bundle is not None:
            settings = settings.model_copy(update={"bundle_dir": bundle})
        if log_dir is not None:
            settings = settings.model_copy(update={"log_dir": log_dir})
        logging_on = settings.log_enabled if log is None else log
        choice = choose_served_model(settings, bundle_set_by="--bundle" if bundle else None)
        logger.info("scoring with %s", redact(choice.why))
        summary = score_files(
            scorer=choice.scorer,
            leads=leads,
            events=events,
            output=output,
            data=data,
            as_of=as_of,
            log_store=settings.log_store if logging_on else None,
        )
    except PredictiveScoringError as exc:
        raise _fail(exc) from exc
    scorer = choice.scorer
    typer.echo(f"scored {summary.n_leads} leads with {scorer.name} v{scorer.version} -> {output}")
    if logging_on:
        typer.echo(f"score log: {summary.n_leads} leads added to {settings.log_store}")
    stages = ", ".join(f"{stage} {summary.stages[stage]}" for stage in ("SQL", "MQL", "nurture"))
    typer.echo(f"stages: {stages}")
    if summary.warnings:
        typer.echo("inputs the model never saw (scored as missing or ignored; see 'warnings'):")
        for what, n in summary.warnings.most_common(10):
            typer.echo(f"  {what}: {n} lead(s)")


@app.command()
def promote(
    force: Annotated[
        bool, typer.Option(help="promote even if it does not win or cannot be compared")
    ] = False,
    params: ParamsOption = Path("params.yaml"),
    features: Annotated[
        Path, typer.Option(help="test features both models are measured on")
    ] = Path("data/features/test.parquet"),
) -> None:
    """Give the challenger the champion alias if it is at least as good on the same test set."""
    from predictive_scoring.config import load_params
    from predictive_scoring.registry import metric_on_features, promote_challenger
    from predictive_scoring.scoring import Scorer

    try:
        p = load_params(params)
        measure: Callable[[Scorer], float] | None = None
        if features.exists():
            import pandas as pd

            frame = pd.read_parquet(features)
            metric = p.promote.metric

            def measure(scorer: Scorer) -> float:
                return metric_on_features(scorer, frame, metric=metric)

        result = promote_challenger(
            model_name=p.export.model_name,
            challenger_alias=p.export.alias,
            champion_alias=p.promote.champion_alias,
            metric=p.promote.metric,
            greater_is_better=p.promote.greater_is_better,
            force=force,
            measure=measure,
        )
    except PredictiveScoringError as exc:
        raise _fail(exc) from exc
    name, version = result["model"], result["challenger_version"]
    if result["already_champion"]:
        typer.echo(f"{name} v{version} is already @{p.promote.champion_alias}; nothing changed")
        return
    if "not_comparable" in result:
        versus = f" (not compared: {result['not_comparable']})"
    elif "champion" in result:
        versus = f" (champion v{result['champion_version']}: {result['champion']:.4f})"
    else:
        versus = ""
    typer.echo(
        f"promoted {name} v{version} to @{p.promote.champion_alias}: "
        f"test {result['metric']} {result['challenger']:.4f}{versus}"
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="serve this model bundle folder instead of the MLflow champion "
            "(sets PREDICTIVE_SCORING_BUNDLE_DIR)"
        ),
    ] = None,
) -> None:
    """Run the scoring service (settings from PREDICTIVE_SCORING_* variables or .env).

    It serves models:/lead-scoring@champion from the project's MLflow store, or the bundle
    when one is set; the start-up log and GET /v1/model say which and why.
    """
    import os

    import uvicorn

    from predictive_scoring.model_source import BUNDLE_ENV

    if bundle is not None:
        # the environment reaches the factory in this process and in every worker
        os.environ[BUNDLE_ENV] = str(bundle.resolve())
    from predictive_scoring.serve.app import settings_from_environment

    try:  # the app refuses to start without a key: say so in one line, not a traceback
        settings_from_environment()
    except PredictiveScoringError as exc:
        raise _fail(exc) from exc
    uvicorn.run(
        "predictive_scoring.serve:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@app.command()
def report(
    params: ParamsOption = Path("params.yaml"),
    output: Annotated[Path, typer.Option(help="HTML file to write")] = Path("reports/funnel.html"),
) -> None:
    """Write the funnel report, one offline HTML page: a summary, volumes, conversion, lift."""
    from predictive_scoring.funnel import write_funnel_report

    try:
        write_funnel_report(params_path=params, output=output)
    except PredictiveScoringError as exc:
        raise _fail(exc) from exc
    typer.echo(f"funnel report -> {output}")


@app.command("api-key")
def api_key() -> None:
    """Print a new random API key (for PREDICTIVE_SCORING_API_KEYS)."""
    import secrets

    typer.echo(f"ps_{secrets.token_urlsafe(24)}")


outcomes_app = _App(
    help="Outcomes back in: stage changes and sales acceptance from the CRM.",
    no_args_is_help=True,
)
app.add_typer(outcomes_app, name="outcomes")


@outcomes_app.command("import")
def outcomes_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or Parquet in the data contract's outcomes shape: lead id, stage, time, "
            "optionally a reason"
        ),
    ],
    store: Annotated[
        str | None,
        typer.Option(
            help="the outcome store, a folder or an fsspec URL (default: "
            "PREDICTIVE_SCORING_LOG_DIR, the service's store)"
        ),
    ] = None,
    params: Annotated[
        Path, typer.Option("--params", help="params.yaml whose data section names the columns")
    ] = Path("params.yaml"),
    sep: Annotated[str | None, _column("CSV field separator, e.g. ';'")] = None,
    id_column: Annotated[str | None, _column("the lead id column")] = None,
    stage_column: Annotated[str | None, _column("the stage column")] = None,
    time_column: Annotated[
        str | None, _column("the time column (data.outcome_time_column)")
    ] = None,
    reason_column: Annotated[
        str, typer.Option(help="the optional reason column (no reasons if it is absent)")
    ] = "reason",
) -> None:
    """Store a CRM export of stage changes, all or nothing, as POST /v1/outcomes does.

    Stages: mql, sql, opportunity, won, lost, and sql_accepted / sql_rejected (sales accepting
    or rejecting an SQL, with a reason such as "no budget"). Every row is checked first: an
    error names the file, the column and the row, and nothing is stored. Rows the store already
    holds (same lead, stage and time) are counted, not stored again, so importing the same file
    twice is harmless.
    """
    from collections import Counter

    from predictive_scoring.config import DataParams, load_params
    from predictive_scoring.outcomes import check_outcomes, read_outcome_file, store_outcomes
    from predictive_scoring.serve.settings import Settings

    try:
        data = load_params(params).data if params.exists() else DataParams()
        named = {
            "sep": sep,
            "id_column": id_column,
            "stage_column": stage_column,
            "outcome_time_column": time_column,
        }
        data = data.model_copy(update={k: v for k, v in named.items() if v is not None})
        settings = Settings()
        table = check_outcomes(
            read_outcome_file(file, data=data, reason_column=reason_column),
            skew_seconds=settings.clock_skew_seconds,
            source="file",
        )
        where = store or settings.log_store
        done = store_outcomes(where, table)
    except PredictiveScoringError as exc:
        raise _fail(exc) from exc
    stages = ", ".join(
        f"{stage} {n}" for stage, n in Counter(table.column("stage").to_pylist()).most_common()
    )
    typer.echo(
        f"{done.received} outcomes from {file}: {done.stored} stored, {done.already_known} "
        f"already known -> {where}" + (f" ({stages})" if stages else "")
    )


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="folder for the period's tables")] = Path(
        "data/production"
    ),
    weeks: Annotated[
        int,
        typer.Option(
            help="weeks of production after the training data (13 give the drift window the "
            "training reference's mix of lead ages; 26 let cohorts mature for realized figures)"
        ),
    ] = 13,
    shift: Annotated[
        Literal["none", "new_source", "bot_burst", "conversion_drop"],
        typer.Option(
            help="inject one change: a new lead source unseen in training that converts less, "
            "bursts of bot engagement, or a drop in the true conversion rate"
        ),
    ] = "none",
    share: Annotated[
        float,
        typer.Option(
            help="new_source: new leads as a share of the period's; bot_burst: the "
            "share of leads bots hit"
        ),
    ] = 0.3,
    factor: Annotated[
        float, typer.Option(help="conversion_drop: the share of wins that remain")
    ] = 0.5,
    seed: Annotated[
        int | None, typer.Option(help="the period's seed (default generate.seed)")
    ] = None,
    n_leads: Annotated[
        int | None,
        typer.Option(help="leads created in the period (default: the training data's volume)"),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    url: Annotated[
        str | None,
        typer.Option(
            help="replay the period through the service at this URL, e.g. "
            "http://127.0.0.1:8000 (default: only write the tables)"
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="key to score with (default: the first of PREDICTIVE_SCORING_API_KEYS)"),
    ] = None,
    outcome_key: Annotated[
        str | None,
        typer.Option(
            help="key to post outcomes with (default: the first of "
            "PREDICTIVE_SCORING_OUTCOME_KEYS, else of the admin keys, else --api-key)"
        ),
    ] = None,
    rate: Annotated[float, typer.Option(help="requests per second at most")] = 10.0,
    batch_size: Annotated[int, typer.Option(help="leads or outcomes per request")] = 100,
    ages: Annotated[
        str | None,
        typer.Option(
            help="ages in days at which each open lead is scored, e.g. 0,7,30,60, or 'weekly' "
            "(default: featurize.offsets_days, the ages training saw)"
        ),
    ] = None,
) -> None:
    """Simulate production after the training data, optionally shifted, and replay it.

    The period continues the demo's funnel (same generator, same ground truth) for --weeks
    after generate's data ends, and is written to --out in the data contract's shape, with
    sales accepting or rejecting SQLs (with reasons), the latent truth and period.json (what
    was shifted). With --url it is replayed through a running service: every open lead scored
    at each of --ages, every stage change posted to /v1/outcomes once its time has passed, the
    period mapped onto the most recent whole weeks before today.
    """
    from predictive_scoring.config import GenerateParams, load_params
    from predictive_scoring.simulate import Shift, parse_ages, replay, simulate_period

    try:
        p = load_params(params) if params.exists() else None
        demo = p.generate if p is not None else GenerateParams()
        written = simulate_period(
            out,
            demo,
            weeks=weeks,
            shift=Shift(kind=shift, share=share, factor=factor),
            seed=seed,
            n_leads=n_leads,
        )
        typer.echo(
            f"{written.n_leads} leads, {written.n_events} events, {written.n_outcomes} outcomes "
            f"from {written.start} to {written.end} -> {out}"
        )
        typer.echo(f"shift {shift}: {written.shift['description']}")
        if url is None:
            return
        from predictive_scoring.serve.settings import Settings

        settings = Settings()

        def first(*groups: list[Any]) -> str | None:
            keys = [k for group in groups for k in group]
            return str(keys[0].get_secret_value()) if keys else None

        score_key = api_key or first(settings.api_keys, settings.admin_keys, settings.outcome_keys)
        offsets = p.featurize.offsets_days if p is not None else [0, 7, 30, 60]
        logging.getLogger("httpx").setLevel(logging.WARNING)
        done = replay(
            out,
            url=url,
            api_key=score_key,
            outcome_key=outcome_key or first(settings.outcome_keys, settings.admin_keys),
            rate=rate,
            batch_size=batch_size,
            ages=parse_ages(ages, offsets=offsets) if ages else tuple(offsets),
            progress=sys.stderr.isatty(),
        )
    except PredictiveScoringError as exc:
        raise _fail(exc) from exc
    typer.echo(
        f"replayed as {done.start} to {done.end}: {done.requests} requests, {done.errors} "
        f"errors; {done.scorings} of {done.scorings_planned} scorings of {done.leads} leads "
        f"({', '.join(f'{k} {v}' for k, v in done.stages.items())})"
    )
    if done.outcomes_endpoint:
        typer.echo(f"outcomes: {done.outcomes_posted} of {done.outcomes_due} posted")
    else:
        typer.echo(
            f"outcomes: the service has no POST /v1/outcomes; {done.outcomes_due} written to "
            f"{done.outcomes_file} (predictive-scoring outcomes import)"
        )
    if done.errors:
        raise typer.Exit(code=1)


def _moment(value: str | None, option: str) -> Any:
    """An ISO 8601 date or time from the command line (no zone means UTC), or None."""
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date or time such as 2026-11-30T00:00:00Z",
            param_hint=option,
        ) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command()
def monitor(
    store: Annotated[
        str | None,
        typer.Option(
            help="the score log and outcome store: a folder or an fsspec URL "
            "(default: the service's PREDICTIVE_SCORING_LOG_DIR, logs/)"
        ),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            "--model",
            help="monitor this bundle's version instead of the served model "
            "(default: PREDICTIVE_SCORING_BUNDLE_DIR, else models:/lead-scoring@champion)",
        ),
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    html: Annotated[Path, typer.Option(help="HTML report to write")] = Path(
        "reports/monitoring.html"
    ),
    json_path: Annotated[Path, typer.Option("--json", help="JSON report to write")] = Path(
        "reports/monitoring.json"
    ),
    now: Annotated[
        str | None,
        typer.Option(
            help="outcomes are known up to this time, ISO 8601 (default: the latest outcome)"
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="only scores with as_of from this time, ISO 8601")
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            help="exit with code 3 when the verdict is at least this: investigate or retrain"
        ),
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="log the figures to MLflow")
    ] = True,
) -> None:
    """Compare the score log and the outcomes with the model's reference and promises.

    Writes reports/monitoring.html and reports/monitoring.json: volumes per stage against the
    capacity agreement, realized conversion and AUC on cohorts whose horizon has passed,
    CBPE estimates on the open ones, PSI of the score and of every feature, SQL acceptance by
    reason and the SLA, and a verdict (ok, investigate, retrain) from the monitor section of
    params.yaml; logs them to MLflow (experiment lead-scoring-monitoring). The model is the
    one the service would serve, unless --bundle names a bundle.
    """
    from predictive_scoring.config import load_params
    from predictive_scoring.monitor import LEVELS, monitored_model, run_monitor, verdict_at_least
    from predictive_scoring.serve.app import choose_served_model
    from predictive_scoring.serve.settings import Settings

    if fail_on is not None and fail_on not in LEVELS[1:]:
        raise typer.BadParameter(
            f"{fail_on!r}: choose investigate or retrain", param_hint="--fail-on"
        )
    at, start = _moment(now, "--now"), _moment(since, "--since")
    try:
        p = load_params(params)
        settings = Settings()
        if bundle is not None:
            settings = settings.model_copy(update={"bundle_dir": bundle})
        choice = choose_served_model(settings, bundle_set_by="--bundle" if bundle else None)
        logger.info("monitoring %s", redact(choice.why))
        model = monitored_model(choice.scorer.metadata, featurize=p.featurize, source=choice.why)
        report = run_monitor(
            store or settings.log_store,
            model,
            p.monitor,
            html_path=html,
            json_path=json_path,
            now=at,
            since=start,
            mlflow=mlflow,
        )
    except PredictiveScoringError as exc:
        raise _fail(exc) from exc
    verdict = report["verdict"]
    typer.echo(f"{model.name} v{model.version}: {report['window'].get('scores', 0):,} scores")
    for note in report.get("notes", []):
        typer.echo(f"  {note}")
    typer.echo(f"verdict: {verdict['level']}")
    for reason in verdict["reasons"]:
        typer.echo(f"  - {reason['level']}: {reason['message']}")
    typer.echo(f"report -> {html}, {json_path}")
    if fail_on is not None and verdict_at_least(verdict["level"], fail_on):
        raise typer.Exit(code=3)


if __name__ == "__main__":  # pragma: no cover
    app()
