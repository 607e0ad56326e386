"""The model bundle on disk: everything needed to score without MLflow (DESIGN section 5).

A folder with the LightGBM model text and ``bundle.json`` (definition, category levels,
calibrator, thresholds, metadata with the model's checksum), written atomically and read back
with every part checked, so a damaged bundle is one :class:`BundleError` naming the file and the
part, never a stray ``KeyError``. No pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb

from predictive_scoring.calibration import Calibrator
from predictive_scoring.errors import BundleError
from predictive_scoring.features import FeatureDefinition
from predictive_scoring.thresholds import Thresholds

__all__ = [
    "BUNDLE_FORMAT",
    "META_FILE",
    "MODEL_FILE",
    "BundleParts",
    "read_bundle",
    "write_bundle",
]

BUNDLE_FORMAT = 1
MODEL_FILE = "model.txt"
META_FILE = "bundle.json"


@dataclass(frozen=True)
class BundleParts:
    """What a bundle holds, as the scorer takes it."""

    definition: FeatureDefinition
    levels: Mapping[str, Sequence[str]]
    booster: lgb.Booster
    calibrator: Calibrator
    thresholds: Thresholds
    metadata: Mapping[str, Any]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_bundle(path: str | Path, parts: BundleParts) -> Path:
    """Write the bundle atomically: into a temp dir beside ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        parts.booster.save_model(str(tmp / MODEL_FILE))
        meta = {
            "format": BUNDLE_FORMAT,
            "definition": parts.definition.to_dict(),
            "levels": {k: list(v) for k, v in parts.levels.items()},
            "calibrator": parts.calibrator.to_dict(),
            "thresholds": parts.thresholds.to_dict(),
            "metadata": {**parts.metadata, "model_sha256": _sha256(tmp / MODEL_FILE)},
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_bundle(path: str | Path) -> BundleParts:
    """Read and check a bundle folder; errors say which file or part is missing or broken."""
    path = Path(path)
    meta_path, model_path = path / META_FILE, path / MODEL_FILE
    for required in (meta_path, model_path):
        if not required.exists():
            raise BundleError(
                f"{required}: not found; run `dvc repro` (or the export stage) to build "
                "the model bundle"
            )
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise BundleError(
            f"{meta_path}: bundle format {found!r}, this version reads {BUNDLE_FORMAT}; "
            "re-export the bundle"
        )
    metadata = meta.get("metadata", {})
    expected = metadata.get("model_sha256") if isinstance(metadata, dict) else None
    if expected and expected != _sha256(model_path):
        raise BundleError(f"{model_path}: checksum does not match {meta_path}; re-export")
    try:
        booster = lgb.Booster(model_file=str(model_path))
    except lgb.basic.LightGBMError as exc:
        raise BundleError(f"{model_path}: LightGBM cannot read it ({exc})") from exc
    readers = {
        "definition": FeatureDefinition.from_dict,
        "calibrator": Calibrator.from_dict,
        "thresholds": Thresholds.from_dict,
    }
    read: dict[str, Any] = {}
    for part, reader in readers.items():
        try:
            read[part] = reader(meta[part])
        except Exception as exc:  # any malformed part means the same to the user
            raise BundleError(
                f"{meta_path}: the '{part}' part is missing or malformed "
                f"({type(exc).__name__}: {exc}); re-export the bundle"
            ) from exc
    levels = meta.get("levels")
    if not isinstance(levels, dict) or not isinstance(metadata, dict):
        raise BundleError(f"{meta_path}: 'levels' or 'metadata' is malformed; re-export")
    return BundleParts(booster=booster, levels=levels, metadata=metadata, **read)
