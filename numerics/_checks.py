"""Input validation shared by every public entry point.

Each check raises ``ValueError`` naming the parameter and its valid range, so a user who
passes ``tau=-1`` reads ``tau must be > 0 (got -1.0)`` rather than a NaN three calls later.
"""
from __future__ import annotations

import numpy as np


def check_real(name: str, value, *, lower: float | None = None, upper: float | None = None,
               lower_inclusive: bool = False, upper_inclusive: bool = True, allow_inf: bool = False) -> np.ndarray:
    """Return ``value`` as a float array after checking it is finite and inside the range.

    ``lower``/``upper`` are the bounds; ``*_inclusive`` says whether the bound itself is allowed.
    ``allow_inf`` admits +inf (and no other non-finite value).
    """
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number or array of real numbers (got {value!r})") from None
    if np.any(np.isnan(arr)) or np.any(np.isneginf(arr)) or (not allow_inf and np.any(np.isposinf(arr))):
        allowed = "finite or +inf" if allow_inf else "finite"
        raise ValueError(f"{name} must be {allowed} (got {value!r})")
    lo_txt = "" if lower is None else (f">= {lower:g}" if lower_inclusive else f"> {lower:g}")
    hi_txt = "" if upper is None else (f"<= {upper:g}" if upper_inclusive else f"< {upper:g}")
    valid = " and ".join(t for t in (lo_txt, hi_txt) if t)
    if lower is not None:
        bad = arr < lower if lower_inclusive else arr <= lower
        if np.any(bad):
            raise ValueError(f"{name} must be {valid} (got {_first_bad(arr, bad)})")
    if upper is not None:
        bad = arr > upper if upper_inclusive else arr >= upper
        if np.any(bad):
            raise ValueError(f"{name} must be {valid} (got {_first_bad(arr, bad)})")
    return arr


def check_int(name: str, value, *, lower: int = 1, upper: int | None = None) -> int:
    """Return ``value`` as an int after checking ``lower <= value (<= upper)``."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer (got {value!r})")
    ivalue = int(value)
    if ivalue < lower or (upper is not None and ivalue > upper):
        rng = f">= {lower}" + ("" if upper is None else f" and <= {upper}")
        raise ValueError(f"{name} must be an integer {rng} (got {ivalue})")
    return ivalue


def _first_bad(arr: np.ndarray, bad: np.ndarray) -> float:
    return float(arr[bad].flat[0]) if arr.ndim else float(arr)
