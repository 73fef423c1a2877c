r"""The forward saddle-point solver users call: :func:`solve`.

Default method ``"reduced"``: the published five-equation saddle point (docs/model.md) reduces to
one scalar equation in the explicit-ridge part u of the effective ridge nu = c + u,
c = (1 + sigma^2)/alpha (derivation in :mod:`lowrank_icl.theory.forward.saddle_point`):

    G(u) = tau - 1 + u g(-c - u) - lam kappa / u = 0,    G strictly increasing in u.

The root search, the order parameters, the conjugates, the published-equation residual, the
tolerance and the branch labels are those of the one solver core
(:mod:`lowrank_icl.numerics.forward.core`), for float64 and for ``precision=N`` (mpmath) alike.
This module supplies the rank-r pool to it: :class:`RankRPool`, whose moments are the closed,
cancellation-free forms of :func:`lowrank_icl.theory.forward.stieltjes.pool_moments`. A general
task spectrum (``spectrum=``) supplies its own pool (:mod:`lowrank_icl.numerics.forward.general`).

``method="damped"`` is the published damped iteration (:mod:`lowrank_icl.numerics.forward.damped`),
kept as a baseline.
"""
from __future__ import annotations

import numpy as np

from lowrank_icl.numerics._checks import check_int, check_real
from lowrank_icl.numerics.forward import core
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.results import ForwardSolution
from lowrank_icl.theory.forward.stieltjes import PoolMoments, pool_moments, pool_moments_mp, pool_root_moments

def solve(params=None, /, *, alpha=None, tau=None, kappa=None, rho=1.0, sigma=0.0, lam=0.0, method: str = "reduced",
          precision: int | None = None, max_iter: int | None = None, damping: float = 0.5,
          spectrum=None, time=None) -> ForwardSolution:
    r"""Solve the forward saddle point of low-rank linear-attention ICL.

    ``method="reduced"`` (default) solves G(u) = tau - 1 + u g(-c-u) - lam kappa/u = 0 and
    evaluates every order parameter explicitly; ``method="damped"`` runs the published damped
    fixed-point iteration (baseline: its own stop rule is ``stopped``, our residual test
    ``converged``). ``precision=N`` uses mpmath with N significant digits (reduced method; fields
    are mpmath numbers, object arrays for array input), evaluated in a local N-digit context.
    Both precisions and every task law run the one solver core (:mod:`lowrank_icl.numerics.forward.core`).

    float64 (the default) accepts the parameters inside :data:`ForwardParams.FLOAT64_RANGE` and
    refuses the rest with a ValueError that names the range; its errors are sums of nonnegative
    terms, accurate to ~1e-13 relative even where they vanish. A point float64 cannot resolve
    comes back with ``converged=False`` and a ``reason``: solve it again with ``precision=``.

    Parameters
    ----------
    params : ForwardParams, optional
        The six parameters as one object (the only positional argument); otherwise pass them by keyword.
    alpha, tau, kappa, rho, sigma, lam : float or array
        docs/model.md; all broadcast, keyword-only: alpha = L/D > 0, tau = M/D^2 > 0,
        kappa = M0/D > 0 or ``inf`` (a fresh task for every prompt; then lam must be 0),
        rho = r/D in (0, 1], sigma >= 0 the label-noise std, lam >= 0 the ridge (penalty
        lam M0 ||Gamma||_F^2).
    method : {"reduced", "damped"}
        The one-dimensional reduced equation (default) or the published damped iteration.
    precision : int, optional
        mpmath digits, 20 to 1000, for rank r and general spectra alike (reduced method); the
        residual tolerance is then 10^-(N-10) (1e-10 in float64).
    max_iter : int, optional
        Iteration cap (default 200 reduced, 1000 damped).
    damping : float
        Damping of the published iteration (method="damped").
    spectrum : TaskSpectrum, optional
        A general train/test task spectrum instead of rho
        (:mod:`lowrank_icl.numerics.forward.general`; "odg" is then the error on its test law).
    time : float or 1-D array, optional
        Training time(s) t >= 0 of gradient flow from zero (docs/learning_curves.md): returns a
        :class:`~lowrank_icl.numerics.forward.flow.FlowTheory` whose errors have a trailing time axis.
        None (default) is the end point t = infinity, this solver unchanged.

    Returns
    -------
    ForwardSolution
        The order parameters at each point (a
        :class:`~lowrank_icl.numerics.forward.general.SpectrumSolution` with ``spectrum=``); its
        ``errors(alpha_test, sigma_test)`` gives e_X = s2_t - 2 m_X + q_X + s2_t q_bar / alpha_t,
        s2_t = 1 + sigma_t^2, for X = TM, IDG, ODG.

    Examples
    --------
    >>> res = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1)
    >>> bool(res.converged), round(float(res.errors().idg), 6)
    (True, 1.647853)
    """
    if isinstance(params, ForwardParams):
        defaults = ((rho, 1.0), (sigma, 0.0), (lam, 0.0))
        if any(v is not None for v in (alpha, tau, kappa)) or any(np.ndim(v) or v != d for v, d in defaults):
            raise ValueError("pass either a ForwardParams or the parameters alpha, tau, kappa, rho, sigma, lam")
        alpha, tau, kappa, rho, sigma, lam = (getattr(params, k) for k in ForwardParams.field_names())
    elif params is not None:
        raise ValueError("solve takes the parameters by keyword (alpha=, tau=, kappa=, ...) or one ForwardParams "
                         f"(got a positional {type(params).__name__})")
    elif alpha is None or tau is None or kappa is None:
        raise ValueError("solve needs alpha, tau and kappa (or one ForwardParams)")
    if method not in ("reduced", "damped"):
        raise ValueError(f"method must be 'reduced' or 'damped' (got {method!r})")
    precision = core.check_precision(precision)
    if time is not None:  # learning curves of gradient flow (numerics.forward.flow)
        if method != "reduced" or precision is not None or spectrum is not None:
            raise ValueError("time= is available with method='reduced', float64 (no precision=) and no spectrum=")
        from lowrank_icl.numerics.forward.flow import flow_theory
        return flow_theory(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam, time=time)
    if spectrum is not None:  # general task covariance (numerics.forward.general)
        from lowrank_icl.numerics.forward.general import solve_spectrum
        if not (np.ndim(rho) == 0 and float(rho) == 1.0) or method != "reduced":
            raise ValueError("spectrum= replaces rho (leave rho at its default) and needs method='reduced'")
        return solve_spectrum(alpha, tau, kappa, sigma, lam, spectrum=spectrum, precision=precision,
                              max_iter=max_iter)
    params = params if isinstance(params, ForwardParams) else ForwardParams(
        alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    if method == "damped":
        if precision is not None:
            raise ValueError("precision= is available with method='reduced' only")
        params.check_float64_range()
        from lowrank_icl.numerics.forward.damped import solve_damped
        return solve_damped(params, max_iter=check_int("max_iter", max_iter or 1000, lower=1),
                            damping=check_real("damping", damping, lower=0.0, upper=1.0))
    if precision is None:
        params.check_float64_range()
    be = core.backend(precision)
    with be.context():
        pool = RankRPool(params, be)
    return core.solve_core(pool, be, check_int("max_iter", max_iter or 200, lower=1), params)


class RankRPool:
    r"""Moment provider of the rank-r pool for :func:`lowrank_icl.numerics.forward.core.solve_core`.

    ``moments(nu, sel)`` (``root_moments``: the subset g, dg, A1, B1 for the root search) are the closed forms of :func:`~lowrank_icl.theory.forward.stieltjes.pool_moments`
    (cancellation-free, kappa = inf included) at the points ``sel``; float64 arrays, or object arrays
    of mpmath numbers (one closed-form evaluation per point, :func:`pool_moments_mp`).
    ``finish`` names the parts of each test protocol: TM on pool tasks (misfit W = nu^2 B1), IDG on
    fresh tasks in span A (nu^2 g~'), ODG on isotropic tasks (nu^2 g'), all with mean 1.
    """

    def __init__(self, params: ForwardParams, be):
        self.be = be
        self.params = {k: be.array(np.ravel(v)) for k, v in params.broadcast().items()}
        p = self.params
        self.c = (1 + p["sigma"] ** 2) / p["alpha"]
        self.lk = core.lam_kappa(p["lam"], p["kappa"])

    def moments(self, nu, sel):
        kappa, rho = self.params["kappa"][sel], self.params["rho"][sel]
        if self.be.precision is None:
            return pool_moments(-nu, kappa, rho)
        rows = [pool_moments_mp(-v, k, r) for v, k, r in zip(nu, kappa, rho)]
        return PoolMoments(**{name: np.array([getattr(m, name) for m in rows] or [], dtype=object)
                              for name in PoolMoments.__dataclass_fields__})

    state_moments = moments

    def root_moments(self, nu, sel):
        if self.be.precision is None:
            return pool_root_moments(-nu, self.params["kappa"][sel], self.params["rho"][sel])
        return self.moments(nu, sel)

    def finish(self, sol, parts, order, mo, u):
        parts = dict(parts)
        parts["errors"] = {"tm": parts["q"], "idg": parts["q0"], "odg": parts["q_bar"]}
        return sol, parts, {}


__all__ = ["solve", "RankRPool"]
