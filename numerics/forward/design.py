r"""Pretraining design from the theory: the best context length, the best split of a token budget."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lowrank_icl.numerics._checks import check_real
from lowrank_icl.numerics.forward.crossover import PROTOCOL_NAMES, UnconvergedSolve, converged_errors
from lowrank_icl.numerics.results import ConvergenceReport


@dataclass(frozen=True)
class DesignOptimum(ConvergenceReport):
    """Optimal pretraining design: the minimizing alpha (and tau = budget/alpha) and the error there.

    Attributes
    ----------
    alpha, tau : float
        The optimal design.
    error : float
        The error there.
    at_boundary : bool
        The minimum sits at an end of the search range.
    converged : bool
        Every solve of the search converged and the bounded Brent search met its tolerance.
    residual : float
        Stationarity left at an interior optimum: abs(d e / d log alpha) / e by a central difference
        of step 1e-4 in log alpha (O(1e-8) from the difference itself at a true minimum); 0 at a
        boundary optimum, where the error still falls towards the end of the range. NaN on failure.
    iterations : int
        Brent iterations (0 at a boundary optimum, which the grid locates).
    reason : str
        "" when converged, else why not; ``message`` one line.
    parameters : dict
        The inputs.
    """

    alpha: float
    tau: float
    error: float
    at_boundary: bool
    converged: bool
    reason: str = ""
    residual: float = float("nan")
    iterations: int = 0
    parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The package's JSON layout: inputs under ``parameters``, ``version``, the optimum and the
        convergence words."""
        from lowrank_icl.numerics._json import json_document
        return json_document(self.parameters, {
            "alpha": self.alpha, "tau": self.tau, "error": self.error, "at_boundary": self.at_boundary,
            "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations})


def _minimize_log(fun, lo, hi, n_grid=241) -> dict:
    """Bracket the minimum of fun(exp(t)) on a log grid, then refine with bounded Brent.

    Returns the fields of a :class:`DesignOptimum` other than tau and parameters."""
    t = np.linspace(np.log(lo), np.log(hi), n_grid)
    vals = np.asarray(fun(np.exp(t)), dtype=float)
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = int(np.argmin(vals))
    if i in (0, n_grid - 1):
        return dict(alpha=float(np.exp(t[i])), error=float(vals[i]), at_boundary=True, converged=True, reason="",
                    residual=0.0, iterations=0)
    from scipy import optimize  # loaded on first use: scipy.optimize costs ~0.3 s at import

    res = optimize.minimize_scalar(lambda s: float(fun(np.exp(s))), bounds=(t[i - 1], t[i + 1]), method="bounded",
                                   options={"xatol": 1e-10})
    h = 1e-4
    e_plus, e_minus = (float(fun(np.exp(res.x + d))) for d in (h, -h))
    residual = abs(e_plus - e_minus) / (2 * h) / abs(float(res.fun))
    ok = bool(res.success)
    return dict(alpha=float(np.exp(res.x)), error=float(res.fun), at_boundary=False, converged=ok,
                reason="" if ok else f"bounded Brent search did not converge: {res.message}",
                residual=float(residual), iterations=int(res.nit))


def _failed(exc, tau, parameters) -> DesignOptimum:
    return DesignOptimum(np.nan, tau, np.nan, False, False, str(exc), parameters=parameters)


def optimal_context_length(*, tau, kappa, rho, sigma, lam=0.0, protocol: str = "idg",
                           alpha_range=(1e-2, 1e8)) -> DesignOptimum:
    """alpha minimizing e_protocol at fixed prompts tau, tasks kappa (grid bracket + bounded Brent).

    At lam = 0 the implicit ridge (1 + sigma^2)/alpha vanishes as alpha grows, so for kappa < rho the
    IDG error has an interior minimum; for kappa > rho it decreases to its alpha = infinity value
    (``at_boundary`` True, alpha = the range's upper end). kappa may be inf (lam = 0).
    If the solver fails anywhere on the search, the result has converged=False, NaN values and a reason.

    Parameters
    ----------
    tau, kappa, rho, sigma, lam : float
        The fixed model parameters (``kappa`` may be inf).
    protocol : {'idg', 'odg', 'tm'}
        The error minimized.
    alpha_range : tuple of float
        Search interval of alpha.

    Returns
    -------
    DesignOptimum
        alpha* = argmin over alpha of e_protocol(alpha, tau, kappa, rho, sigma, lam) and the error there.
    """
    if protocol not in PROTOCOL_NAMES:
        raise ValueError(f"protocol must be one of {PROTOCOL_NAMES} (got {protocol!r})")
    check_real("tau", tau, lower=0.0)
    check_real("kappa", kappa, lower=0.0, allow_inf=True)

    def err(a):
        return converged_errors(a, tau, kappa, rho, sigma, lam, protocol)

    parameters = dict(tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam, protocol=protocol,
                      alpha_range=list(alpha_range))
    try:
        found = _minimize_log(err, *alpha_range)
    except UnconvergedSolve as exc:
        return _failed(exc, float(tau), parameters)
    return DesignOptimum(tau=float(tau), parameters=parameters, **found)


def optimal_token_allocation(token_budget, *, kappa, rho, sigma, lam=0.0, protocol: str = "idg",
                             alpha_range=(1e-2, 1e6)) -> DesignOptimum:
    """Split a fixed token budget M L = B D^3 (B = tau alpha) between context length and prompts.

    Minimizes e_protocol(alpha, tau = B/alpha) over alpha. At lam = 0 the error is +inf at tau = 1
    (alpha = B), so each side of the interpolation threshold is searched separately. kappa may be
    inf (lam = 0). If the solver fails anywhere on the search, converged=False with a reason.

    Parameters
    ----------
    token_budget : float
        B = M L / D^3 = tau alpha.
    kappa, rho, sigma, lam : float
        The fixed model parameters.
    protocol : {'idg', 'odg', 'tm'}
        The error minimized.
    alpha_range : tuple of float
        Search interval of alpha.

    Returns
    -------
    DesignOptimum
        alpha* = argmin over alpha of e_protocol(alpha, B / alpha, ...), tau* = B / alpha*.
    """
    budget = float(check_real("token_budget", token_budget, lower=0.0))
    if protocol not in PROTOCOL_NAMES:
        raise ValueError(f"protocol must be one of {PROTOCOL_NAMES} (got {protocol!r})")
    check_real("kappa", kappa, lower=0.0, allow_inf=True)

    def err(a):
        return converged_errors(a, budget / a, kappa, rho, sigma, lam, protocol)

    parameters = dict(token_budget=budget, kappa=kappa, rho=rho, sigma=sigma, lam=lam, protocol=protocol,
                      alpha_range=list(alpha_range))
    lo, hi = alpha_range
    sides = [(lo, min(hi, budget * (1 - 1e-9)))] if lam == 0 else [(lo, hi)]
    if lam == 0 and hi > budget:
        sides.append((budget * (1 + 1e-9), hi))
    best = None
    for a_lo, a_hi in sides:
        if a_hi <= a_lo:
            continue
        try:
            found = _minimize_log(err, a_lo, a_hi)
        except UnconvergedSolve as exc:
            return _failed(exc, np.nan, parameters)
        if best is None or found["error"] < best.error:
            best = DesignOptimum(tau=budget / found["alpha"], parameters=parameters, **found)
    return best
