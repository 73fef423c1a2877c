r"""The residual test: how well the published saddle-point equations hold at a returned point.

The equations are those of :func:`lowrank_icl.theory.forward.saddle_point.derive_state_equations`:
the five published equations for (q, m, chi, q_bar, chi_bar), with the training error E carried as a
sixth unknown, plus the published definition E = s2 - 2m + q + s2 q_bar/alpha. Each residual is
measured relative to the sum of the magnitudes of the terms of its equation:

* the five right-hand sides are sums of nonnegative terms, so the scale is the value itself;
* the definition of E mixes signs (it cancels when E is small), so its scale is s2 + 2|m| + q + s2 q_bar/alpha.

Evaluating each equation in working precision therefore contributes at most a few units of
roundoff (~1e-15 in float64) to the residual, whatever the size of the errors: the tolerance 1e-10
leaves five orders of magnitude for the solver and cannot be failed by rounding alone.

At lam = 0, tau < 1 (q_hat = 0, chi = +inf) the chi and chi_bar equations are taken in their
lam -> 0 limit: divided by Delta they become A1 + c g = tau (scale A1 + c g + tau), and z = -nu.
At the interpolation threshold (errors +inf) the residual is 0 by definition (exact limit).
"""
from __future__ import annotations

import mpmath
import numpy as np

from lowrank_icl.theory.forward.saddle_point import numeric_state_equations
from lowrank_icl.theory.forward.stieltjes import pool_moments, pool_moments_mp

STATE_NAMES = ("q", "m", "chi", "q_bar", "chi_bar")


def _moment_args(mo):
    return (mo.g, mo.dg, mo.A1, mo.B1, mo.A2, mo.Mm, mo.Q3)


def _lam_kappa(lam, kappa):
    with np.errstate(invalid="ignore"):
        return np.where(lam > 0, lam * kappa, 0.0)


def published_residual(p: dict, sol: dict) -> np.ndarray:
    """Max term-relative residual of the published equations at ``sol`` (float64 arrays, see module)."""
    z_fn, rhs_fns = numeric_state_equations("numpy")
    alpha, tau, kappa, rho, sigma, lam = (p[k] for k in ("alpha", "tau", "kappa", "rho", "sigma", "lam"))
    q, m, chi, q_bar, chi_bar, e = (np.asarray(sol[k], dtype=float) for k in (*STATE_NAMES, "training_error"))
    c = (1 + sigma**2) / alpha
    lk = _lam_kappa(lam, kappa)
    res = np.zeros(tau.shape, dtype=float)
    finite_e = np.isfinite(e)
    regular = np.isfinite(chi) & finite_e
    scaled = ~np.isfinite(chi) & finite_e
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        e_def = np.abs((1 + sigma**2) - 2 * m + q + c * q_bar - e) / ((1 + sigma**2) + 2 * np.abs(m) + np.abs(q)
                                                                    + c * np.abs(q_bar) + np.abs(e))
        z = np.where(regular, z_fn(q, m, chi, q_bar, chi_bar, e, alpha, tau, sigma, lk), -np.asarray(sol["nu"]))
        ok = finite_e & np.isfinite(z) & (z < 0)
        mo = pool_moments(np.where(ok, z, -1.0), kappa, rho)
        args = (q, m, chi, q_bar, chi_bar, e, *_moment_args(mo), alpha, tau, sigma, lk)
        checks = [e_def]
        for name, x in (("q", q), ("m", m), ("q_bar", q_bar)):
            rhs = rhs_fns[name](*args)
            checks.append(np.abs(rhs - x) / np.maximum(np.abs(rhs) + np.abs(x), 1e-300))
        for name, x in (("chi", chi), ("chi_bar", chi_bar)):
            rhs = rhs_fns[name](*args)
            checks.append(np.where(regular, np.abs(rhs - x) / np.maximum(np.abs(rhs) + np.abs(x), 1e-300), 0.0))
        limit = mo.A1 + c * mo.g
        checks.append(np.where(scaled, np.abs(limit - tau) / (limit + tau), 0.0))
        worst = np.max(checks, axis=0)
    res[finite_e] = np.where(ok, 2 * worst, np.inf)[finite_e]
    return res


def published_residual_mp(p: dict, sol: dict):
    """Scalar mpmath twin of :func:`published_residual` (same equations, same scales)."""
    e = sol["training_error"]
    if not mpmath.isfinite(e):
        return mpmath.mpf(0)
    z_fn, rhs_fns = numeric_state_equations("mpmath")
    alpha, tau, kappa, rho, sigma, lam = (p[k] for k in ("alpha", "tau", "kappa", "rho", "sigma", "lam"))
    q, m, chi, q_bar, chi_bar = (sol[k] for k in STATE_NAMES)
    c = (1 + sigma**2) / alpha
    lk = lam * kappa if lam > 0 else mpmath.mpf(0)
    regular = mpmath.isfinite(chi)
    checks = [abs((1 + sigma**2) - 2 * m + q + c * q_bar - e) / ((1 + sigma**2) + 2 * abs(m) + abs(q)
                                                                 + c * abs(q_bar) + abs(e))]
    z = z_fn(q, m, chi, q_bar, chi_bar, e, alpha, tau, sigma, lk) if regular else -sol["nu"]
    mo = pool_moments_mp(z, kappa, rho)
    args = (q, m, chi if regular else 0, q_bar, chi_bar if regular else 0, e, *_moment_args(mo), alpha, tau, sigma, lk)
    names = STATE_NAMES if regular else ("q", "m", "q_bar")
    for name in names:
        rhs = rhs_fns[name](*args)
        checks.append(abs(rhs - sol[name]) / (abs(rhs) + abs(sol[name])))
    if not regular:
        limit = mo.A1 + c * mo.g
        checks.append(abs(limit - tau) / (limit + tau))
    return 2 * max(checks)
