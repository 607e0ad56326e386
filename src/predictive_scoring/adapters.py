"""Adapters from public CRM-like exports to the data contract (DESIGN section 2).

Each adapter reads a third-party export and writes the tables ``schema.load_raw`` reads, so a
params.yaml pointing ``data.dir`` at the output runs the whole pipeline. The exports are never
modified; the outputs are written atomically.

- Olist marketing funnel (MQLs and closed deals) -> contract format: leads + outcomes, no events.
- UCI Online Shoppers (sessions with a ``Revenue`` flag) -> flat format: one leads table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictive_scoring.errors import DataValidationError
from predictive_scoring.io import write_parquet
from predictive_scoring.schema import parse_timestamps, read_table

__all__ = [
    "OLIST_CLOSED_DEAL_COLUMNS",
    "OLIST_DEALS_FILE",
    "OLIST_MQL_FILE",
    "UCI_SHOPPERS_FILE",
    "landing_page_history",
    "olist_to_contract",
    "uci_shoppers_to_flat",
]

logger = logging.getLogger(__name__)

OLIST_MQL_FILE = "olist_marketing_qualified_leads_dataset.csv"
OLIST_DEALS_FILE = "olist_closed_deals_dataset.csv"
# Every one of these exists only once a deal is won: as features they leak the label completely.
OLIST_CLOSED_DEAL_COLUMNS: tuple[str, ...] = (
    "business_segment",
    "lead_type",
    "lead_behaviour_profile",
    "has_company",
    "has_gtin",
    "average_stock",
    "business_type",
    "declared_product_catalog_size",
    "declared_monthly_revenue",
    "won_date",
)
UCI_SHOPPERS_FILE = "online_shoppers_intention.csv"
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], *, file: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            [
                f"{file}: missing column(s) {missing}; this adapter expects the original "
                f"export with columns {list(columns)}"
            ]
        )


def landing_page_history(created: pd.Series, page: pd.Series) -> pd.DataFrame:
    """Point-in-time landing-page statistics: only leads first contacted on EARLIER days count.

    Returns ``landing_page_prior_mqls`` (MQLs the page brought before this lead's day) and
    ``landing_page_age_days`` (days since the page's first MQL); aligned with ``created``.
    """
    frame = pd.DataFrame({"day": created.dt.floor("D"), "page": page.astype("object")})
    frame["page"] = frame["page"].where(frame["page"].notna(), "\x00missing")
    per_day = frame.groupby(["page", "day"], sort=True).size().rename("n").reset_index()
    per_day["prior"] = per_day.groupby("page")["n"].cumsum() - per_day["n"]
    per_day["first_day"] = per_day.groupby("page")["day"].transform("min")
    keyed = frame.merge(per_day, on=["page", "day"], how="left")
    age = (keyed["day"] - keyed["first_day"]).dt.total_seconds() / 86_400.0
    out = pd.DataFrame(
        {
            "landing_page_prior_mqls": keyed["prior"].to_numpy(dtype="float64"),
            "landing_page_age_days": age.to_numpy(dtype="float64"),
        },
        index=created.index,
    )
    unknown = page.isna().to_numpy()
    out.loc[unknown, :] = np.nan
    return out


def olist_to_contract(
    src_dir: Path,
    out_dir: Path,
    *,
    join_closed_deal_columns: bool = False,
    derived_attributes: bool = False,
) -> dict[str, Any]:
    """Olist MQLs + closed deals -> ``leads.parquet`` and ``outcomes.parquet`` in ``out_dir``.

    Leads are the MQLs (``lead_id`` = ``mql_id``, ``created_at`` = ``first_contact_date``,
    attributes ``origin`` and ``landing_page_id``); outcomes are an ``mql`` row at first contact
    and a ``won`` row at ``won_date``. Olist has no engagement log, so no events table is written:
    set ``data.events: null``. ``derived_attributes`` adds what is known at first contact (weekday,
    point-in-time landing-page history); off by default: on Olist they lowered valid ROC-AUC, as
    pages first seen in 2017 behave differently from 2018 ones. ``join_closed_deal_columns``
    also joins the closed-deal columns on as attributes: they exist only for won leads, the
    leakage demonstration.
    Returns a summary of what was written.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    mql_file, deals_file = src_dir / OLIST_MQL_FILE, src_dir / OLIST_DEALS_FILE
    mqls = read_table(mql_file)
    deals = read_table(deals_file)
    _require_columns(
        mqls, ("mql_id", "first_contact_date", "landing_page_id", "origin"), file=mql_file
    )
    _require_columns(deals, ("mql_id", "won_date", *OLIST_CLOSED_DEAL_COLUMNS), file=deals_file)
    created, bad_created = parse_timestamps(mqls["first_contact_date"])
    won_at, bad_won = parse_timestamps(deals["won_date"])
    problems = [
        f"{file}: column '{col}': {int(bad.sum())} unparseable date(s)"
        for file, col, bad in (
            (mql_file, "first_contact_date", bad_created),
            (deals_file, "won_date", bad_won),
        )
        if bad.any()
    ]
    unknown = ~deals["mql_id"].isin(mqls["mql_id"])
    if unknown.any():
        problems.append(
            f"{deals_file}: {int(unknown.sum())} closed deal(s) name an mql_id that is not in "
            f"{mql_file}"
        )
    if problems:
        raise DataValidationError(problems)

    leads = pd.DataFrame(
        {
            "lead_id": mqls["mql_id"].astype("str"),
            "created_at": created,
            "origin": mqls["origin"],
            "landing_page_id": mqls["landing_page_id"],
        }
    )
    if derived_attributes:
        leads["first_contact_weekday"] = created.dt.dayofweek.map(dict(enumerate(_WEEKDAYS)))
        leads = leads.join(landing_page_history(created, mqls["landing_page_id"]))
    if join_closed_deal_columns:
        extra = deals[["mql_id", *OLIST_CLOSED_DEAL_COLUMNS]].rename(columns={"mql_id": "lead_id"})
        extra["won_date"] = won_at
        leads = leads.merge(extra, on="lead_id", how="left", validate="one_to_one")

    outcomes = pd.concat(
        [
            pd.DataFrame({"lead_id": leads["lead_id"], "stage": "mql", "ts": created}),
            pd.DataFrame({"lead_id": deals["mql_id"].astype("str"), "stage": "won", "ts": won_at}),
        ],
        ignore_index=True,
    ).sort_values(["lead_id", "ts"], kind="stable", ignore_index=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(out_dir / "leads.parquet", leads)
    write_parquet(out_dir / "outcomes.parquet", outcomes)
    stale = out_dir / "events.parquet"
    if stale.exists():  # an earlier run's events would not match these leads
        stale.unlink()
    won_before = (
        won_at.to_numpy()
        < leads.set_index("lead_id").loc[deals["mql_id"], "created_at"].to_numpy()
    )
    summary: dict[str, Any] = {
        "n_leads": len(leads),
        "n_won": len(deals),
        "n_outcomes": len(outcomes),
        "won_rate": len(deals) / len(leads),
        "won_before_first_contact": int(won_before.sum()),
        "first_contact": [str(created.min()), str(created.max())],
        "last_won": str(won_at.max()),
        "attributes": [c for c in leads.columns if c not in ("lead_id", "created_at")],
        "files": [str(out_dir / "leads.parquet"), str(out_dir / "outcomes.parquet")],
    }
    logger.info(
        "olist: %d MQLs, %d won (%.1f%%) -> %s",
        len(leads),
        len(deals),
        100 * summary["won_rate"],
        out_dir,
    )
    return summary


def uci_shoppers_to_flat(
    src: Path, out_dir: Path, *, leads_file: str = "leads.parquet"
) -> dict[str, Any]:
    """UCI Online Shoppers CSV -> a flat leads table with a ``session_id`` and label ``Revenue``.

    Values are kept as text (the schema infers types, params force the coded categoricals);
    ``src`` is the CSV file or the folder holding it. Returns a summary.
    """
    src = Path(src)
    file = src / UCI_SHOPPERS_FILE if src.is_dir() else src
    frame = read_table(file)
    _require_columns(frame, ("Revenue", "PageValues", "Month", "VisitorType"), file=file)
    frame.insert(0, "session_id", [f"s{i + 1:05d}" for i in range(len(frame))])
    out = Path(out_dir) / leads_file
    write_parquet(out, frame)
    positive = frame["Revenue"].str.strip().str.lower().eq("true")
    summary: dict[str, Any] = {
        "n_leads": len(frame),
        "label_rate": float(positive.mean()),
        "columns": list(frame.columns),
        "files": [str(out)],
    }
    logger.info(
        "uci shoppers: %d sessions, %.1f%% converted -> %s",
        len(frame),
        100 * summary["label_rate"],
        out,
    )
    return summary
