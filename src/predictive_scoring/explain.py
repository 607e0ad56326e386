"""Readable text for a feature value, so a salesperson can read why a lead scored as it did."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from predictive_scoring.features import (
    BAND_FEATURE,
    EMAIL_FEATURE,
    FUNCTION_FEATURE,
    SENIORITY_FEATURE,
    FeatureDefinition,
)

__all__ = [
    "Describer",
    "describe_feature",
    "feature_describer",
    "feature_describers",
    "feature_group",
]

Describer = Callable[[float], str]

EVENT_LABELS: dict[str, tuple[str, str]] = {
    "web_visit": ("web visit", "visited the website"),
    "pricing_page_view": ("pricing page view", "viewed the pricing page"),
    "content_download": ("content download", "downloaded content"),
    "webinar_registered": ("webinar registration", "registered for a webinar"),
    "webinar_attended": ("webinar attended", "attended a webinar"),
    "email_open": ("e-mail open", "opened an e-mail"),
    "email_click": ("e-mail click", "clicked an e-mail"),
    "form_submit": ("form submission", "submitted a form"),
    "demo_request": ("demo request", "requested a demo"),
    "contact_sales": ("contact-sales request", "asked to talk to sales"),
    "trade_show_visit": ("trade-show visit", "visited our trade-show booth"),
}


def _event_label(definition: FeatureDefinition, slug: str) -> tuple[str, str]:
    for event_type in definition.event_types:
        if definition.type_slug(event_type) == slug:
            if event_type in EVENT_LABELS:
                return EVENT_LABELS[event_type]
            words = event_type.replace("_", " ")
            return words, f"had a {words}"
    words = slug.replace("_", " ")
    return words, f"had a {words}"


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def _last(days: int | str) -> str:
    return "in the last day" if int(days) == 1 else f"in the last {days} days"


def feature_group(name: str, definition: FeatureDefinition) -> str:
    """The event type or attribute a feature belongs to, for grouping in reports."""
    for event_type in definition.event_types:
        slug = definition.type_slug(event_type)
        if name.endswith(f"_{slug}") or f"_{slug}_" in name:
            return event_type
    return name


def describe_feature(
    name: str, value: float, definition: FeatureDefinition, levels: Mapping[str, Sequence[str]]
) -> str:
    """One short sentence for a feature and its (encoded) value."""
    return feature_describer(name, definition, levels)(value)


def feature_describers(
    definition: FeatureDefinition, levels: Mapping[str, Sequence[str]]
) -> list[Describer]:
    """One describer per model input, in definition order, compiled once per loaded model."""
    return [feature_describer(name, definition, levels) for name in definition.feature_names]


def _is_missing(value: float) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def feature_describer(
    name: str, definition: FeatureDefinition, levels: Mapping[str, Sequence[str]]
) -> Describer:
    """A function from a feature's (encoded) value to its sentence; labels are looked up once."""
    if name in levels:
        values = list(levels[name])
        if name == SENIORITY_FEATURE:
            before, after = "seniority from the job title: ", ""
        elif name == FUNCTION_FEATURE:
            before, after = "function from the job title: ", ""
        elif name == BAND_FEATURE:
            before, after = "company size: ", " employees"
        else:
            before, after = name.replace("_", " ") + " is ", ""

        def categorical(value: float) -> str:
            if _is_missing(value) or not 0 <= int(value) < len(values):
                return f"{before}unknown{after}"
            return f"{before}{values[int(value)]}{after}"

        return categorical
    if name == EMAIL_FEATURE:

        def email(value: float) -> str:
            if _is_missing(value):
                return "no usable e-mail address"
            return "uses a free e-mail domain" if value >= 0.5 else "uses a company e-mail domain"

        return email
    if name == "lead_age_days":
        return lambda value: (
            "creation date unknown"
            if math.isnan(value)
            else f"lead created {_plural(round(value), 'day')} ago"
        )
    if name == "n_events_total":
        return lambda value: f"{_plural(value, 'engagement event')} so far"
    if name == definition.active_days_name:
        window = definition.active_days_window
        return lambda value: f"active on {_plural(value, 'day')} {_last(window)}"
    if name.startswith("n_") and name.endswith("d"):
        body, _, window_text = name[2:].rpartition("_")
        noun, _ = _event_label(definition, body)
        days = window_text.rstrip("d")
        return lambda value: f"{_plural(value, noun)} {_last(days)}"
    if name.startswith("days_since_"):
        noun, verb = _event_label(definition, name[len("days_since_") :])

        def recency(value: float) -> str:
            if _is_missing(value):
                return f"no {noun} yet"
            return f"{verb} {_plural(round(value), 'day')} ago" if value >= 1 else f"{verb} today"

        return recency
    if name.startswith("decayed_"):
        noun, _ = _event_label(definition, name[len("decayed_") :])

        def decayed(value: float) -> str:
            level = "high" if value >= 2 else "some" if value >= 0.25 else "little"
            return f"{level} recent {noun} activity"

        return decayed
    words = name.replace("_", " ")

    def other(value: float) -> str:
        if _is_missing(value):
            return f"{words} is missing"
        return f"{words} is {value:g}"

    return other
