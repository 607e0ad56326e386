"""One-row predictions through LightGBM's fast single-row C API.

``Booster.predict`` rebuilds its predictor, parses its parameters and converts the input on every
call: about 25 us for one row, five times the prediction itself. The C API's
``LGBM_BoosterPredictForMatSingleRowFast`` keeps a configured predictor (a *FastConfig*) and
takes a pointer to the row. A FastConfig holds buffers, so each thread gets its own. The output
is LightGBM's own prediction (the same trees, iteration limit and transform), and the tests hold
it equal to ``Booster.predict``.

This reaches into ``lightgbm.basic`` for the loaded library and the booster handle; where those
are missing (another LightGBM version), :meth:`RowPredictor.for_booster` returns None and callers
use ``Booster.predict``.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import lightgbm as lgb
import numpy as np

__all__ = ["RowPredictor"]

logger = logging.getLogger(__name__)

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the objective's transform (a probability)
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class _FastConfig:
    """One thread's configured predictor; frees itself before its booster can go."""

    def __init__(self, booster: lgb.Booster, lib: Any, ncol: int, num_iteration: int) -> None:
        self._booster = booster  # kept alive for as long as the FastConfig refers to it
        self._lib = lib
        self.handle = ctypes.c_void_p()
        _check(
            lib,
            lib.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(num_iteration),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(ncol),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self.handle),
            ),
        )
        self._out = np.empty(1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()
        self._predict = lib.LGBM_BoosterPredictForMatSingleRowFast

    def predict(self, row: np.ndarray) -> float:
        _check(
            self._lib,
            self._predict(
                self.handle,
                row.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(self._out_len),
                self._out_ptr,
            ),
        )
        return float(self._out[0])

    def __del__(self) -> None:
        if self.handle:
            self._lib.LGBM_FastConfigFree(self.handle)
            self.handle = ctypes.c_void_p()


def _check(lib: Any, code: int) -> None:
    if code != 0:
        raise lgb.basic.LightGBMError(lib.LGBM_GetLastError().decode("utf-8"))


class RowPredictor:
    """``Booster.predict`` for one row of float64 features, without its per-call set-up."""

    def __init__(self, booster: lgb.Booster, lib: Any) -> None:
        self._booster = booster
        self._lib = lib
        self._ncol = booster.num_feature()
        # What Booster.predict uses by default: the best iteration when there is one.
        self._num_iteration = int(booster.best_iteration)
        self._local = threading.local()

    @classmethod
    def for_booster(cls, booster: lgb.Booster) -> RowPredictor | None:
        """A predictor for ``booster``, or None where this LightGBM does not expose the API."""
        lib = getattr(lgb.basic, "_LIB", None)
        wanted = ("LGBM_BoosterPredictForMatSingleRowFastInit", "LGBM_FastConfigFree")
        if lib is None or getattr(booster, "_handle", None) is None:
            return None
        if not all(hasattr(lib, name) for name in wanted):
            return None
        predictor = cls(booster, lib)
        try:
            predictor._config()
        except (lgb.basic.LightGBMError, AttributeError, TypeError) as exc:
            logger.warning("fast single-row predict unavailable (%s); using Booster.predict", exc)
            return None
        return predictor

    def _config(self) -> _FastConfig:
        config: _FastConfig | None = getattr(self._local, "config", None)
        if config is None:
            config = _FastConfig(self._booster, self._lib, self._ncol, self._num_iteration)
            self._local.config = config
        return config

    def predict(self, row: np.ndarray) -> float:
        """The prediction for one contiguous float64 row of ``num_feature()`` values."""
        if row.shape != (self._ncol,) or row.dtype != np.float64 or not row.flags.c_contiguous:
            raise ValueError(f"expected a contiguous float64 row of {self._ncol} values")
        return self._config().predict(row)
