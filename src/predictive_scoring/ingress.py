"""One way in: the rules every lead obeys on its way to the scorer, each stated once.

Whatever the lead arrives as (a JSON lead or batch, a CSV or Parquet file, the pyfunc's
DataFrame, a :class:`LeadInput` in Python), a decoder only turns it into :class:`RawLeads`, the
values as given. :func:`admit` then applies the rules and returns the executor's batch:

- timestamps: :mod:`predictive_scoring.timestamps` (one reader, the serving and training
  policies) for every time, and ``as_of`` never before ``created_at``;
- attributes: numbers coerced one way (text as training reads it, finite, not negative where
  training never saw a negative), categories normalised by the feature definition;
- limits: leads per call, events per lead, lengths of ids, types and texts, unique ids;
- what the model never saw: an input never missing in training is required; an unseen category
  or event type is scored as missing and reported as a :class:`InputWarning`;
- the CRM's own field names: a :class:`FieldMap` (the ``PREDICTIVE_SCORING_FIELD_MAP``
  setting) renames them to the model's inputs, in a JSON record and in a table's columns alike,
  and :func:`admit` refuses a map whose targets the model does not take.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd

from predictive_scoring.config import FIELD_MAP_ENV, IngressSettings
from predictive_scoring.errors import ConfigError, ScoringInputError
from predictive_scoring.features import FeatureDefinition, parse_number
from predictive_scoring.online import LeadBatch
from predictive_scoring.timestamps import (
    SERVING,
    TIME_FIX,
    TimePolicy,
    iso,
    out_of_bounds,
    read_seconds,
)

__all__ = [
    "LEAD_FIELDS",
    "Admitted",
    "FieldMap",
    "InputWarning",
    "LeadInput",
    "Limits",
    "ModelInputs",
    "Origin",
    "RawLeads",
    "admit",
    "input_profile",
    "lead_id_text",
    "raw_from_frames",
    "raw_from_lead_inputs",
    "raw_from_nested",
    "raw_from_objects",
    "read_time_option",
]


@dataclass(frozen=True)
class Limits:
    """What one call may hold. ``None`` means no limit (files are scored in chunks)."""

    max_leads: int | None = 10_000
    max_events_per_lead: int | None = 5_000
    max_id_length: int = 256
    max_event_type_length: int = 200
    max_text_length: int = 1_000
    unique_ids: bool = True
    times: TimePolicy = SERVING


@dataclass(frozen=True)
class LeadInput:
    """One lead given in Python: attributes, events as (event_type, time), and its times.

    Times are anything :func:`read_seconds` reads: epoch seconds, ISO 8601 text, datetimes.
    """

    lead_id: str
    attributes: Mapping[str, object] = field(default_factory=dict)
    events: Sequence[tuple[str, object]] = ()
    created_at: object = None
    as_of: object = None


@dataclass(frozen=True)
class InputWarning:
    """An input the model never saw, and what was done with it."""

    field: str
    value: str
    action: str


# --------------------------------------------------------------------------------------------
# Where a value came from: a problem names the place as the caller knows it


Place = tuple[list[str | int], str]  # a FastAPI-style loc, and the same for a message


@dataclass(frozen=True)
class Origin:
    """The source of a batch: a JSON body (one lead or ``leads``), or the rows of a table.

    JSON problems carry a FastAPI-style ``loc`` (``["body", "leads", 3, "as_of"]``); table
    problems name the file, the column as the user wrote it, and the row.
    """

    source: str = "body"
    batch: bool = False
    table: bool = False
    events_source: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)

    def _column(self, name: str) -> str:
        return self.columns.get(name, name)

    def lead(self, row: int, *path: str) -> Place:
        if self.table:
            column = self._column(path[-1])
            return [row + 1, column], f"{self.source}: column '{column}' row {row + 1}"
        loc: list[str | int] = ["body", "leads", row] if self.batch else ["body"]
        return [*loc, *path], ".".join(str(p) for p in path) if path else "lead"

    def event(self, lead_row: int, at: int, name: str) -> Place:
        """An event's place: ``at`` is its row in the events table, or its index in the lead."""
        if self.table and self.events_source is not None:
            return [
                at + 1,
                name,
            ], f"{self.events_source}: column '{self._column(name)}' row {at + 1}"
        if self.table:
            col = self._column("events")
            return [lead_row + 1, col], f"{self.source}: column '{col}' row {lead_row + 1}"
        loc, _ = self.lead(lead_row, "events")
        return [*loc, at, name], f"events[{at}].{name}"

    def problem(self, place: Place, message: str, kind: str) -> ScoringInputError:
        loc, where = place
        return ScoringInputError(f"{where}: {message}", field=str(loc[-1]), loc=loc, kind=kind)

    def top(self, name: str, message: str, kind: str) -> ScoringInputError:
        loc: list[str | int] = [self.source] if self.table else ["body", name]
        where = self.source if self.table else name
        return ScoringInputError(f"{where}: {message}", field=name, loc=loc, kind=kind)


# The fields of a lead beside its attributes: what a field map may name besides an attribute.
LEAD_FIELDS = ("lead_id", "created_at", "as_of", "events")


@dataclass(frozen=True)
class FieldMap:
    """The CRM's field names to the model's inputs (``{"numberofemployees": "employees",
    "hs_object_id": "lead_id"}``), so a CRM can send its own record unchanged.

    A target is a lead field (:data:`LEAD_FIELDS`) or an attribute. The same renaming applies
    to a JSON record (:meth:`record`, its top level and its ``attributes``) and to a table's
    columns (:meth:`frame`); a field not in the map keeps its name.
    """

    pairs: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    @classmethod
    def from_settings(cls) -> FieldMap:
        """The map of this process's settings (``PREDICTIVE_SCORING_FIELD_MAP``, or ``.env``):
        what the file scorer and the pyfunc use when their caller names none."""
        return _settings_map(os.environ.get(FIELD_MAP_ENV))

    def check(self, inputs: ModelInputs) -> None:
        """Refuse a map that sends a field to something the model does not take."""
        if not self.pairs:
            return
        known = {*LEAD_FIELDS, *inputs.columns}
        unknown = {crm: target for crm, target in self.pairs.items() if target not in known}
        if unknown:
            raise ConfigError(
                f"{FIELD_MAP_ENV} maps {unknown} to inputs the model does not take; a target "
                f"is one of {', '.join(LEAD_FIELDS)} or an attribute of the model: "
                f"{', '.join(inputs.columns) or '(none)'}. Fix the target's spelling or drop "
                "the entry"
            )

    def record(self, value: object, *, loc: Sequence[str | int] = ("body",)) -> object:
        """One JSON lead as the model names it: top-level CRM fields moved to their lead field
        or into ``attributes``, and CRM names inside ``attributes`` renamed. ``loc`` is the
        record's place, for the error when two of its fields give the same input."""
        if not self.pairs or not isinstance(value, dict):
            return value
        top: dict[str, tuple[str, object]] = {}  # input -> (the field it came from, value)
        attributes: dict[str, tuple[str, object]] = {}
        inside = [*loc, "attributes"]
        given = value.get("attributes")
        for key, item in value.items():
            if key == "attributes" and isinstance(given, dict):
                continue
            target = self.pairs.get(key)
            if target is None or target in LEAD_FIELDS:  # unmapped: left for the decoder
                self._put(top, target or key, key, item, loc)
            else:
                self._put(attributes, target, key, item, inside)
        if isinstance(given, dict):
            for key, item in given.items():
                self._put(attributes, self.pairs.get(key, key), key, item, inside)
        out = {name: item for name, (_, item) in top.items()}
        if attributes or isinstance(given, dict):
            out["attributes"] = {name: item for name, (_, item) in attributes.items()}
        return out

    def frame(self, frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
        """A table with its CRM columns renamed to the model's inputs."""
        names = {c: self.pairs[c] for c in frame.columns if self.pairs.get(c, c) != c}
        if not names:
            return frame
        seen: dict[str, str] = {}
        for column in frame.columns:
            target = names.get(column, column)
            if target in seen:
                raise ScoringInputError(
                    f"{source}: columns '{seen[target]}' and '{column}' both give '{target}' "
                    f"(through {FIELD_MAP_ENV}); drop one of them",
                    field=target,
                    loc=[source, column],
                    kind="field_map",
                )
            seen[target] = column
        return frame.rename(columns=names)

    @staticmethod
    def _put(
        into: dict[str, tuple[str, object]],
        target: str,
        key: str,
        item: object,
        loc: Sequence[str | int],
    ) -> None:
        if target in into:
            raise ScoringInputError(
                f"'{into[target][0]}' and '{key}' both give '{target}' (through "
                f"{FIELD_MAP_ENV}); send one of them",
                field=key,
                loc=[*loc, key],
                kind="field_map",
            )
        into[target] = (key, item)


@functools.lru_cache(maxsize=8)
def _settings_map(_env_value: str | None) -> FieldMap:
    """The settings' map, read once per value of the variable (a ``.env`` is read once)."""
    from pydantic import ValidationError

    try:
        return FieldMap(IngressSettings().field_map)
    except ValidationError as exc:
        raise ConfigError(f"{FIELD_MAP_ENV}: {exc.errors()[0]['msg']}") from None


@dataclass
class RawLeads:
    """Leads as a decoder found them: values as given, events flattened in lead order.

    ``event_at`` is each event's place in its source (its index within the lead for nested
    events, its row for an events table), for messages.
    """

    lead_ids: Sequence[object]
    attributes: Mapping[str, Sequence[object]]
    created_at: Sequence[object]
    as_of: Sequence[object]
    event_lead: np.ndarray
    event_type: Sequence[object]
    event_ts: Sequence[object]
    event_at: np.ndarray
    origin: Origin = field(default_factory=Origin)
    fields: FieldMap = field(default_factory=FieldMap)  # the CRM names it was built through

    def __len__(self) -> int:
        return len(self.lead_ids)


def read_time_option(value: str, *, name: str, policy: TimePolicy, now: int) -> int:
    """One timestamp given as an option (``--as-of``), under a policy; errors name the option."""
    origin = Origin(source=name, table=True)
    seconds = _times(
        [value.strip()],
        policy=policy,
        now=now,
        place=lambda i: ([name], name),
        origin=origin,
        name=name,
    )
    if math.isnan(seconds[0]):
        raise ScoringInputError(f"{name}: empty; {TIME_FIX}", field=name, loc=[name])
    return int(seconds[0])


def _times(
    values: Sequence[object] | pd.Series,
    *,
    policy: TimePolicy,
    now: int,
    place: Callable[[int], Place],
    origin: Origin,
    name: str,
    read: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Seconds of one time field under a policy (``read``: already read with the others);
    the first offending value is refused."""
    seconds, bad = read if read is not None else read_seconds(values, numbers=policy.numbers)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        given = values.iloc[i] if isinstance(values, pd.Series) else values[i]
        raise origin.problem(
            place(i), f"cannot read {str(given)[:60]!r} as a timestamp; {TIME_FIX}", "timestamp"
        )
    refused = out_of_bounds(seconds, policy=policy, now=now)
    if refused is not None:
        i, kind, why = refused
        hint = (
            "; omit it to score as of now"
            if kind == "future_timestamp" and name == "as_of"
            else ""
        )
        raise origin.problem(place(i), why + hint, kind)
    return seconds


# --------------------------------------------------------------------------------------------
# What the model saw


@dataclass(frozen=True)
class ModelInputs:
    """The inputs a model takes and what training saw of them, from its bundle.

    ``required`` lists inputs never missing in training (``created_at`` or attribute names);
    ``non_negative`` the numeric inputs that were never negative in training.
    """

    definition: FeatureDefinition
    levels: Mapping[str, frozenset[str]]
    columns: tuple[str, ...]
    numeric: frozenset[str]
    categorical: frozenset[str]
    event_types: frozenset[str]
    required: tuple[str, ...] = ()
    non_negative: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        definition: FeatureDefinition,
        levels: Mapping[str, Sequence[str]],
        profile: Mapping[str, Any] | None = None,
    ) -> ModelInputs:
        columns = [name for name, _ in definition.attributes]
        for extra in (
            definition.job_title_column,
            definition.email_column,
            definition.employees_column,
        ):
            if extra and extra not in columns:
                columns.append(extra)
        numeric = {name for name, kind in definition.attributes if kind == "numeric"}
        if definition.employees_column:
            numeric.add(definition.employees_column)
        categorical = {name for name, kind in definition.attributes if kind == "categorical"}
        profile = profile or {}
        return cls(
            definition=definition,
            levels={name: frozenset(levels.get(name, ())) for name in categorical},
            columns=tuple(columns),
            numeric=frozenset(numeric),
            categorical=frozenset(categorical),
            event_types=frozenset(definition.event_types),
            required=tuple(profile.get("required", ())),
            non_negative=frozenset(profile.get("non_negative", ())) & frozenset(numeric),
        )


def input_profile(frame: pd.DataFrame, definition: FeatureDefinition) -> dict[str, list[str]]:
    """What training saw of the inputs, from its feature rows: the inputs never missing there
    (required at scoring) and the numeric inputs never negative there (a negative is refused).
    """

    def never_missing(column: str) -> bool:
        return column in frame.columns and bool(frame[column].notna().all()) and len(frame) > 0

    required: list[str] = []
    if definition.has_created_at and never_missing("lead_age_days"):
        required.append("created_at")
    required += [name for name, _ in definition.attributes if never_missing(name)]
    non_negative = [
        name
        for name, kind in definition.attributes
        if kind == "numeric"
        and name in frame.columns
        and frame[name].notna().any()
        and float(frame[name].min()) >= 0
    ]
    if definition.employees_column and definition.employees_column not in non_negative:
        non_negative.append(definition.employees_column)  # a head count is never negative
    return {"required": required, "non_negative": non_negative}


# --------------------------------------------------------------------------------------------
# The rules


@dataclass(frozen=True)
class Admitted:
    """Leads that passed the rules: the executor's batch, the ids, and each lead's warnings."""

    batch: LeadBatch
    lead_ids: list[str]
    warnings: list[list[InputWarning]]


def lead_id_text(value: object) -> str | None:
    """An id as text: text as given, a whole number without '.0' (JSON's 14.0 is the integer
    14); None for a missing value, a fraction, NaN or a boolean, which no CRM id is. The rule
    for lead ids everywhere (scores and outcomes)."""
    if isinstance(value, str):
        return value
    if value is None or value is pd.NA or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else None
    return str(value)


def _number(value: object) -> float | None:
    """A numeric input as a float, read as training reads it; None when it is no number."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        number = parse_number(value.strip())
        return number if math.isfinite(number) else None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) or math.isnan(number) else None


def admit(raw: RawLeads, inputs: ModelInputs, *, limits: Limits, now: int) -> Admitted:
    """Apply every input rule to ``raw``; raises :class:`ScoringInputError` at the first
    problem, naming its place and the fix."""
    origin, n, numbers = raw.origin, len(raw), limits.times.numbers
    raw.fields.check(inputs)
    if limits.max_leads is not None and n > limits.max_leads:
        raise origin.top(
            "leads",
            f"{n} leads; at most {limits.max_leads} per call (split the batch)",
            "too_long",
        )
    lead_ids: list[str] = []
    seen: set[str] = set()
    for i, value in enumerate(raw.lead_ids):
        text = lead_id_text(value)
        if text is None or not 1 <= len(text) <= limits.max_id_length:
            raise origin.problem(
                origin.lead(i, "lead_id"),
                f"a lead id is 1 to {limits.max_id_length} characters or a whole number, got "
                f"{str(value)[:40]!r}",
                "lead_id",
            )
        if limits.unique_ids:
            if text in seen:
                raise origin.problem(
                    origin.lead(i, "lead_id"),
                    f"duplicate lead_id {text!r}; each lead may appear once per batch",
                    "duplicate",
                )
            seen.add(text)
        lead_ids.append(text)
    warnings: list[list[InputWarning]] = [[] for _ in range(n)]
    event_lead = np.asarray(raw.event_lead, dtype=np.int64)
    if limits.max_events_per_lead is not None and event_lead.size:
        sizes = np.bincount(event_lead, minlength=n)
        if int(sizes.max()) > limits.max_events_per_lead:
            i = int(np.argmax(sizes))
            raise origin.problem(
                origin.lead(i, "events"),
                f"{int(sizes[i])} events; at most {limits.max_events_per_lead} per lead "
                "(send the most recent ones)",
                "too_long",
            )

    fields = (raw.created_at, raw.as_of, raw.event_ts)
    reads: list[tuple[np.ndarray, np.ndarray] | None] = [None, None, None]
    clean = False  # every time read and in bounds: nothing to explain field by field
    if not any(isinstance(f, pd.Series) for f in fields):  # one read for all the request's times
        seconds, bad = read_seconds([*raw.created_at, *raw.as_of, *raw.event_ts], numbers=numbers)
        a, b = len(raw.created_at), len(raw.created_at) + len(raw.as_of)
        reads = [(seconds[:a], bad[:a]), (seconds[a:b], bad[a:b]), (seconds[b:], bad[b:])]
        clean = not bad.any() and out_of_bounds(seconds, policy=limits.times, now=now) is None

    def times(k: int, name: str, place: Callable[[int], Place]) -> np.ndarray:
        read = reads[k]
        if clean and read is not None:
            return read[0]
        return _times(
            fields[k],
            policy=limits.times,
            now=now,
            place=place,
            origin=origin,
            name=name,
            read=reads[k],
        )

    created = times(0, "created_at", lambda i: origin.lead(i, "created_at"))
    as_of_given = times(1, "as_of", lambda i: origin.lead(i, "as_of"))
    as_of = np.where(np.isnan(as_of_given), float(now), as_of_given).astype(np.int64)
    before = as_of < created  # False wherever created_at is missing (NaN)
    if before.any():
        i = int(np.flatnonzero(before)[0])
        raise origin.problem(
            origin.lead(i, "as_of"),
            f"as_of {iso(as_of[i])} lies before created_at {iso(created[i])}; a lead cannot be "
            "scored before it existed",
            "as_of_before_created",
        )
    event_at = np.asarray(raw.event_at, dtype=np.int64)
    event_ts = times(2, "ts", lambda k: origin.event(int(event_lead[k]), int(event_at[k]), "ts"))
    for name in inputs.required:
        path: tuple[str, ...]
        if name == "created_at":
            missing, path = np.isnan(created), ("created_at",)
        else:
            values = raw.attributes.get(name, [None] * n)
            missing = np.fromiter((_blank(v) for v in values), dtype=bool, count=n)
            path = ("attributes", name)
        if missing.any():
            raise origin.problem(
                origin.lead(int(np.flatnonzero(missing)[0]), *path),
                f"'{name}' is required: the model never saw a lead without it in training, so "
                "a score without it would be a guess",
                "missing",
            )
    attributes = {
        name: _admit_attribute(name, raw.attributes.get(name), inputs, limits, origin, warnings)
        for name in inputs.columns
        if name in raw.attributes
    }
    types = _admit_event_types(raw, event_lead, event_at, inputs, limits, warnings)
    known = ~np.isnan(event_ts)
    if None in types:
        known &= np.fromiter((t is not None for t in types), dtype=bool, count=len(types))
    if known.all():  # the usual request: every event has a known type and a time
        batch = LeadBatch(
            attributes=attributes,
            as_of=as_of,
            created=created,
            event_lead=event_lead,
            event_type=types,  # type: ignore[arg-type]
            event_ts=event_ts.astype(np.int64),
        )
        return Admitted(batch=batch, lead_ids=lead_ids, warnings=warnings)
    batch = LeadBatch(
        attributes=attributes,
        as_of=as_of,
        created=created,
        event_lead=event_lead[known],
        event_type=[t for t, k in zip(types, known.tolist(), strict=True) if k and t is not None],
        event_ts=event_ts[known].astype(np.int64),
    )
    return Admitted(batch=batch, lead_ids=lead_ids, warnings=warnings)


def _blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def _admit_attribute(
    name: str,
    values: Sequence[object] | None,
    inputs: ModelInputs,
    limits: Limits,
    origin: Origin,
    warnings: list[list[InputWarning]],
) -> list[object]:
    """One input column after coercion (numbers) or normalisation (categories)."""
    assert values is not None
    missing = inputs.definition.is_missing
    if name in inputs.numeric:
        out: list[object] = []
        floor = 0.0 if name in inputs.non_negative else -math.inf
        for i, value in enumerate(values):
            number = math.nan if missing(value) else _number(value)
            if number is None:
                raise origin.problem(
                    origin.lead(i, "attributes", name),
                    f"'{name}' is numeric; send a finite number, got {str(value)[:40]!r}",
                    "float_parsing",
                )
            if number < floor:
                raise origin.problem(
                    origin.lead(i, "attributes", name),
                    f"'{name}' cannot be negative (got {number:g}); training never saw a "
                    "negative value",
                    "negative",
                )
            out.append(number)
        return out
    for i, value in enumerate(values):
        if isinstance(value, str) and len(value) > limits.max_text_length:
            raise origin.problem(
                origin.lead(i, "attributes", name),
                f"'{name}' is {len(value)} characters; at most {limits.max_text_length}",
                "too_long",
            )
    if name not in inputs.categorical:
        return [None if missing(v) else v for v in values]
    key = inputs.definition.category_key
    levels = inputs.levels[name]
    out = []
    for i, value in enumerate(values):
        text = key(name, value)
        if text is not None and text not in levels:
            warnings[i].append(
                InputWarning(name, str(value), "scored as missing: a value not seen in training")
            )
            text = None
        out.append(text)
    return out


def _admit_event_types(
    raw: RawLeads,
    event_lead: np.ndarray,
    event_at: np.ndarray,
    inputs: ModelInputs,
    limits: Limits,
    warnings: list[list[InputWarning]],
) -> list[str | None]:
    """Event types as text; unseen ones become None (ignored) with one warning per lead."""
    known = inputs.event_types
    if known.issuperset(raw.event_type):  # the usual request: every type is a known text
        return list(raw.event_type)  # type: ignore[arg-type]
    out: list[str | None] = []
    unseen: set[tuple[int, str]] = set()
    for k, value in enumerate(raw.event_type):
        if isinstance(value, str) and value in known:
            out.append(value)
            continue
        if not isinstance(value, str) or not 1 <= len(value) <= limits.max_event_type_length:
            raise raw.origin.problem(
                raw.origin.event(int(event_lead[k]), int(event_at[k]), "event_type"),
                f"an event type is 1 to {limits.max_event_type_length} characters, got "
                f"{str(value)[:40]!r}",
                "event_type",
            )
        out.append(None)
        lead = int(event_lead[k])
        if (lead, value) not in unseen:
            unseen.add((lead, value))
            warnings[lead].append(
                InputWarning("event_type", value, "ignored: an event type not seen in training")
            )
    return out


# --------------------------------------------------------------------------------------------
# Decoders' common shapes: mappings, frames, Python objects


def raw_from_objects(
    leads: Sequence[Any], *, origin: Origin, fields: FieldMap | None = None
) -> RawLeads:
    """Decoded leads: objects with ``lead_id``, ``attributes`` (a mapping), ``created_at``,
    ``as_of`` and ``events`` (objects with ``event_type`` and ``ts``), as msgspec and pydantic
    decode them; ``fields``: the map their JSON went through (:meth:`FieldMap.record`)."""
    events = [lead.events for lead in leads]
    sizes = [len(e) for e in events]
    flat = [e for lead_events in events for e in lead_events]
    attrs: list[Mapping[str, object]] = [lead.attributes for lead in leads]
    names = dict.fromkeys(name for a in attrs for name in a)
    return RawLeads(
        lead_ids=[lead.lead_id for lead in leads],
        attributes={name: [a.get(name) for a in attrs] for name in names},
        created_at=[lead.created_at for lead in leads],
        as_of=[lead.as_of for lead in leads],
        event_lead=np.repeat(np.arange(len(leads), dtype=np.int64), sizes),
        event_type=[e.event_type for e in flat],
        event_ts=[e.ts for e in flat],
        event_at=_positions(sizes),
        origin=origin,
        fields=fields or FieldMap(),
    )


def _positions(sizes: Sequence[int]) -> np.ndarray:
    """Each event's index within its lead, for leads with ``sizes`` events each."""
    return np.concatenate([np.arange(k, dtype=np.int64) for k in sizes] or [np.empty(0, int)])


@dataclass(frozen=True)
class _Event:
    event_type: object
    ts: object


def raw_from_lead_inputs(leads: Sequence[LeadInput]) -> RawLeads:
    """Leads given in Python (tests, notebooks, the smoke test) through the same rules."""
    as_decoded = [
        replace(lead, events=[_Event(t, ts) for t, ts in lead.events])  # type: ignore[misc]
        for lead in leads
    ]
    return raw_from_objects(as_decoded, origin=Origin(source="leads", batch=True))


def _cells(frame: pd.DataFrame, column: str) -> list[object]:
    if column not in frame.columns:
        return [None] * len(frame)
    series = frame[column]
    cells: list[object] = series.astype(object).where(series.notna(), None).tolist()
    return cells


def _lead_part(
    leads: pd.DataFrame, id_column: str, created: str, as_of: str, *, skip: Sequence[str]
) -> dict[str, Any]:
    """The lead columns of a frame; time columns stay Series (a datetime dtype reads fast)."""
    absent = [None] * len(leads)
    return {
        "lead_ids": _cells(leads, id_column),
        "attributes": {
            c: _cells(leads, c)
            for c in leads.columns
            if c not in {id_column, created, as_of, *skip}
        },
        "created_at": leads[created] if created in leads.columns else absent,
        "as_of": leads[as_of] if as_of in leads.columns else absent,
    }


def _require(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    for col in columns:
        if col not in frame.columns:
            found = ", ".join(map(str, frame.columns[:12]))
            seps = [s for s in (";", "\t", "|") if len(frame.columns) == 1 and s in found]
            hint = f"the separator looks like {seps[0]!r} (--sep or data.sep); " if seps else ""
            raise ScoringInputError(
                f"{source}: required column '{col}' is missing (columns found: {found}); {hint}"
                "name it in the command's options or the data section of params.yaml",
                field=col,
                loc=[source, col],
                kind="missing_column",
            )


def raw_from_frames(
    leads: pd.DataFrame,
    events: pd.DataFrame | None,
    *,
    source: str = "leads",
    events_source: str = "events",
    id_column: str = "lead_id",
    created_column: str = "created_at",
    as_of_column: str = "as_of",
    event_id_column: str = "lead_id",
    event_type_column: str = "event_type",
    event_time_column: str = "ts",
    fields: FieldMap | None = None,
) -> RawLeads:
    """A leads table and an optional events table (rows of files) as raw leads; columns named
    in ``fields`` (default: the settings' :meth:`FieldMap.from_settings`) are renamed first."""
    fields = FieldMap.from_settings() if fields is None else fields
    leads = fields.frame(leads, source=source)
    _require(leads, [id_column], source)
    part = _lead_part(leads, id_column, created_column, as_of_column, skip=())
    columns = {
        "lead_id": id_column,
        "created_at": created_column,
        "as_of": as_of_column,
        "event_type": event_type_column,
        "ts": event_time_column,
    }
    origin = Origin(source=source, table=True, events_source=events_source, columns=columns)
    rows = np.empty(0, dtype=np.int64)
    at = np.empty(0, dtype=np.int64)
    types: list[object] = []
    ts: Sequence[object] | pd.Series = []
    if events is not None and len(events):
        _require(events, [event_id_column, event_type_column, event_time_column], events_source)
        ids = [lead_id_text(v) for v in part["lead_ids"]]
        row_of = {lead_id: row for row, lead_id in enumerate(ids)}
        event_ids = [lead_id_text(v) for v in _cells(events, event_id_column)]
        found = [row_of.get(e, -1) for e in event_ids]
        keep = np.asarray(found, dtype=np.int64) >= 0  # events of leads not in this table
        positions = np.flatnonzero(keep)
        order = np.argsort(np.asarray(found, dtype=np.int64)[keep], kind="stable")
        at = positions[order]
        rows = np.asarray(found, dtype=np.int64)[at]
        all_types = _cells(events, event_type_column)
        types = [all_types[k] for k in at.tolist()]
        ts = events[event_time_column].iloc[at].reset_index(drop=True)
    return RawLeads(
        event_lead=rows,
        event_type=types,
        event_ts=ts,
        event_at=at,
        origin=origin,
        fields=fields,
        **part,
    )


def raw_from_nested(
    leads: pd.DataFrame,
    *,
    events_column: str = "events",
    source: str = "model input",
    id_column: str = "lead_id",
    created_column: str = "created_at",
    as_of_column: str = "as_of",
    fields: FieldMap | None = None,
) -> RawLeads:
    """One frame whose ``events_column`` holds each lead's events (the MLflow pyfunc's input).

    A cell is JSON text or a list of mappings with ``event_type`` and ``ts``; an empty or
    missing cell is a lead without events. Columns named in ``fields`` (default: the settings'
    :meth:`FieldMap.from_settings`) are renamed first.
    """
    fields = FieldMap.from_settings() if fields is None else fields
    leads = fields.frame(leads, source=source)
    _require(leads, [id_column], source)
    part = _lead_part(leads, id_column, created_column, as_of_column, skip=(events_column,))
    origin = Origin(source=source, table=True, columns={"events": events_column})
    per_lead: list[Sequence[Any]] = []
    for row, cell in enumerate(_cells(leads, events_column)):
        try:
            per_lead.append(_event_items(cell))
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise origin.problem(
                origin.lead(row, "events"),
                'expected a JSON list of objects such as [{"event_type": "web_visit", "ts": '
                f'"2025-03-01T12:00:00Z"}}], got {str(cell)[:80]!r} ({exc})',
                "events",
            ) from exc
    sizes = [len(items) for items in per_lead]
    flat = [item for items in per_lead for item in items]
    return RawLeads(
        event_lead=np.repeat(np.arange(len(sizes), dtype=np.int64), sizes),
        event_type=[item.get("event_type") for item in flat],
        event_ts=[item.get("ts") for item in flat],
        event_at=_positions(sizes),
        origin=origin,
        fields=fields,
        **part,
    )


def _event_items(cell: object) -> Sequence[Any]:
    """One cell of a nested events column as a list of mappings ([] when empty or missing)."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    if isinstance(cell, str | bytes):
        if not cell.strip():
            return []
        items = orjson.loads(cell)
    else:
        items = list(cell)  # type: ignore[call-overload]
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise TypeError("not a list of objects")
    return items
