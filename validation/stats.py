r"""Statistics of theory-vs-simulation comparisons.

- :class:`Estimate` -- values over independent pretraining draws (one per seed: a fresh subspace,
  pool and prompts), their mean and standard error SE = sd / sqrt(n) (sd with ddof = 1).
- :func:`extrapolate` -- finite-size extrapolation: weighted least squares of e(D) = e_inf + c/D over
  several D with weights 1/SE(D)^2; SE(e_inf) from the fit covariance (X^T W X)^{-1}, multiplied by
  the Birge ratio sqrt(chi^2/dof) when that exceeds 1 (the 1/D model or the SEs are then too
  optimistic, and the uncertainty is widened honestly rather than the test).
- :func:`compare` -- the pass rule: |e_inf - theory| <= 3 SE(e_inf). With one D only, e_inf is the
  mean at that D (no extrapolation) and the rule is applied to its SE.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lowrank_icl.numerics.results import PROTOCOLS, ProtocolErrors

PASS_N_SE = 3.0


def standard_error(values, axis=None):
    """sd(values, ddof=1)/sqrt(n); NaN with fewer than two values.

    ``axis=None`` pools every value (a float); an integer axis gives one SE per remaining index.
    """
    v = np.asarray(values, dtype=float)
    if axis is None:
        v = v.ravel()
        if v.size < 2:
            return float("nan")
        return float(np.std(v, ddof=1) / np.sqrt(v.size))
    n = v.shape[axis]
    if n < 2:
        return np.full(np.delete(v.shape, axis), np.nan)
    return np.std(v, axis=axis, ddof=1) / np.sqrt(n)


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate from independent draws: ``values`` (one per draw), ``mean``, ``sem``.

    A value per draw is a float, or an array when the quantity is evaluated on a grid (for
    example ``errors(alpha_test=grid)``): ``mean`` and ``sem`` then have the grid's shape, taken
    over the draws only.

    mean = (1/n) sum_k v_k and sem = sqrt(sum_k (v_k - mean)^2 / (n (n - 1))) over the n draws.

    Parameters
    ----------
    values : tuple
        One value per independent draw.
    """

    values: tuple

    @classmethod
    def of(cls, values) -> "Estimate":
        """From a sequence of per-draw values (floats, or arrays of one shape; draws along axis 0)."""
        arr = np.asarray(values, dtype=float)
        if arr.ndim <= 1:
            return cls(tuple(float(v) for v in arr.ravel()))
        rows = []
        for row in arr:
            row = np.array(row)
            row.flags.writeable = False
            rows.append(row)
        return cls(tuple(rows))

    @property
    def n(self) -> int:
        """Number of independent draws."""
        return len(self.values)

    @property
    def mean(self):
        if self._is_scalar():
            return float(np.mean(self.values))
        return np.mean(np.asarray(self.values), axis=0)

    @property
    def sem(self):
        if self._is_scalar():
            return standard_error(self.values)
        return standard_error(np.asarray(self.values), axis=0)

    def _is_scalar(self) -> bool:
        return not self.values or np.ndim(self.values[0]) == 0

    def to_dict(self, values: bool = True) -> dict:
        """{"mean", "sem", "n", "values"} as floats or nested lists (NaN stays NaN: the JSON rule of
        :mod:`lowrank_icl.numerics.utils` turns it into null); ``values=False`` leaves out the draws."""
        if self._is_scalar():
            out = {"mean": self.mean, "sem": self.sem, "n": self.n}
            return {**out, "values": list(self.values)} if values else out
        out = {"mean": self.mean.tolist(), "sem": self.sem.tolist(), "n": self.n}
        return {**out, "values": np.asarray(self.values).tolist()} if values else out

    def __str__(self) -> str:
        if self._is_scalar():
            return format_mean_sem(self.mean, self.sem)
        return f"mean {np.array2string(self.mean, precision=4, threshold=6)} over {self.n} draws"

    def __repr__(self) -> str:
        if self._is_scalar():
            return f"Estimate({self}, n={self.n})"
        return f"Estimate(shape={np.shape(self.values[0])}, n={self.n}: {self})"


@dataclass(frozen=True, repr=False)
class EstimatedErrors(ProtocolErrors):
    """TM/IDG/ODG test errors of a sampled model: each field an :class:`Estimate` (mean, sem, values).

    The draws are documented by the result that returns it (seeds of independent pretraining
    draws for ``simulate`` and ``bayes_errors``, fresh test prompts for a trained transformer).

    Attributes
    ----------
    tm, idg, odg : Estimate
        Mean, standard error of the mean (sem = sd / sqrt(n)) and the n per-draw values of e_X.
    """

    @classmethod
    def of(cls, rows, key=None) -> "EstimatedErrors":
        """From per-draw mappings {"tm", "idg", "odg"} (``rows[i][key]`` when ``key`` is given)."""
        rows = [r if key is None else r[key] for r in rows]
        return cls(**{p: Estimate.of([r[p] for r in rows]) for p in PROTOCOLS})

    @property
    def n(self) -> int:
        """Number of draws (the same for the three protocols)."""
        return self.tm.n

    def to_dict(self, values: bool = True) -> dict:
        """{"tm", "idg", "odg"}, each {"mean", "sem", "n"} (and "values" unless ``values=False``)."""
        return {p: v.to_dict(values) for p, v in self.items()}

    def __str__(self) -> str:
        return ", ".join(f"{p} = {v}" for p, v in self.items()) + f" (n = {self.n})"

    def __repr__(self) -> str:
        return f"EstimatedErrors({self})"


def mean_and_sem(value) -> tuple:
    """(mean, sem) of an :class:`Estimate`, or (value, 0.0) for an exact number."""
    if isinstance(value, Estimate):
        return value.mean, value.sem
    return float(value), 0.0


def format_mean_sem(mean: float, sem: float) -> str:
    """'0.61234 ± 0.0051': the mean to the digit of the SE's second significant figure."""
    if not np.isfinite(sem) or sem <= 0 or not np.isfinite(mean):
        return f"{mean:.6g} ± {sem:.2g}"
    digits = max(0, 1 - int(np.floor(np.log10(sem))))
    return f"{mean:.{digits}f} ± {sem:.2g}" if digits <= 12 else f"{mean:.6g} ± {sem:.2g}"


@dataclass(frozen=True)
class Extrapolation:
    """Fit e(D) = e_inf + c/D: e_inf with its standard error, slope c, chi^2 and degrees of freedom."""

    e_inf: float
    se: float
    slope: float
    slope_se: float
    chi2: float
    dof: int
    dims: tuple


def extrapolate(dims: Sequence[float], means: Sequence[float], sems: Sequence[float]) -> Extrapolation:
    """Weighted least squares of means ~ e_inf + c/D with weights 1/sems^2 (module docstring).

    One D: returns the mean itself with its SE (slope 0, dof 0).
    """
    d = np.asarray(dims, dtype=float)
    y = np.asarray(means, dtype=float)
    s = np.asarray(sems, dtype=float)
    if not (d.shape == y.shape == s.shape) or d.ndim != 1 or d.size == 0:
        raise ValueError("dims, means and sems must be 1-d sequences of the same nonzero length")
    if np.any(~np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"sems must be finite and > 0 (got {s.tolist()}); use at least two seeds")
    if np.unique(d).size == 1:
        wmean = float(np.sum(y / s**2) / np.sum(1 / s**2))
        se = float(1 / np.sqrt(np.sum(1 / s**2)))
        return Extrapolation(wmean, se, 0.0, 0.0, 0.0, 0, tuple(d))
    X = np.column_stack([np.ones_like(d), 1 / d])
    W = 1 / s**2
    cov = np.linalg.inv(X.T @ (W[:, None] * X))
    coef = cov @ (X.T @ (W * y))
    chi2 = float(np.sum(W * (y - X @ coef) ** 2))
    dof = d.size - 2
    scale = max(1.0, np.sqrt(chi2 / dof)) if dof > 0 else 1.0
    return Extrapolation(float(coef[0]), float(np.sqrt(cov[0, 0]) * scale), float(coef[1]),
                         float(np.sqrt(cov[1, 1]) * scale), chi2, dof, tuple(d))


@dataclass(frozen=True)
class Comparison:
    """Theory vs extrapolated simulation, with the pass rule |e_inf - theory| <= 3 SE."""

    theory: float
    e_inf: float
    se: float
    n_se: float
    passed: bool

    @property
    def z(self) -> float:
        return (self.e_inf - self.theory) / self.se if self.se > 0 else float("inf")


def compare(theory: float, extrapolation: Extrapolation, n_se: float = PASS_N_SE) -> Comparison:
    """Apply the pass rule |e_inf - theory| <= n_se SE(e_inf) (default 3)."""
    th = float(theory)
    ok = bool(abs(extrapolation.e_inf - th) <= n_se * extrapolation.se)
    return Comparison(th, extrapolation.e_inf, extrapolation.se, float(n_se), ok)
