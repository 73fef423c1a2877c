r"""The published damped fixed-point iteration, kept as a baseline: ``solve(..., method="damped")``.

x <- (1 - eta) x + eta F(x) on (q, m, chi, q_bar, chi_bar), F the published map. Settings of the
published code: all five start at 1, eta = 0.5, at most 1000 iterations, stop when the Euclidean
norm of the change is < 1e-9, and g from the textbook root
(:func:`lowrank_icl.theory.forward.stieltjes.published_g`).

Two verdicts are reported, and they differ: ``stopped`` is the iteration's own stop rule (a step
below 1e-9, finite); ``converged`` is the residual test every solver reports (published equations
hold to 1e-10 term-relative, :mod:`lowrank_icl.numerics.forward.residual`). A small step is not
a small residual: on slow directions the iteration stops far from the fixed point.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.core import residual_tolerance
from lowrank_icl.numerics.forward.residual import published_residual
from lowrank_icl.numerics.forward.results import ForwardSolution, branches, build_solution, residual_reason
from lowrank_icl.theory.forward.saddle_point import numeric_published_map, protocol_parts
from lowrank_icl.theory.forward.stieltjes import pool_moments, published_g, published_g_derivative

STOP_STEP = 1e-9


def solve_damped(params: ForwardParams, max_iter: int, damping: float) -> ForwardSolution:
    """Run the published iteration at every point of ``params`` (see module docstring)."""
    if np.any(np.isinf(np.asarray(params.kappa, dtype=float))):
        raise ValueError("method='damped' needs a finite kappa (the published iteration has no kappa = inf form)")
    p = {k: np.atleast_1d(v).astype(float).ravel() for k, v in params.broadcast().items()}
    z_fn, hat_fns, rhs_fns = numeric_published_map("numpy")
    textbook_moments = _textbook_moments()
    names = ("q", "m", "chi", "q_bar", "chi_bar")
    n = p["tau"].size
    x = {k: np.ones(n) for k in names}
    prm = [p[k] for k in ("alpha", "tau", "kappa", "sigma", "lam")]
    rho = p["rho"]
    active = np.ones(n, dtype=bool)
    stopped = np.zeros(n, dtype=bool)
    iters = np.zeros(n, dtype=int)
    eta = float(damping)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            st = [x[k][idx] for k in names]
            pr = [v[idx] for v in prm]
            z = z_fn(*st, *pr)
            g_val = published_g(z, pr[2], rho[idx])
            dg_val = published_g_derivative(z, pr[2], rho[idx], g_val)
            # the published code forms the moments from g, g' directly (textbook combinations)
            moments = [fn(z, g_val, dg_val) for fn in textbook_moments]
            new = [rhs_fns[k](*st, g_val, dg_val, *moments, *pr) for k in names]
            sq_change = np.zeros(idx.size)
            for k, old, val in zip(names, st, new):
                upd = (1 - eta) * old + eta * val
                sq_change += (upd - old) ** 2
                x[k][idx] = upd
            iters[idx] += 1
            small = np.sqrt(sq_change) < STOP_STEP
            stopped[idx[small]] = True
            active[idx[small | ~np.isfinite(sq_change)]] = False
    # everything else follows from the state: hats and z from their published definitions, the
    # at-the-solution formulas for m_bar, q0, m0 (docs/model.md)
    with np.errstate(all="ignore"):
        state = [x[k] for k in names]
        zf = z_fn(*state, *prm)
        finite = np.isfinite(zf) & (zf < 0) & np.all([np.isfinite(v) for v in state], axis=0)
        stopped &= finite
        hats = {k: fn(*state, *prm) for k, fn in hat_fns.items()}
        mo = pool_moments(np.where(finite, zf, -1.0), prm[2], rho)
        f = np.where(finite, hats["chi_hat"] / hats["q_hat"] ** 2, np.nan) / prm[2]  # = E/tau
        c = (1 + prm[3] ** 2) / prm[0]
        parts = protocol_parts(mo, f, c, rho)
        sol = {k: x[k] for k in names}
        sol.update({k: hats[k] for k in ("q_hat", "m_hat", "chi_hat", "q_bar_hat", "chi_bar_hat")})
        sol.update(m_bar=mo.A1, m0=mo.A1 / rho, q0=sum(parts["q0"][k] for k in ("signal", "noise_T", "noise_R")),
                   nu=-zf, training_error=(1 + prm[3] ** 2) - 2 * x["m"] + x["q"] + c * x["q_bar"])
        res = published_residual(p, {**sol, **{k: np.where(finite, x[k], 1.0) for k in names}},
                                 lambda nu, sel: pool_moments(-nu, prm[2][sel], rho[sel]))
    res = np.where(finite, res, np.nan)
    converged = np.isfinite(res) & (res <= residual_tolerance(None))
    reason = residual_reason(np.where(finite, res, np.inf), residual_tolerance(None), finite, float64=True,
                             hint="; the damped iteration is not at the fixed point: use method='reduced'")
    reason = np.where(converged | finite, reason, "the damped iteration produced a non-finite state")
    parts["errors"] = {"tm": parts["q"], "idg": parts["q0"], "odg": parts["q_bar"]}
    return build_solution(ForwardSolution, params, sol, parts, converged=converged, residual=res, iters=iters,
                          stopped=stopped, reason=reason, branch=branches(p["tau"], p["lam"]), method="damped",
                          tolerance=residual_tolerance(None))


@lru_cache(maxsize=None)
def _textbook_moments():
    import sympy as sp

    from lowrank_icl.theory.forward import saddle_point as spm
    return [sp.lambdify((spm.zs, spm.g, spm.dg), spm.MOMENT_DEFINITIONS[mom], modules="numpy")
            for mom in spm.MOMENTS]
