"""The model bundle on disk: everything needed to score without MLflow (DESIGN section 5).

A folder with the LightGBM model text and ``bundle.json`` (definition, category levels,
calibrator, thresholds, metadata with the model's checksum), written atomically and read back
with every part checked, so a damaged bundle is one :class:`BundleError` naming the file and the
part, never a stray ``KeyError``. No pickle.
"""

from __future__ import annotations

import ctypes
import errno
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
    "pid_alive",
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


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: the signal said it exists
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), 0, str(b))


def _remove_stale(path: Path) -> None:
    """Delete the temp folders of writes to ``path`` whose process died (kill -9, power cut)."""
    for sibling in path.parent.glob(f".{path.name}.*"):
        tag = sibling.name[len(path.name) + 2 :].split(".", 1)[0]
        pid = tag.removeprefix("old-")
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        if tag.startswith("old-") and not path.exists():
            sibling.rename(path)  # killed between its two renames: the old bundle comes back
        else:
            shutil.rmtree(sibling, ignore_errors=True)


def write_bundle(path: str | Path, parts: BundleParts) -> Path:
    """Write the bundle atomically: into a temp dir beside ``path``, then swap it into place.

    A reader sees the old bundle or the new one, never a mix and never none (where the file
    system can exchange two folders in one step, as Linux's can). Temp folders left by a
    killed write are removed by the next write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent))
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
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual mode
        if not path.exists():
            tmp.rename(path)
        elif _exchange(tmp, path):
            shutil.rmtree(tmp, ignore_errors=True)  # now the old bundle
        else:
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


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
