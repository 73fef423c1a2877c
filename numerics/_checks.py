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


MAX_SEEDS = 1_000_000


def check_seeds(seeds, name: str = "seeds") -> tuple[int, ...]:
    """The package's one seed rule: distinct integers >= 0, at least one, at most :data:`MAX_SEEDS`.

    Parameters
    ----------
    seeds : int, str or iterable of int
        A count ``n`` (the seeds ``0 .. n-1``); a text such as ``"0-4"``, ``"1,3,7"`` or ``"0-2,9"``
        (ranges are inclusive; the command-line syntax of every subcommand); or a sequence of integers.
    name : str
        How the message names the input (``"seeds"`` for the Python API, ``"--seeds"`` on the CLI).

    Returns
    -------
    tuple of int
        The seeds in the given order. A repeated seed is refused: it is the same draw, and counting
        it twice would shrink the standard error. Linear time in the number of seeds.
    """
    if isinstance(seeds, str):
        seeds = _seed_text(seeds, name)
    elif isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        count = int(seeds)
        if not 1 <= count <= MAX_SEEDS:
            raise ValueError(f"{name} as a count must be an integer >= 1 and <= {MAX_SEEDS} (got {count})")
        return tuple(range(count))
    try:
        items = list(seeds)
    except TypeError:
        raise ValueError(f"{name} must be a count, a text such as 0-4 or 1,3,7, or a sequence of integers "
                         f"(got {seeds!r})") from None
    if not items:
        raise ValueError(f"{name} must list at least one seed")
    if len(items) > MAX_SEEDS:
        raise ValueError(f"{name} lists {len(items)} seeds; at most {MAX_SEEDS}")
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            if not (isinstance(s, (float, np.floating)) and float(s).is_integer()):
                raise ValueError(f"{name} must be integers >= 0 (got {s!r})")
        if s < 0:
            raise ValueError(f"{name} must be integers >= 0 (got {int(s)})")
        out.append(int(s))
    if len(set(out)) != len(out):
        seen, repeated = set(), set()
        for s in out:
            (repeated if s in seen else seen).add(s)
        raise ValueError(f"{name} must be distinct (repeats {sorted(repeated)[:10]}): a repeated seed is the "
                         "same draw and would shrink the standard error")
    return tuple(out)


def _seed_text(text: str, name: str) -> list[int]:
    """"0-4" -> 0..4, "1,3,7", "0-2,9": ranges are inclusive."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                if lo >= 0 and len(seeds) + hi - lo + 1 > MAX_SEEDS:
                    raise ValueError(f"{name} lists more than {MAX_SEEDS} seeds (got {text!r})")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError as exc:
        if str(exc).startswith(name):
            raise
        raise ValueError(f"{name} must look like 0-4 or 1,3,7 (got {text!r})") from None
    return seeds


# ratio -> (power of D, integer size): L = round(alpha D), M = round(tau D^2), M0 = round(kappa D), r = round(rho D)
_SIZE_OF = {"alpha": (1, "L"), "alpha_test": (1, "L_test"), "tau": (2, "M"), "kappa": (1, "M0"), "rho": (1, "r")}


def check_sizes(dim: int, **ratios) -> None:
    """Refuse ratios whose integer size at dimension ``dim`` rounds (half up) to 0.

    Parameters
    ----------
    dim : int
        The token dimension D.
    **ratios : float or None
        Any of alpha, alpha_test (L = round(alpha D)), tau (M = round(tau D^2)), kappa
        (M0 = round(kappa D); inf allowed) and rho (r = round(rho D)); None is skipped.

    Raises
    ------
    ValueError
        Naming the parameter, its size and the smallest value that gives a size of 1, where a
        simulation would otherwise raise the size to 1 and run a different model than asked.
    """
    import math
    dim = check_int("dim", dim, lower=1)
    for name, value in ratios.items():
        if value is None:
            continue
        value = float(value)
        power, symbol = _SIZE_OF[name]
        if not math.isfinite(value) or value <= 0:
            continue                       # range checks belong to the callers' check_real
        if math.floor(value * dim**power + 0.5) < 1:
            smallest = 0.5 / dim**power
            raise ValueError(f"{name} = {value:g} at D = {dim} gives {symbol} = round({name} D"
                             f"{'^2' if power == 2 else ''}) = 0; use {name} >= {smallest:g} or a larger D")
