"""The loaded model and its atomic swap: one attribute, read once per request."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from predictive_scoring.errors import BundleError, redact
from predictive_scoring.ingress import FieldMap
from predictive_scoring.scoring import LeadInput, Scorer
from predictive_scoring.serve.settings import Settings

__all__ = ["ModelHandle", "ModelHolder", "ScorerLoader"]

logger = logging.getLogger(__name__)

ScorerLoader = Callable[[Settings], Scorer]


@dataclass(frozen=True)
class ModelHandle:
    """A scorer with what every response and log record needs precomputed; never mutated after
    creation."""

    scorer: Scorer
    ref: dict[str, Any]
    lineage: dict[str, str] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, scorer: Scorer) -> ModelHandle:
        lineage = scorer.lineage  # hashes the definition: once per load, not per request
        ref = {
            "name": scorer.name,
            "version": scorer.version,
            "thresholds": {"mql": scorer.thresholds.mql, "sql": scorer.thresholds.sql},
            "definition_hash": lineage["definition_hash"],
            "thresholds_version": lineage["thresholds_version"],
            "data_hash": lineage["data_hash"],
        }
        return cls(
            scorer=scorer, ref=ref, lineage=lineage, feature_names=tuple(scorer.feature_names)
        )

    @property
    def version(self) -> str:
        return self.scorer.version

    @property
    def identity(self) -> tuple[str, str]:
        """Version and model checksum: what tells two loads of a model apart."""
        return self.scorer.version, str(self.scorer.metadata.get("model_sha256", ""))


def _smoke_test(scorer: Scorer) -> None:
    """Refuse a model that cannot score a plain lead to a finite probability."""
    now = int(time.time())
    lead = LeadInput(lead_id="smoke-test", created_at=float(now - 86_400), as_of=now)
    try:
        result = scorer.score([lead], now=now, n_reasons=1)[0]
    except Exception as exc:
        raise BundleError(f"the new model fails to score a test lead: {exc}") from exc
    if not math.isfinite(result.probability):
        raise BundleError(f"the new model gives probability {result.probability} for a test lead")


class ModelHolder:
    """Holds the current :class:`ModelHandle`; loads run in a thread, swaps are one assignment."""

    def __init__(
        self,
        settings: Settings,
        load: ScorerLoader,
        *,
        probe: Callable[[Settings], str] | None = None,
    ) -> None:
        self.settings = settings
        self.fields = FieldMap(settings.field_map)
        self._load = load
        # A cheap identity of what the loader would load (the alias's version, the bundle file
        # on disk): a poll that finds it unchanged loads nothing.
        self._probe = probe
        self._probed: str | None = None
        self.current: ModelHandle | None = None
        # The last load's error as raised: it may hold credentials and server paths, so it is
        # shown only through errors.redact (the log; an admin's reload) and never to strangers.
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    def _load_checked(self) -> ModelHandle:
        scorer = self._load(self.settings)
        self.fields.check(scorer.inputs)  # a map naming inputs this model lacks is refused
        _smoke_test(scorer)
        return ModelHandle.of(scorer)

    async def reload(self, *, only_if_changed: bool = False) -> tuple[ModelHandle | None, bool]:
        """Load through the loader and swap; on failure the old model stays and the error rises.

        Returns the previous handle and whether the served model changed.
        """
        async with self._lock:
            previous = self.current
            probed = None
            if self._probe is not None:
                try:
                    probed = await asyncio.to_thread(self._probe, self.settings)
                except Exception:  # the load below says what is wrong, and how to fix it
                    probed = None
                if only_if_changed and previous is not None and probed == self._probed:
                    return previous, False
            try:
                handle = await asyncio.to_thread(self._load_checked)
            except Exception as exc:
                self.last_error = str(exc)
                logger.error(
                    "model load refused, keeping %s: %s", _describe(previous), redact(str(exc))
                )
                raise
            self.last_error = None
            self._probed = probed
            changed = previous is None or handle.identity != previous.identity
            if changed or not only_if_changed:
                self.current = handle  # the atomic swap: in-flight requests keep their handle
            if changed:
                why = handle.scorer.metadata.get("why") or "as returned by the loader"
                logger.info(
                    "serving %s (was %s): %s", _describe(handle), _describe(previous), redact(why)
                )
            return previous, changed


def _describe(handle: ModelHandle | None) -> str:
    return "no model" if handle is None else f"{handle.scorer.name} version {handle.version}"
