"""The checks every array handed to a search index passes: features, queries and k."""

from __future__ import annotations

import numbers

import numpy as np

from stages.runtime.errors import SlicError


def checked_rows(values: object, what: str) -> np.ndarray:
    """`values` as (N, D) float32 in C order (a view where it already is one), after checking
    that it is a 2-D numeric array with D >= 1 whose values are all finite. `what` names the
    array in the one-line SlicError raised otherwise ("features", "queries"). N may be 0."""
    try:
        rows = np.ascontiguousarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise SlicError(f"{what} must be a numeric (N, D) array: {error}") from None
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise SlicError(f"{what} must be a 2-D array (N, D) with D >= 1, got shape "
                        f"{rows.shape}")
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise SlicError(f"{what}: {int(bad.sum())} rows hold NaN or Inf (first: row "
                        f"{int(np.flatnonzero(bad)[0])}); fix or drop them")
    return rows


def checked_k(k: object) -> int:
    """`k` as an int after checking it is a whole number >= 1 (SlicError otherwise)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise SlicError(f"k (the number of neighbours) must be a whole number >= 1, got {k!r}")
    return int(k)
