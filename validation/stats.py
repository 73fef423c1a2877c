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

PASS_N_SE = 3.0


def standard_error(values) -> float:
    """sd(values, ddof=1)/sqrt(n); NaN with fewer than two values."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2:
        return float("nan")
    return float(np.std(v, ddof=1) / np.sqrt(v.size))


@dataclass(frozen=True)
class Estimate:
    """A Monte Carlo estimate from independent draws: ``values``, ``mean``, ``sem``."""

    values: tuple

    @classmethod
    def of(cls, values) -> "Estimate":
        return cls(tuple(float(v) for v in np.asarray(values, dtype=float).ravel()))

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sem(self) -> float:
        return standard_error(self.values)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "sem": self.sem, "values": list(self.values)}


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
