r"""The package's one power-law fitter: a straight line in log-log coordinates, with a confidence interval.

Model: log y = log A + b log x, fitted by (weighted) least squares over the points with x > 0,
y > 0 and everything finite.

- Unweighted (``sem`` None): ordinary least squares; SE(b) = sqrt(s^2 [(X^T X)^{-1}]_{bb}) with
  s^2 = SSR/(n - 2), the usual regression standard error.
- Weighted (``sem`` given, the standard errors of y): the SE of log y is sem/y (delta method,
  floored at 1e-12), weights w = (y/sem)^2; SE(b) = sqrt([(X^T W X)^{-1}]_{bb}) multiplied by the
  Birge ratio sqrt(chi^2/dof) when that exceeds 1 (points off a power law widen the SE instead of
  being ignored; :mod:`lowrank_icl.validation.stats` widens its 1/D fits the same way).

The interval is b +- t_{(1+level)/2, n-2} SE(b) (Student t, n - 2 degrees of freedom). With n = 2
the slope is exact and its SE is NaN (unweighted) or the weighted one, and the interval is NaN;
with fewer than 2 usable points everything is NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLawFit:
    """y = prefactor * x^exponent: the exponent b, its SE and confidence interval, and the fit's size.

    ``chi2_dof`` is chi^2/(n - 2) of a weighted fit (NaN unweighted or with n = 2); ``n`` counts the
    points used.
    """

    exponent: float
    exponent_se: float
    exponent_ci: tuple
    prefactor: float
    chi2_dof: float
    n: int
    level: float = 0.95

    def __str__(self) -> str:
        lo, hi = self.exponent_ci
        return f"{self.exponent:.3f} ± {self.exponent_se:.2g} [{self.level:.0%} CI {lo:.3f}, {hi:.3f}]"


def log_log_fit(x, y, sem=None, *, level: float = 0.95) -> PowerLawFit:
    """Fit y = A x^b by least squares in log-log (module docstring).

    Parameters
    ----------
    x, y : array_like
        Positive abscissae and values (other points are left out).
    sem : array_like, optional
        Standard errors of y: weights (y/sem)^2 and the Birge-ratio widening.
    level : float
        Confidence level of ``exponent_ci`` (default 0.95).

    Returns
    -------
    PowerLawFit
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1) (got {level!r})")
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    s = None if sem is None else np.asarray(sem, dtype=float).ravel()
    if x.shape != y.shape or (s is not None and s.shape != y.shape):
        raise ValueError(f"x, y (and sem) must have one length (got {x.size}, {y.size}"
                         + ("" if s is None else f", {s.size}") + ")")
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if s is not None:
        ok &= np.isfinite(s) & (s >= 0)
    x, y = x[ok], y[ok]
    n = int(x.size)
    nan = float("nan")
    if n < 2:
        return PowerLawFit(nan, nan, (nan, nan), nan, nan, n, level)
    lx, ly = np.log(x), np.log(y)
    X = np.column_stack([np.ones(n), lx])
    w = np.ones(n) if s is None else 1.0 / np.maximum(s[ok] / y, 1e-12) ** 2
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    coef = cov @ (X.T @ (w * ly))
    dof = n - 2
    chi2 = float(np.sum(w * (ly - X @ coef) ** 2))
    if s is None:
        se = float(np.sqrt(chi2 / dof * cov[1, 1])) if dof > 0 else nan
        chi2_dof = nan
    else:
        chi2_dof = chi2 / dof if dof > 0 else nan
        se = float(np.sqrt(cov[1, 1]) * (max(1.0, np.sqrt(chi2_dof)) if dof > 0 else 1.0))
    if dof > 0:
        from scipy import stats
        half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
        ci = (float(coef[1] - half), float(coef[1] + half))
    else:
        ci = (nan, nan)
    return PowerLawFit(float(coef[1]), se, ci, float(np.exp(coef[0])), float(chi2_dof), n, level)


__all__ = ["PowerLawFit", "log_log_fit"]
