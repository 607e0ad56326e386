"""The one feature definition, declared as data, and the rules every executor shares.

A :class:`FeatureDefinition` lists the engagement aggregates (event type x window counts, recency,
time-decayed counts, distinct active days, lead age) and the explicit attributes with the derived
ones (job-title seniority and function, free vs company e-mail, employee size band). Two executors
run it: :mod:`predictive_scoring.batch` compiles it to one Ibis expression (DuckDB or Spark) and
:mod:`predictive_scoring.online` evaluates it with numpy for leads sent to the service. Both see
only events with ``ts < as_of``, measured in whole epoch seconds, so they agree to the last bit
that floating point allows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from predictive_scoring.errors import FeatureError

__all__ = [
    "EMPLOYEE_BANDS",
    "FREE_EMAIL_DOMAINS",
    "FUNCTION_RULES",
    "SECONDS_PER_DAY",
    "SENIORITY_RULES",
    "SQL_TRIM",
    "AttributeKind",
    "FeatureDefinition",
    "build_definition",
    "category_text",
    "email_is_free",
    "employees_band",
    "encode_categories",
    "normal_text",
    "normalise_aliases",
    "parse_number",
    "sql_lower",
    "title_function",
    "title_seniority",
]

SECONDS_PER_DAY = 86_400
AttributeKind = Literal["numeric", "categorical"]

# Ordered (label, pattern) rules; the first that matches the lower-cased title wins. The patterns
# use only syntax shared by Python re, RE2 (DuckDB) and java.util.regex (Spark).
SENIORITY_RULES: tuple[tuple[str, str], ...] = (
    ("c_level", r"\b(chief|ceo|cfo|cto|cmo|coo|cio|cro|president|founder|co-founder|owner)\b"),
    ("vp", r"\b(vp|vice president|svp|evp)\b"),
    ("director", r"\b(director|head)\b"),
    ("manager", r"\b(manager|mgr|lead|supervisor)\b"),
    ("senior", r"\b(senior|sr|principal|staff)\b"),
    ("junior", r"\b(junior|jr|intern|assistant|associate|coordinator)\b"),
)
FUNCTION_RULES: tuple[tuple[str, str], ...] = (
    ("marketing", r"\b(marketing|mktg|growth|demand gen|brand|content|cmo)\b"),
    ("sales", r"\b(sales|account executive|business development|bdr|sdr|cro|revenue)\b"),
    ("engineering", r"\b(engineer|engineering|developer|cto|software|devops)\b"),
    ("it", r"\b(it|information technology|cio|systems|security)\b"),
    ("finance", r"\b(finance|financial|cfo|controller|accounting)\b"),
    ("operations", r"\b(operations|ops|coo)\b"),
    ("hr", r"\b(hr|human resources|people|talent|recruiting|recruiter)\b"),
)
FREE_EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "aol.com",
    "icloud.com",
    "live.com",
    "msn.com",
    "protonmail.com",
    "proton.me",
    "gmx.com",
    "gmx.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "qq.com",
    "163.com",
    "web.de",
    "hotmail.co.uk",
    "yahoo.co.uk",
    "uol.com.br",
    "bol.com.br",
)
# (upper bound exclusive, label): employees < bound gets the label; the last band is open-ended.
EMPLOYEE_BANDS: tuple[tuple[float, str], ...] = (
    (11.0, "1-10"),
    (51.0, "11-50"),
    (201.0, "51-200"),
    (1001.0, "201-1000"),
    (5001.0, "1001-5000"),
    (math.inf, "5000+"),
)
SENIORITY_FEATURE = "title_seniority"
FUNCTION_FEATURE = "title_function"
EMAIL_FEATURE = "email_is_free"
BAND_FEATURE = "employees_band"


@lru_cache(maxsize=65_536)
def _first_rule(text: str, rules: tuple[tuple[str, str], ...], default: str) -> str:
    for label, pattern in rules:
        if re.search(pattern, text):
            return label
    return default


# The characters the batch executor's TRIM removes (Ibis ``strip`` on DuckDB and Spark). Python's
# own ``str.strip()`` also removes Unicode spaces such as U+00A0, which would split the executors.
SQL_TRIM = " \t\n\r\x0b\x0c"


def sql_lower(text: str) -> str:
    """Lower case as the batch executor's LOWER: one code point for one.

    Python maps U+0130 (capital I with dot) to two code points, 'i' and a combining dot, so
    ``\bit\b`` would no longer match 'İT Manager' online while DuckDB's 'it manager' does.
    """
    return text.replace("\u0130", "i").lower()


def category_text(value: object) -> str | None:
    """A category value as training stores it: text as is, a whole number without '.0'.

    Training reads CSV cells as text and writes whole-number floats of a Parquet column as
    integers (``schema``); online values arrive as JSON numbers, so 7.0 must become '7' here.
    None and NaN are missing.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float | np.floating) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return None
        if number.is_integer() and abs(number) < 2**63:
            return str(int(number))
    return str(value)


def _title_text(title: object) -> str | None:
    text = category_text(title)
    if text is None or not text.strip():  # schema treats whitespace-only cells as missing
        return None
    return sql_lower(text.strip(SQL_TRIM))


def title_seniority(title: object) -> str | None:
    """Seniority label of a free-text job title, or None when the title is missing."""
    text = _title_text(title)
    return None if text is None else _first_rule(text, SENIORITY_RULES, "individual")


def title_function(title: object) -> str | None:
    """Business function of a free-text job title, or None when the title is missing."""
    text = _title_text(title)
    return None if text is None else _first_rule(text, FUNCTION_RULES, "other")


def email_is_free(email: object) -> float:
    """1.0 for a free-mail address, 0.0 for a company domain, NaN when missing or malformed."""
    if not isinstance(email, str) or "@" not in email:
        return math.nan
    domain = sql_lower(email.strip(SQL_TRIM)).rsplit("@", 1)[1]
    return 1.0 if domain in FREE_EMAIL_DOMAINS else 0.0


def employees_band(employees: object) -> str | None:
    """Size band of an employee count, or None when missing."""
    value = _as_float(employees)
    if math.isnan(value):
        return None
    for bound, label in EMPLOYEE_BANDS:
        if value < bound:
            return label
    return EMPLOYEE_BANDS[-1][1]


def parse_number(text: str) -> float:
    """A number written as text, read as training reads it (``pd.to_numeric``), else NaN.

    Python's ``float()`` also takes '1_000' and non-ASCII digits, which training refuses; those
    are NaN here, so the service, the lean path and the executor read a text as training does.
    """
    if "_" in text or not text.isascii():
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def _as_float(value: object) -> float:
    if value is None or isinstance(value, bytes):
        return math.nan
    if isinstance(value, str):
        return parse_number(value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _safe_name(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_").lower() or "x"


@dataclass(frozen=True)
class FeatureDefinition:
    """The declared features; serialised into the bundle so scoring rebuilds exactly these."""

    event_types: tuple[str, ...]
    windows_days: tuple[int, ...] = (7, 30, 90)
    half_life_days: float = 14.0
    active_days_window: int = 90
    attributes: tuple[tuple[str, AttributeKind], ...] = ()
    job_title_column: str | None = None
    email_column: str | None = None
    employees_column: str | None = None
    has_events: bool = True
    has_created_at: bool = True
    # (attribute, ((alias, canonical), ...)): spellings of one value, keys already normalised.
    aliases: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    # Texts that mean "missing" in the data (data.missing_values), normalised: "Select", "N/A".
    missing_values: tuple[str, ...] = ()
    version: int = 1
    _names: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.event_types)) != len(self.event_types):
            raise FeatureError(f"duplicate event types in the definition: {self.event_types}")
        if any(w <= 0 for w in self.windows_days):
            raise FeatureError(f"windows_days must be positive, got {self.windows_days}")
        names = self._build_names()
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise FeatureError(
                f"feature names collide: {dupes}; rename or exclude those attribute columns"
            )
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_alias", {name: dict(pairs) for name, pairs in self.aliases})
        object.__setattr__(self, "_missing", frozenset(self.missing_values))

    # --- categorical values -----------------------------------------------------------------
    def category_key(self, name: str, value: object) -> str | None:
        """A categorical value as the model knows it: case and surrounding spaces ignored, and
        the attribute's aliases (``featurize.category_aliases``) applied. None when missing.

        The batch executor states the same in SQL (:func:`batch.category_expr`); the parity
        tests hold the two together.
        """
        text = category_text(value)
        if text is None:
            return None
        key = normal_text(text)
        if not key or key in self._missing:  # type: ignore[attr-defined]
            return None
        aliases: dict[str, dict[str, str]] = self._alias  # type: ignore[attr-defined]
        found = aliases.get(name)
        return found.get(key, key) if found else key

    def is_missing(self, value: object) -> bool:
        """A blank text or one of the data's missing-value markers (case and spaces ignored)."""
        if not isinstance(value, str):
            return False
        key = normal_text(value)
        return not key or key in self._missing  # type: ignore[attr-defined]

    def alias_map(self, name: str) -> dict[str, str]:
        """The aliases of one attribute (normalised alias -> normalised canonical value)."""
        return dict(self._alias.get(name, {}))  # type: ignore[attr-defined]

    # --- names -----------------------------------------------------------------------------
    def type_slug(self, event_type: str) -> str:
        """Column-safe name of an event type."""
        return _safe_name(event_type)

    def count_name(self, event_type: str, window: int) -> str:
        return f"n_{self.type_slug(event_type)}_{window}d"

    def recency_name(self, event_type: str) -> str:
        return f"days_since_{self.type_slug(event_type)}"

    def decay_name(self, event_type: str) -> str:
        return f"decayed_{self.type_slug(event_type)}"

    @property
    def active_days_name(self) -> str:
        return f"active_days_{self.active_days_window}d"

    def engagement_names(self) -> list[str]:
        """Event features in executor order: totals, then per type counts, recency, decay."""
        if not self.has_events:
            return []
        names = ["n_events_total", self.active_days_name]
        names += [self.count_name(t, w) for t in self.event_types for w in self.windows_days]
        names += [self.recency_name(t) for t in self.event_types]
        names += [self.decay_name(t) for t in self.event_types]
        return names

    def derived(self) -> list[tuple[str, AttributeKind]]:
        """Derived attribute features and their kinds."""
        out: list[tuple[str, AttributeKind]] = []
        if self.job_title_column:
            out += [(SENIORITY_FEATURE, "categorical"), (FUNCTION_FEATURE, "categorical")]
        if self.email_column:
            out.append((EMAIL_FEATURE, "numeric"))
        if self.employees_column:
            out.append((BAND_FEATURE, "categorical"))
        return out

    def _build_names(self) -> list[str]:
        names = ["lead_age_days"] if self.has_created_at and self.has_events else []
        names += self.engagement_names()
        names += [name for name, _ in self.attributes]
        names += [name for name, _ in self.derived()]
        return names

    @property
    def feature_names(self) -> list[str]:
        """Every model input, in the order of the model's columns."""
        return list(self._names)

    @property
    def categorical_features(self) -> list[str]:
        """Model inputs that LightGBM treats as categorical."""
        kinds = dict(self.attributes) | dict(self.derived())
        return [n for n in self.feature_names if kinds.get(n) == "categorical"]

    @property
    def decay_rate(self) -> float:
        """Per-day decay rate ln(2) / half-life."""
        return math.log(2.0) / self.half_life_days

    # --- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_names")
        data["aliases"] = {name: dict(pairs) for name, pairs in self.aliases}
        data["missing_values"] = list(self.missing_values)
        data["event_types"] = list(self.event_types)
        data["windows_days"] = list(self.windows_days)
        data["attributes"] = [list(a) for a in self.attributes]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureDefinition:
        try:
            return cls(
                event_types=tuple(data["event_types"]),
                windows_days=tuple(int(w) for w in data["windows_days"]),
                half_life_days=float(data["half_life_days"]),
                active_days_window=int(data["active_days_window"]),
                attributes=tuple((str(n), k) for n, k in data["attributes"]),
                job_title_column=data.get("job_title_column"),
                email_column=data.get("email_column"),
                employees_column=data.get("employees_column"),
                has_events=bool(data.get("has_events", True)),
                has_created_at=bool(data.get("has_created_at", True)),
                aliases=normalise_aliases(data.get("aliases") or {}),
                missing_values=tuple(data.get("missing_values") or ()),
                version=int(data.get("version", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureError(
                f"the feature definition is incomplete or malformed: {exc}"
            ) from exc


def build_definition(
    *,
    event_types: Iterable[str],
    attribute_types: Mapping[str, AttributeKind],
    windows_days: Sequence[int],
    half_life_days: float,
    active_days_window: int,
    job_title_column: str | None,
    email_column: str | None,
    employees_column: str | None,
    has_events: bool,
    has_created_at: bool,
    aliases: Mapping[str, Mapping[str, str]] | None = None,
    missing_values: Sequence[str] = (),
) -> FeatureDefinition:
    """Assemble the definition from what the data holds; attributes keep their given order."""
    reserved = {job_title_column, email_column}
    attributes = tuple(
        (name, kind) for name, kind in attribute_types.items() if name not in reserved
    )
    return FeatureDefinition(
        event_types=tuple(sorted(set(event_types))),
        windows_days=tuple(sorted(set(int(w) for w in windows_days))),
        half_life_days=float(half_life_days),
        active_days_window=int(active_days_window),
        attributes=attributes,
        job_title_column=job_title_column,
        email_column=email_column,
        employees_column=employees_column,
        has_events=has_events,
        has_created_at=has_created_at,
        aliases=normalise_aliases(aliases or {}),
        missing_values=tuple(sorted({normal_text(m) for m in missing_values} - {""})),
    )


def normal_text(text: str) -> str:
    """A text with case and surrounding spaces folded, as the batch executor's TRIM and LOWER
    fold them: how categories, aliases and missing-value markers are compared everywhere."""
    return sql_lower(text.strip(SQL_TRIM))


def normalise_aliases(
    aliases: Mapping[str, Mapping[str, str]],
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """Aliases as the definition keeps them: keys and values normalised, sorted, no chains.

    ``{"country": {"US": "United States", "USA": "United States"}}`` maps ``us``, ``usa`` and
    ``united states`` (in any case, with surrounding spaces) to ``united states``.
    """
    out = []
    for name, mapping in sorted(aliases.items()):
        pairs = {normal_text(str(k)): normal_text(str(v)) for k, v in mapping.items()}
        for alias, canonical in pairs.items():
            if canonical in pairs and pairs[canonical] != canonical:
                raise FeatureError(
                    f"category_aliases.{name}: '{alias}' maps to '{canonical}', which is itself "
                    f"an alias of '{pairs[canonical]}'; map both straight to the final value"
                )
        kept = tuple(sorted((a, c) for a, c in pairs.items() if a != c))
        if kept:
            out.append((str(name), kept))
    return tuple(out)


def encode_categories(values: Sequence[object], levels: Sequence[str]) -> np.ndarray:
    """Map category strings to their level index (float), unseen and missing to NaN."""
    index = {level: float(i) for i, level in enumerate(levels)}
    return np.array(
        [index.get(v, math.nan) if isinstance(v, str) else math.nan for v in values],
        dtype=np.float64,
    )
