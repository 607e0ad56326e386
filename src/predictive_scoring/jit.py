"""numba compilation, cached on disk wherever numba can write its cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

__all__ = ["compiled"]

F = TypeVar("F", bound=Callable[..., Any])


def compiled(fn: F) -> F:
    """``numba.njit(nogil=True)`` with ``cache=True`` when numba has somewhere to keep the cache.

    numba refuses ``cache=True`` outright when neither the package's ``__pycache__`` nor a user
    cache directory is writable (a read-only install without a home, as in some container
    images); the kernels then compile in each process instead, a few seconds at start-up.
    ``NUMBA_CACHE_DIR`` points the cache at a writable directory.
    """
    try:
        return njit(cache=True, nogil=True)(fn)  # type: ignore[return-value]
    except RuntimeError:
        return njit(nogil=True)(fn)  # type: ignore[return-value]
