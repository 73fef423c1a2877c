r"""The forward saddle-point solver users call: :func:`solve` (float64, vectorized).

Default method ``"reduced"``: the published five-equation saddle point (docs/model.md) reduces to
one scalar equation in the explicit-ridge part u of the effective ridge nu = c + u,
c = (1 + sigma^2)/alpha (derivation in :mod:`lowrank_icl.theory.forward.saddle_point`):

    G(u) = tau - 1 + u g(-c - u) - lam kappa / u = 0,    G strictly increasing in u,

evaluated point by point in whichever of two equal forms has the smaller terms
((tau - 1) + u g - lam kappa/u, or tau - (A1 + c g) - lam kappa/u since 1 - u g = A1 + c g).

It is solved by Newton's method in log u inside a bracket that is proved valid (see
:func:`_bracket`), falling back to bisection whenever a Newton step leaves the bracket, so every
point converges. All order parameters then follow explicitly, in cancellation-free form. The
residual reported is that of the *published* equations at the returned point
(:mod:`lowrank_icl.numerics.forward.residual`).

``precision=N`` runs the same method in mpmath (:mod:`lowrank_icl.numerics.forward.precision`);
``method="damped"`` is the published damped iteration (:mod:`lowrank_icl.numerics.forward.damped`).
"""
from __future__ import annotations

import numpy as np

from lowrank_icl.numerics._checks import check_int, check_real
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.residual import published_residual
from lowrank_icl.numerics.forward.results import ForwardSolution, branches, package, residual_reason
from lowrank_icl.theory.forward.saddle_point import evaluate_explicit
from lowrank_icl.theory.forward.stieltjes import pool_moments

RESIDUAL_TOLERANCE = 1e-10
# Largest accepted estimate of the float64 relative error of the root u (see _solve_u): above it the
# point is ill-conditioned in float64 (lam = 0, tau close to kappa < rho at large alpha: the root is
# fixed by a small difference of O(1) terms) and is reported converged=False, to be solved with precision=.
CONDITION_LIMIT = 5e-12
_EPS = float(np.finfo(float).eps)
_UNSET = object()


def solve(alpha, tau=_UNSET, kappa=_UNSET, rho=1.0, sigma=0.0, lam=0.0, *, method: str = "reduced",
          precision: int | None = None, max_iter: int | None = None, damping: float = 0.5,
          spectrum=None) -> ForwardSolution:
    r"""Solve the forward saddle point of low-rank linear-attention ICL.

    Parameters (docs/model.md; all broadcast), in the project's order: alpha = L/D > 0,
    tau = M/D^2 > 0, kappa = M0/D > 0 or ``inf`` (a fresh task for every prompt; then lam must be
    0), rho = r/D in (0, 1], sigma >= 0 the label-noise std, lam >= 0 the ridge (penalty
    lam M0 ||Gamma||_F^2). Instead of the six values a :class:`ForwardParams` may be passed alone.

    ``method="reduced"`` (default) solves G(u) = tau - 1 + u g(-c-u) - lam kappa/u = 0 and
    evaluates every order parameter explicitly; ``method="damped"`` runs the published damped
    fixed-point iteration (baseline: its own stop rule is ``stopped``, our residual test
    ``converged``). ``precision=N`` uses mpmath with N significant digits (reduced method; fields
    are mpmath numbers, object arrays for array input), evaluated in a local N-digit context.

    float64 (the default) accepts the parameters inside :data:`ForwardParams.FLOAT64_RANGE` and
    refuses the rest with a ValueError that names the range; its errors are sums of nonnegative
    terms, accurate to ~1e-13 relative even where they vanish. A point float64 cannot resolve
    comes back with ``converged=False`` and a ``reason``: solve it again with ``precision=``.

    Returns a :class:`ForwardSolution`; ``result.errors(alpha_test, sigma_test)`` gives TM/IDG/ODG.
    ``spectrum=TaskSpectrum(...)`` replaces rho by a general train/test task spectrum
    (:mod:`lowrank_icl.numerics.forward.general`; "odg" is then the error on its test law).

    >>> res = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1)
    >>> bool(res.converged), round(float(res.errors().idg), 6)
    (True, 1.647853)

    Parameters
    ----------
    alpha : float, array_like or ForwardParams
        Context length ratio L / D (> 0), or a :class:`ForwardParams` holding all six values.
    tau : float or array_like
        Pretraining prompts ratio M / D^2 (> 0).
    kappa : float or array_like
        Task diversity M0 / D (> 0, or ``inf`` with lam = 0).
    rho : float or array_like
        Task rank ratio r / D, 0 < rho <= 1.
    sigma : float or array_like
        Label-noise standard deviation (>= 0).
    lam : float or array_like
        Ridge strength (>= 0).
    method : {'reduced', 'damped'}
        The one-dimensional reduced equation (default) or the published damped iteration.
    precision : int, optional
        Significant digits of an mpmath solve.
    max_iter : int, optional
        Iteration cap.
    damping : float
        Damping of ``method='damped'``.
    spectrum : TaskSpectrum, optional
        A general task spectrum instead of rho.

    Returns
    -------
    ForwardSolution
        The order parameters at each point (a :class:`SpectrumSolution` with ``spectrum=``); its
        ``errors(alpha_test, sigma_test)`` gives e_X = s2_t - 2 m_X + q_X + s2_t q_bar / alpha_t,
        s2_t = 1 + sigma_t^2, for X = TM, IDG, ODG.
    """
    if spectrum is not None:  # general task covariance (numerics.forward.general)
        from lowrank_icl.numerics.forward.general import solve_spectrum
        if not (np.ndim(rho) == 0 and float(rho) == 1.0) or method != "reduced":
            raise ValueError("spectrum= replaces rho (leave rho at its default) and needs method='reduced'")
        return solve_spectrum(alpha, tau, kappa, sigma, lam, spectrum=spectrum, precision=precision,
                              max_iter=max_iter)
    if isinstance(alpha, ForwardParams):
        if tau is not _UNSET or kappa is not _UNSET or (rho, sigma, lam) != (1.0, 0.0, 0.0):
            raise ValueError("pass either a ForwardParams or the parameters alpha, tau, kappa, rho, sigma, lam")
        params = alpha
    else:
        if tau is _UNSET or kappa is _UNSET:
            raise ValueError("solve needs alpha, tau and kappa (or one ForwardParams)")
        params = ForwardParams(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    if method not in ("reduced", "damped"):
        raise ValueError(f"method must be 'reduced' or 'damped' (got {method!r})")
    if precision is not None:
        precision = check_int("precision", precision, lower=20, upper=300)
        if method != "reduced":
            raise ValueError("precision= is available with method='reduced' only")
        from lowrank_icl.numerics.forward.precision import solve_mp
        return solve_mp(params, precision, max_iter=check_int("max_iter", max_iter or 400, lower=1))
    params.check_float64_range()
    if method == "damped":
        from lowrank_icl.numerics.forward.damped import solve_damped
        return solve_damped(params, max_iter=check_int("max_iter", max_iter or 1000, lower=1),
                            damping=check_real("damping", damping, lower=0.0, upper=1.0))
    return _solve_reduced(params, max_iter=check_int("max_iter", max_iter or 200, lower=1))


def _lam_kappa(lam, kappa):
    """lam kappa, with 0 where lam = 0 (also at kappa = inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(lam > 0, lam * kappa, 0.0)


def _bracket(tau, kappa, c, lam):
    """A bracket [lo, hi] with G(lo) <= 0 <= G(hi), from 0 <= u g(-c-u) <= min(1, u/(c+u)) and
    Jensen, u g >= u/(1 + c + u) (the pool spectrum has mean exactly 1)."""
    lk = _lam_kappa(lam, kappa)
    lo = np.maximum(lk / tau, np.where(tau < 1, c * (1 - tau) / tau, 0.0))
    hi = 2.0 * (1.0 + c + lk) / tau
    with np.errstate(divide="ignore"):
        hi = np.where(tau > 1, np.minimum(hi, lk / np.where(tau > 1, tau - 1, 1.0)), hi)
    return lo, hi


def _g_equation(u, c, tau, kappa, rho, lk):
    """G(u), dG/du and the magnitude of G's terms, in whichever of two equal forms rounds least.

    G = (tau - 1) + u g - lam kappa/u has terms |tau - 1|, u g, lam kappa/u (tau - 1 is exact near
    tau = 1, where u -> 0); since 1 - u g(-nu) = int (s + c)/(s + nu) dmu = A1 + c g, also
    G = tau - (A1 + c g) - lam kappa/u, with terms tau, A1 + c g, lam kappa/u (no cancellation when
    u g is close to 1, at small tau). The form with the smaller terms is used point by point.
    dG/du = B1 + c g' + lam kappa/u^2 > 0 (a sum of positive terms).
    """
    mo = pool_moments(-(c + u), kappa, rho)
    inner = mo.A1 + c * mo.g
    near_one = np.abs(tau - 1) + u * mo.g
    far = tau + inner
    G = np.where(near_one <= far, (tau - 1) + u * mo.g, tau - inner) - lk / u
    return G, mo.B1 + c * mo.dg + lk / u**2, np.minimum(near_one, far) + lk / u


def _solve_u(p: dict, max_iter: int):
    """Vectorized safeguarded Newton in t = log u; returns u, iterations, stopped, |G|/scale and the
    condition estimate eps (terms of G)/(u dG/du): the relative error of u that the
    rounding of G's terms implies (measured to bound the errors' relative error within a factor ~5)."""
    tau, kappa, rho, lam = p["tau"], p["kappa"], p["rho"], p["lam"]
    c = (1 + p["sigma"] ** 2) / p["alpha"]
    u = np.zeros_like(tau)
    iters = np.zeros(tau.shape, dtype=int)
    stopped = np.ones(tau.shape, dtype=bool)
    g_res = np.zeros_like(tau)
    cond = np.zeros_like(tau)
    active = (lam > 0) | (tau < 1)  # elsewhere the root is exactly u = 0
    if not np.any(active):
        return u, iters, stopped, g_res, cond
    lo, hi = (x[active] for x in _bracket(tau, kappa, c, lam))
    ta, ka, ra, ca = tau[active], kappa[active], rho[active], c[active]
    lk = _lam_kappa(lam, kappa)[active]
    t_lo, t_hi = np.log(lo), np.log(hi)
    t = 0.5 * (t_lo + t_hi)
    done = np.zeros(t.shape, dtype=bool)
    n_it = np.zeros(t.shape, dtype=int)
    for _ in range(max_iter):
        idx = ~done
        if not np.any(idx):
            break
        uu = np.exp(t[idx])
        G, dG, scale = _g_equation(uu, ca[idx], ta[idx], ka[idx], ra[idx], lk[idx])
        n_it[idx] += 1
        neg = G < 0
        t_lo[idx] = np.where(neg, t[idx], t_lo[idx])
        t_hi[idx] = np.where(neg, t_hi[idx], t[idx])
        at_root = np.abs(G) <= 1e-16 * scale  # keep t: a further step can only add rounding
        with np.errstate(divide="ignore", invalid="ignore"):
            t_new = t[idx] - G / (uu * dG)
        inside = np.isfinite(t_new) & (t_new >= t_lo[idx]) & (t_new <= t_hi[idx])
        t_new = np.where(at_root, t[idx], np.where(inside, t_new, 0.5 * (t_lo[idx] + t_hi[idx])))
        step = np.abs(t_new - t[idx])
        t[idx] = t_new
        done[idx] = at_root | (step <= 4e-16 * np.maximum(1.0, np.abs(t_new))) \
            | (t_hi[idx] - t_lo[idx] <= 4e-16 * np.maximum(1.0, np.abs(t_new)))
    u_a = np.exp(t)
    G, dG, scale = _g_equation(u_a, ca, ta, ka, ra, lk)
    u[active] = u_a
    iters[active] = n_it
    stopped[active] = done
    g_res[active] = np.abs(G) / scale
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        cond[active] = _EPS * scale / (u_a * dG)
    return u, iters, stopped, g_res, cond


def order_parameters_from_root(p: dict, u, moments):
    """Every order parameter from the root u and the pool moments at nu = c + u (numpy or mpmath).

    With K q_hat := kappa q_hat = lam kappa/u (lam > 0), tau - 1 (lam = 0, tau > 1), 0 otherwise:
    chi = A1/(kappa q_hat), chi_bar = g/(kappa q_hat), chi_hat = kappa (E/tau) q_hat^2. These forms
    stay finite at kappa = inf (q_hat = chi_hat = 0 there).
    """
    alpha, tau, kappa, rho, sigma, lam = (p[k] for k in ForwardParams.field_names())
    nu = (1 + sigma**2) / alpha + u
    order, parts = evaluate_explicit(u, moments, alpha, tau, kappa, rho, sigma, lam)
    vector = isinstance(nu, np.ndarray)
    if vector:
        with np.errstate(divide="ignore", invalid="ignore"):
            kqh = np.where(lam > 0, _lam_kappa(lam, kappa) / np.where(u > 0, u, 1.0), np.maximum(tau - 1, 0.0))
            pos = kqh > 0
            safe = np.where(pos, kqh, 1.0)
            q_hat = np.where(np.isinf(kappa), 0.0, kqh / kappa)
            chi_hat = np.where(pos & np.isfinite(order["f"]), order["f"] * kqh * q_hat, 0.0)
            chi = np.where(pos, order["m_bar"] / safe, np.inf)
            chi_bar = np.where(pos, moments.g / safe, np.inf)
    else:
        import mpmath
        kqh = lam * kappa / u if lam > 0 else max(tau - 1, 0)
        q_hat = kqh / kappa
        chi_hat = order["f"] * kqh * q_hat if (kqh > 0 and mpmath.isfinite(order["f"])) else mpmath.mpf(0)
        chi = order["m_bar"] / kqh if kqh > 0 else mpmath.inf
        chi_bar = moments.g / kqh if kqh > 0 else mpmath.inf
    s2a = (1 + sigma**2) / alpha
    sol = dict(q=order["q"], m=order["m"], chi=chi, q_bar=order["q_bar"], chi_bar=chi_bar, q_hat=q_hat,
               m_hat=q_hat, chi_hat=chi_hat, q_bar_hat=s2a * q_hat, chi_bar_hat=s2a * chi_hat,
               m_bar=order["m_bar"], q0=order["q0"], m0=order["m0"], nu=nu, training_error=order["E"])
    if vector:
        sol = {k: np.broadcast_to(v, np.shape(nu)) for k, v in sol.items()}
        parts = {k: {pn: np.broadcast_to(v, np.shape(nu)) for pn, v in d.items()} for k, d in parts.items()}
    return sol, parts


def _solve_reduced(params: ForwardParams, max_iter: int) -> ForwardSolution:
    p = {k: np.atleast_1d(v).astype(float) for k, v in params.broadcast().items()}
    u, iters, stopped, g_res, cond = _solve_u(p, max_iter)
    c = (1 + p["sigma"] ** 2) / p["alpha"]
    sol, parts = order_parameters_from_root(p, u, pool_moments(-(c + u), p["kappa"], p["rho"]))
    residual = np.maximum(published_residual(p, sol), g_res)
    finite = np.all([np.isfinite(sol[k]) | np.isposinf(sol[k]) for k in sol], axis=0)
    finite &= np.isfinite(residual)
    well_conditioned = ~(cond > CONDITION_LIMIT)
    converged = finite & (residual <= RESIDUAL_TOLERANCE) & well_conditioned
    reason = residual_reason(residual, RESIDUAL_TOLERANCE, finite, float64=True)
    for i in zip(*np.nonzero(~well_conditioned & (reason == ""))):
        reason[i] = (f"ill-conditioned in float64 (estimated relative error of the root {cond[i]:.1g} > "
                     f"{CONDITION_LIMIT:.0e}; lam = 0 with tau close to kappa): use precision=")
    return package(params, sol, parts, converged=converged, residual=residual, iters=iters, stopped=stopped,
                   reason=reason,
                   branch=branches(p["tau"], p["lam"]), method="reduced", tolerance=RESIDUAL_TOLERANCE)


__all__ = ["solve", "RESIDUAL_TOLERANCE", "CONDITION_LIMIT", "order_parameters_from_root"]
