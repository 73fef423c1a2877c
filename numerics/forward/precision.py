r"""The reduced method in mpmath: ``solve(..., precision=N)``.

Same scalar equation, bracket and explicit formulas as the float64 solver, run point by point inside
a local ``mpmath.workdps(N)`` context (the caller's ``mpmath.mp.dps`` is never read or changed).
Inputs are converted exactly (the binary value of each float). Any finite positive alpha, sigma,
lam is accepted: mpmath's exponent range is unbounded.

Tolerance: the residual (term-relative, as in float64) of an N-digit evaluation is a few units of
10^-N; Newton stops at a step of 10^-(N-3) relative. ``converged`` means residual <= 10^-(N-10):
ten digits of headroom, honest at every N >= 20 (the residual measured on the hard set at N = 50
is below 1e-45).
"""
from __future__ import annotations

import mpmath
import numpy as np

from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.residual import published_residual_mp
from lowrank_icl.numerics.forward.results import ForwardSolution, branches, package, residual_reason
from lowrank_icl.numerics.forward.solver import order_parameters_from_root
from lowrank_icl.theory.forward.stieltjes import pool_moments_mp


def precision_tolerance(precision: int) -> float:
    """The residual tolerance of an N-digit solve: 10^-(N - 10)."""
    return 10.0 ** (-(precision - 10))


def log_bracket_mp(tau, c, lk):
    """[lo, hi] with G(lo) <= 0 <= G(hi) for G(u) = tau - 1 + u g(-c-u) - lk/u (lk = lam kappa > 0 or
    tau < 1), from 0 <= u g(-c-u) <= min(1, u/(c+u)); the float64 solver proves the same bracket."""
    lo = max(lk / tau, c * (1 - tau) / tau if tau < 1 else mpmath.mpf(0))
    hi = 2 * (1 + c + lk) / tau
    if tau > 1:
        hi = min(hi, lk / (tau - 1))
    return lo, hi


def newton_in_log_mp(G, lo, hi, eps, max_iter):
    """Root of an increasing G inside [lo, hi] by Newton's method in t = log u, bisecting whenever a step
    leaves the bracket. ``G(u)`` returns (G, dG/du, ...). Returns (u, iterations, stopped)."""
    t_lo, t_hi = mpmath.log(lo), mpmath.log(hi)
    t = (t_lo + t_hi) / 2
    it, stopped = 0, False
    for it in range(1, max_iter + 1):
        uu = mpmath.exp(t)
        val, der = G(uu)[:2]
        if val == 0:
            stopped = True
            break
        if val < 0:
            t_lo = t
        else:
            t_hi = t
        t_new = t - val / (uu * der)
        if not (t_lo <= t_new <= t_hi):
            t_new = (t_lo + t_hi) / 2
        step = abs(t_new - t)
        t = t_new
        if step <= eps * max(1, abs(t)) or t_hi - t_lo <= eps * max(1, abs(t)):
            stopped = True
            break
    return mpmath.exp(t), it, stopped


def _solve_u_mp(tau, kappa, rho, sigma, alpha, lam, max_iter):
    """Scalar safeguarded Newton/bisection in log u at the current (local) mpmath precision."""
    c = (1 + sigma**2) / alpha
    if lam == 0 and tau >= 1:
        return mpmath.mpf(0), 0, True, mpmath.mpf(0)
    lk = lam * kappa if lam > 0 else mpmath.mpf(0)
    eps = mpmath.mpf(10) ** (-mpmath.mp.dps + 3)

    def G(uu):  # the two equal forms of the float64 solver (solver._g_equation), smaller terms first
        mo = pool_moments_mp(-(c + uu), kappa, rho)
        inner = mo.A1 + c * mo.g
        near_one, far = abs(tau - 1) + uu * mo.g, tau + inner
        val = ((tau - 1) + uu * mo.g) if near_one <= far else (tau - inner)
        return val - lk / uu, mo.B1 + c * mo.dg + lk / uu**2, min(near_one, far) + lk / uu

    uu, it, stopped = newton_in_log_mp(G, *log_bracket_mp(tau, c, lk), eps, max_iter)
    val, _der, scale = G(uu)
    return uu, it, stopped, abs(val) / scale


def solve_mp(params: ForwardParams, precision: int, max_iter: int = 400) -> ForwardSolution:
    """Solve every point of ``params`` with N = ``precision`` digits (see module docstring)."""
    flat = {k: np.ravel(v) for k, v in params.broadcast().items()}
    n = flat["alpha"].size
    sols, parts_list, iters, stops, residuals, finite = [], [], [], [], [], []
    tol = precision_tolerance(precision)
    with mpmath.workdps(precision):
        for i in range(n):
            pt = {k: mpmath.mpf(float(v[i])) for k, v in flat.items()}
            u, it, stopped, g_res = _solve_u_mp(pt["tau"], pt["kappa"], pt["rho"], pt["sigma"], pt["alpha"],
                                                pt["lam"], max_iter)
            sol, parts = order_parameters_from_root(pt, u, pool_moments_mp(-((1 + pt["sigma"]**2) / pt["alpha"] + u),
                                                                          pt["kappa"], pt["rho"]))
            sols.append(sol)
            parts_list.append(parts)
            iters.append(it)
            stops.append(stopped)
            residuals.append(float(max(published_residual_mp(pt, sol), g_res)))
            finite.append(all(not mpmath.isnan(v) and v != -mpmath.inf for v in sol.values()))
    residual = np.array(residuals)
    finite = np.array(finite)
    converged = finite & (residual <= tol)
    sol = {k: np.array([s_[k] for s_ in sols], dtype=object) for k in sols[0]}
    parts = {k: {pn: np.array([pl[k][pn] for pl in parts_list], dtype=object) for pn in d}
             for k, d in parts_list[0].items()}
    return package(params, sol, parts, converged=converged, residual=residual, iters=np.array(iters),
                   stopped=np.array(stops), reason=residual_reason(residual, tol, finite, float64=False),
                   branch=branches(flat["tau"], flat["lam"]), method="reduced", precision=precision, tolerance=tol)
