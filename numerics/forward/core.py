r"""The one solver core of the forward saddle point, for every task law and every working precision.

The published five-equation saddle point (docs/model.md) reduces to one scalar equation in the
explicit-ridge part u of the effective ridge nu = c + u, c = (1 + sigma^2)/alpha
(:mod:`lowrank_icl.theory.forward.saddle_point`):

    G(u) = tau - 1 + u g(nu) - lam kappa / u = 0,    dG/du = B1 + c g' + lam kappa/u^2 > 0,

where g(nu) = int dmu(s)/(s + nu) is the Stieltjes transform of the pool's spectral law mu (mean 1).
Everything here is written once and is generic in two directions:

* **the task law**, through a *moment provider*: an object whose ``moments(nu, sel)`` returns the
  pool traces g, dg, A1, B1, A2, Mm, Q3, W at effective ridges ``nu`` for the points ``sel``
  (:class:`lowrank_icl.theory.forward.stieltjes.PoolMoments` fields; ``root_moments`` the subset
  g, dg, A1, B1 that the root search evaluates at every iterate; ``state_moments`` those the residual
  test evaluates at the state's own z), and whose ``finish`` adds the
  test-law traces and restores the original units. The rank-r pool (closed forms,
  :class:`lowrank_icl.numerics.forward.solver.RankRPool`) and a general spectrum (deterministic
  equivalent, :class:`lowrank_icl.numerics.forward.general.SpectrumPool`) are two providers.
* **the number type**, through a *backend*: float64 arrays (:data:`FLOAT64`) or object arrays of
  mpmath numbers evaluated in a local N-digit context (:class:`MPBackend`). The same array code runs
  on both.

The pieces, each with one home:

* :func:`residual_tolerance` - the tolerance rule: 1e-10 in float64, 10^-(N - 10) with N digits;
* :func:`check_precision` - the accepted precisions, [20, 1000] digits;
* :func:`log_bracket` - a proved bracket [lo, hi] with G(lo) <= 0 <= G(hi);
* :func:`reduced_equation` - G, dG/du and the magnitude of G's terms, in the form that rounds least;
* :func:`find_root` - safeguarded Newton in t = log u with an active set and the stopping rule;
* :func:`solve_core` - root, order parameters, conjugates, published residual, ``converged``,
  ``reason``, ``branch``: one :class:`~lowrank_icl.numerics.forward.results.ForwardSolution`.

Stopping rule of :func:`find_root` (per point; only unstopped points are evaluated again):

1. |G| <= 2 eps (terms of G): G is zero to the rounding of its own evaluation;
2. a Newton step that stays in the bracket has |dt| <= eps^0.6 max(1, |t|): Newton converges
   quadratically, so the error left after that step is ~ eps^1.2, below rounding;
3. the bracket has shrunk to 4 eps max(1, |t|) (a few units in the last place of t).

Rules 2 and 3 end the two-cycle between adjacent floating-point numbers that a pure step test on
|dt| <= 4e-16 |t| can fall into when G's rounding exceeds the test (both neighbours of the root
then give steps of one ulp forever).
"""
from __future__ import annotations

import mpmath
import numpy as np

from lowrank_icl.numerics._checks import check_int
from lowrank_icl.numerics.forward.results import (ForwardSolution, branches, build_solution, residual_reason)
from lowrank_icl.theory.forward.saddle_point import evaluate_explicit

FLOAT64_TOLERANCE = 1e-10
PRECISION_RANGE = (20, 1000)
# Largest accepted estimate of the float64 relative error of the root u: above it the point is
# ill-conditioned in float64 (lam = 0, tau close to kappa < rho at large alpha: the root is fixed by a
# small difference of O(1) terms) and is reported converged=False, to be solved with precision=.
CONDITION_LIMIT = 5e-12


def residual_tolerance(precision: int | None) -> float:
    """The residual tolerance: 1e-10 in float64, 10^-(N - 10) with ``precision=N`` digits.

    The residual is term-relative (:mod:`lowrank_icl.numerics.forward.residual`), so rounding alone
    contributes a few units of 10^-N (or ~1e-15 in float64): the tolerance leaves ten (five) digits
    of headroom for the solver and cannot be failed by rounding.
    """
    return FLOAT64_TOLERANCE if precision is None else 10.0 ** (-(precision - 10))


def check_precision(precision) -> int | None:
    """None (float64) or an integer number of digits in :data:`PRECISION_RANGE`."""
    if precision is None:
        return None
    lo, hi = PRECISION_RANGE
    return check_int("precision", precision, lower=lo, upper=hi)


# ----------------------------------------------------------------------------------------------
# backends: the same array code on float64 and on mpmath object arrays

class Float64Backend:
    """float64 numpy arrays."""

    precision = None
    dtype = float

    def __init__(self):
        self.eps = float(np.finfo(float).eps)

    def context(self):
        return np.errstate(divide="ignore", invalid="ignore", over="ignore")

    def array(self, x):
        return np.asarray(x, dtype=float)

    exp, log, sqrt = staticmethod(np.exp), staticmethod(np.log), staticmethod(np.sqrt)
    isfinite, isinf = staticmethod(np.isfinite), staticmethod(np.isinf)

    def to_float(self, x):
        return np.asarray(x, dtype=float)


class MPBackend:
    """Object arrays of mpmath numbers at N = ``precision`` significant digits.

    Every evaluation runs inside :meth:`context` (``mpmath.workdps(N)``); the caller's global
    ``mpmath.mp.dps`` is never read or changed. Inputs convert exactly (the binary value of each float).
    """

    dtype = object

    def __init__(self, precision: int):
        self.precision = int(precision)
        with mpmath.workdps(self.precision):
            self.eps = mpmath.mpf(2) ** (-mpmath.mp.prec)

    def context(self):
        return mpmath.workdps(self.precision)

    def array(self, x):
        arr = np.asarray(x)
        if arr.dtype == object:
            return arr
        flat = [mpmath.mpf(float(v)) for v in arr.ravel()]
        out = np.empty(arr.shape, dtype=object)
        out.ravel()[:] = flat if flat else []
        return out

    exp = staticmethod(np.vectorize(mpmath.exp, otypes=[object]))
    log = staticmethod(np.vectorize(mpmath.log, otypes=[object]))
    sqrt = staticmethod(np.vectorize(mpmath.sqrt, otypes=[object]))
    isfinite = staticmethod(np.vectorize(lambda v: bool(mpmath.isfinite(v)), otypes=[bool]))
    isinf = staticmethod(np.vectorize(lambda v: bool(mpmath.isinf(v)), otypes=[bool]))

    def to_float(self, x):
        return np.vectorize(float, otypes=[float])(x) if np.size(x) else np.zeros(np.shape(x))


FLOAT64 = Float64Backend()


def backend(precision: int | None):
    """:data:`FLOAT64` for None, else an :class:`MPBackend` with ``precision`` digits."""
    return FLOAT64 if precision is None else MPBackend(precision)


# ----------------------------------------------------------------------------------------------
# the reduced equation and its root

def lam_kappa(lam, kappa):
    """lam kappa, with 0 where lam = 0 (also at kappa = inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(lam > 0, lam * kappa, 0 * lam)


def log_bracket(tau, c, lk):
    """[lo, hi] with G(lo) <= 0 <= G(hi) where lam > 0 or tau < 1.

    From 0 <= u g(nu) <= min(1, u/(c + u)) (g <= 1/nu) and Jensen, u g >= u/(1 + c + u) (the pool
    law has mean 1): G(lo) <= 0 at lo = max(lam kappa/tau, c (1 - tau)/tau), G(hi) >= 0 at
    hi = 2 (1 + c + lam kappa)/tau, and also at lam kappa/(tau - 1) when tau > 1.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.maximum(lk / tau, np.where(tau < 1, c * (1 - tau) / tau, 0 * tau))
        hi = 2 * (1 + c + lk) / tau
        hi = np.where(tau > 1, np.minimum(hi, lk / np.where(tau > 1, tau - 1, 1 + 0 * tau)), hi)
    return lo, hi


def reduced_equation(mo, u, tau, c, lk):
    """G(u), dG/du and the magnitude of G's terms, in whichever of two equal forms rounds least.

    G = (tau - 1) + u g - lam kappa/u has terms |tau - 1|, u g, lam kappa/u (tau - 1 is exact near
    tau = 1, where u -> 0); since 1 - u g = A1 + c g (the pool law has mean 1), also
    G = tau - (A1 + c g) - lam kappa/u (no cancellation when u g is close to 1, at small tau).
    dG/du = B1 + c g' + lam kappa/u^2 is a sum of positive terms.
    """
    inner = mo.A1 + c * mo.g
    ug, lk_u = u * mo.g, lk / u
    near_one = abs(tau - 1) + ug
    far = tau + inner
    G = np.where(near_one <= far, (tau - 1) + ug, tau - inner) - lk_u
    return G, mo.B1 + c * mo.dg + lk / u**2, np.minimum(near_one, far) + lk_u


def find_root(provider, be, max_iter: int):
    """Root u >= 0 of G at every point of ``provider`` (see the module docstring for the rule).

    Returns (u, iterations, stopped): u = 0 exactly where lam = 0 and tau >= 1 (the boundary root).
    Each iteration evaluates the moments only at the points not yet stopped.
    """
    p = provider.params
    tau, c, lk = p["tau"], provider.c, provider.lk
    n = tau.shape[0]
    u = be.array(np.zeros(n))
    iters = np.zeros(n, dtype=int)
    stopped = np.ones(n, dtype=bool)
    act = np.flatnonzero((p["lam"] > 0) | (tau < 1))
    if act.size == 0:
        return u, iters, stopped
    # working arrays hold the points not yet stopped (positions ``pos`` in ``act``); they are
    # compressed whenever points stop, so each iteration touches the unstopped points only
    tau_w, c_w, lk_w = tau[act], c[act], lk[act]
    lo, hi = log_bracket(tau_w, c_w, lk_w)
    t_lo, t_hi = be.log(lo), be.log(hi)
    t = (t_lo + t_hi) / 2
    t_out = t.copy()
    done_out = np.zeros(act.size, dtype=bool)
    n_it = np.full(act.size, max_iter, dtype=int)
    pos, sel = np.arange(act.size), act
    step_tol = be.eps ** 0.6
    for it in range(max_iter):
        uu = be.exp(t)
        G, dG, scale = reduced_equation(provider.root_moments(c_w + uu, sel), uu, tau_w, c_w, lk_w)
        neg = G < 0
        t_lo = np.where(neg, t, t_lo)
        t_hi = np.where(neg, t_hi, t)
        at_root = abs(G) <= 2 * be.eps * scale  # a further step can only add rounding
        t_new = t - G / (uu * dG)
        inside = be.isfinite(t_new) & (t_new >= t_lo) & (t_new <= t_hi)
        t_new = np.where(at_root, t, np.where(inside, t_new, (t_lo + t_hi) / 2))
        size = np.maximum(1, abs(t_new))
        done = at_root | (inside & (abs(t_new - t) <= step_tol * size)) | (t_hi - t_lo <= 4 * be.eps * size)
        t = t_new
        if not done.any():
            continue
        fin = pos[done]
        t_out[fin], done_out[fin], n_it[fin] = t[done], True, it + 1
        keep = np.flatnonzero(~done)
        if keep.size == 0:
            break
        pos, sel, t, t_lo, t_hi = pos[keep], sel[keep], t[keep], t_lo[keep], t_hi[keep]
        tau_w, c_w, lk_w = tau_w[keep], c_w[keep], lk_w[keep]
    else:
        t_out[pos] = t
    u[act] = be.exp(t_out)
    iters[act] = n_it
    stopped[act] = done_out
    return u, iters, stopped


# ----------------------------------------------------------------------------------------------
# everything after the root

def conjugates(order, moments, u, p, lk, c):
    """The conjugates and susceptibilities from the root (finite or infinite kappa, numpy or mpmath arrays).

    With K q_hat := kappa q_hat = lam kappa/u (lam > 0), tau - 1 (lam = 0, tau > 1), 0 otherwise:
    q_hat = m_hat = K q_hat/kappa, chi = A1/(kappa q_hat), chi_bar = g/(kappa q_hat),
    chi_hat = kappa (E/tau) q_hat^2, q_bar_hat = c q_hat, chi_bar_hat = c chi_hat. These forms stay
    finite at kappa = inf (q_hat = chi_hat = 0 there); chi = chi_bar = +inf where q_hat = 0.
    """
    tau, kappa, lam = p["tau"], p["kappa"], p["lam"]
    zero = 0 * tau
    kqh = np.where(lam > 0, lk / np.where(u > 0, u, 1 + zero), np.maximum(tau - 1, zero))
    pos = kqh > 0
    safe = np.where(pos, kqh, 1 + zero)
    infinite = np.isinf(kappa.astype(float))
    q_hat = np.where(infinite, zero, kqh / np.where(infinite, 1 + zero, kappa))
    f = order["f"]
    finite_f = np.isinf(np.asarray(f, dtype=float)) == 0
    chi_hat = np.where(pos & finite_f, np.where(finite_f, f, zero) * kqh * q_hat, zero)
    inf = np.inf if f.dtype != object else mpmath.inf
    return dict(chi=np.where(pos, order["m_bar"] / safe, inf), chi_bar=np.where(pos, moments.g / safe, inf),
                q_hat=q_hat, m_hat=q_hat, chi_hat=chi_hat, q_bar_hat=c * q_hat, chi_bar_hat=c * chi_hat)


def solve_core(provider, be, max_iter: int, params, method: str = "reduced", solution_type=ForwardSolution,
               extra: dict | None = None):
    """Solve every point of ``provider`` with backend ``be``; returns a ``solution_type``.

    ``params`` is what the solution reports (the user's parameters); ``provider.params`` are the flat
    parameters the equations see (normalized for general spectra). ``converged`` = all values finite,
    residual <= :func:`residual_tolerance`, and (float64) the root well conditioned; ``reason`` says
    which test failed and what to do.
    """
    from lowrank_icl.numerics.forward.residual import published_residual

    with be.context():
        p = provider.params
        u, iters, stopped = find_root(provider, be, max_iter)
        c, lk = provider.c, provider.lk
        nu = c + u
        everything = np.arange(u.shape[0])
        mo = provider.moments(nu, everything)
        order, parts = evaluate_explicit(u, mo, p["alpha"], p["tau"], p["kappa"], p["rho"], p["sigma"], p["lam"])
        on_root = u > 0
        u_safe = np.where(on_root, u, 1 + 0 * u)  # G is evaluated at the interior roots only
        G, dG, scale = reduced_equation(mo, u_safe, p["tau"], c, lk)
        g_res = be.to_float(np.where(on_root, abs(G) / scale, 0 * u))
        cond = be.to_float(np.where(on_root, be.eps * scale / (u_safe * dG), 0 * u))
        sol = dict(q=order["q"], m=order["m"], q_bar=order["q_bar"], m_bar=order["m_bar"], q0=order["q0"],
                   m0=order["m0"], nu=nu, training_error=order["E"], **conjugates(order, mo, u, p, lk, c))
        residual = np.maximum(be.to_float(published_residual(p, sol, provider.state_moments, be)), g_res)
        sol, parts, more = provider.finish(sol, parts, order, mo, u)
        residual = np.maximum(residual, more.pop("extra_residual", 0.0))
        finite = np.isfinite(residual)
        for v in sol.values():
            x = be.to_float(v)
            finite &= ~(np.isnan(x) | np.isneginf(x))
    tol = residual_tolerance(be.precision)
    converged = finite & (residual <= tol)
    reason = residual_reason(residual, tol, finite, float64=be.precision is None)
    if be.precision is None:
        ill = ~(cond <= CONDITION_LIMIT) & converged
        converged &= ~ill
        for i in np.flatnonzero(ill):
            reason[i] = (f"ill-conditioned in float64 (estimated relative error of the root {cond[i]:.1g} > "
                         f"{CONDITION_LIMIT:.0e}; lam = 0 with tau close to kappa): use precision=")
    return build_solution(solution_type, params, sol, parts, converged=converged, residual=residual, iters=iters,
                          stopped=stopped, reason=reason, branch=branches(p["tau"], p["lam"]), method=method,
                          precision=be.precision, tolerance=tol, extra={**(extra or {}), **more})


__all__ = ["residual_tolerance", "check_precision", "find_root", "solve_core", "log_bracket", "reduced_equation",
           "backend", "FLOAT64", "MPBackend", "FLOAT64_TOLERANCE", "PRECISION_RANGE", "CONDITION_LIMIT"]
