r"""The residual test: how well the published saddle-point equations hold at a returned point.

The equations are those of :func:`lowrank_icl.theory.forward.saddle_point.derive_state_equations`:
the five published equations for (q, m, chi, q_bar, chi_bar), with the training error E carried as a
sixth unknown, plus the published definition E = s2 - 2m + q + s2 q_bar/alpha. Each residual is
measured relative to the sum of the magnitudes of the terms of its equation:

* the five right-hand sides are sums of nonnegative terms, so the scale is the value itself;
* the definition of E mixes signs (it cancels when E is small), so its scale is s2 + 2|m| + q + s2 q_bar/alpha.

Evaluating each equation in working precision therefore contributes at most a few units of
roundoff (~1e-15 in float64, ~10^-N with N digits) to the residual, whatever the size of the
errors: the tolerance (:func:`lowrank_icl.numerics.forward.core.residual_tolerance`) cannot be
failed by rounding alone.

The pool traces at the state's z come from the solve's moment provider (rank-r closed forms or a
general spectrum's deterministic equivalent), so one residual serves every task law and precision.
At lam = 0, tau < 1 (q_hat = 0, chi = +inf) the chi and chi_bar equations are taken in their
lam -> 0 limit: divided by Delta they become A1 + c g = tau (scale A1 + c g + tau), and z = -nu.
At the interpolation threshold (errors +inf) the residual is 0 by definition (exact limit).
"""
from __future__ import annotations

from functools import reduce

import numpy as np

from lowrank_icl.theory.forward.saddle_point import numeric_state_equations

STATE_NAMES = ("q", "m", "chi", "q_bar", "chi_bar")


def _moment_args(mo):
    return (mo.g, mo.dg, mo.A1, mo.B1, mo.A2, mo.Mm, mo.Q3)


def published_residual(p: dict, sol: dict, moments_at, be=None) -> np.ndarray:
    """Max term-relative residual of the published equations at ``sol`` (flat arrays, see module).

    ``p``: flat parameter arrays (alpha, tau, kappa, sigma, lam); ``moments_at(nu, sel)``: pool traces
    at effective ridges nu for the points ``sel``; ``be``: the backend of the arrays (float64 default).
    """
    if be is None:
        from lowrank_icl.numerics.forward.core import FLOAT64 as be
    z_fn, rhs_fns = numeric_state_equations("mpmath" if be.precision else "numpy")
    alpha, tau, kappa, sigma, lam = (p[k] for k in ("alpha", "tau", "kappa", "sigma", "lam"))
    q, m, chi, q_bar, chi_bar, e = (be.array(sol[k]) for k in (*STATE_NAMES, "training_error"))
    zero = 0 * tau
    c = (1 + sigma**2) / alpha
    with np.errstate(invalid="ignore"):
        lk = np.where(lam > 0, lam * kappa, zero)
    finite_e = be.isfinite(e)
    regular = be.isfinite(chi) & finite_e
    scaled = ~be.isfinite(chi) & finite_e
    res = np.zeros(tau.shape, dtype=float)
    sel = np.flatnonzero(finite_e)
    if sel.size == 0:
        return res
    # every point has a finite E at a converged grid: then no copies of the inputs are taken
    pick = slice(None) if sel.size == tau.shape[0] else sel
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q, m, chi, q_bar, chi_bar, e = (x[pick] for x in (q, m, chi, q_bar, chi_bar, e))
        alpha, tau, sigma, lk, c = (x[pick] for x in (alpha, tau, sigma, lk, c))
        regular, scaled = regular[pick], scaled[pick]
        all_regular = bool(np.all(regular))
        one = 1 + 0 * tau
        e_def = abs((1 + sigma**2) - 2 * m + q + c * q_bar - e) / ((1 + sigma**2) + 2 * abs(m) + abs(q)
                                                                 + c * abs(q_bar) + abs(e))
        if all_regular:
            chi_r, chi_bar_r = chi, chi_bar
            z = z_fn(q, m, chi_r, q_bar, chi_bar_r, e, alpha, tau, sigma, lk)
        else:
            chi_r, chi_bar_r = np.where(regular, chi, one), np.where(regular, chi_bar, one)
            z = np.where(regular, z_fn(q, m, chi_r, q_bar, chi_bar_r, e, alpha, tau, sigma, lk),
                         -be.array(sol["nu"])[pick])
        ok = be.isfinite(z) & (z < 0)
        mo = moments_at(np.where(ok, -z, one), sel)
        args = (q, m, chi_r, q_bar, chi_bar_r, e, *_moment_args(mo), alpha, tau, sigma, lk)
        checks = [be.to_float(e_def)]

        def rel(rhs, x):
            den = abs(rhs) + abs(x)
            return be.to_float(abs(rhs - x) / np.where(den > 0, den, one))

        for name, x in (("q", q), ("m", m), ("q_bar", q_bar)):
            checks.append(rel(rhs_fns[name](*args), x))
        # the checks are >= 0 (or NaN), so a check that is 0 at every point is left out of the maximum
        for name, x in (("chi", chi_r), ("chi_bar", chi_bar_r)):
            check = rel(rhs_fns[name](*args), x)
            checks.append(check if all_regular else np.where(regular, check, 0.0))
        if np.any(scaled):
            limit = mo.A1 + c * mo.g
            checks.append(np.where(scaled, be.to_float(abs(limit - tau) / (limit + tau)), 0.0))
        worst = reduce(np.maximum, checks)  # elementwise, NaN propagates as in np.max
    res[pick] = np.where(ok, 2 * worst, np.inf)
    return res


__all__ = ["published_residual"]
