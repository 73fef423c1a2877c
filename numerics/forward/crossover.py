r"""The kappa = rho transition as a curve users can compute (:func:`phase_boundary`), and the law of predictions.

Definition (documented in docs/phase_transition.md). At fixed (alpha, rho, tau, sigma, lam) let
f(x) = log e_IDG(kappa = e^x) and s(x) = f'(x) = d log e_IDG / d log kappa. For kappa < rho the
pool cannot span the task subspace and e_IDG grows like alpha (rho - kappa); for kappa > rho it is
O(1). At finite alpha the jump is a crossover: its **location** kappa* is the steepest point of
log e_IDG vs log kappa (the minimum of s, an inflection point of f: f''(x*) = 0), and its **width**
is the distance in log kappa between the two points where the slope is half its extreme value,
s(x) = s(x*)/2 (the full width at half depth of the slope dip).

Computation: the vectorized solver evaluates s on a log grid only to *bracket* the minimum (zooming
until the grid step is below 1/20 of the local width); brentq then solves f''(x) = 0 and
s(x) = s*/2. Derivatives are central differences of the solver, whose values are accurate to ~1e-15,
with a step h = 1e-3 x the bracket width (truncation ~1e-6 relative, rounding ~1e-12/h).

Scaling (derived in docs): at kappa = rho the pool is a square Wishart on span(A), whose density
diverges like s^{-1/2} at 0, so g~'(-c) ~ c^{-3/2} with c = (1 + sigma^2)/alpha and
e_IDG(kappa = rho) ~ alpha^{1/2}; balancing alpha (rho - kappa) against alpha^{1/2} gives
|kappa* - rho| and the width ~ alpha^{-1/2}. :func:`crossover_scaling` fits the exponent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from lowrank_icl.numerics._checks import check_real
from lowrank_icl.numerics.forward.solver import solve

_PROTOCOLS = ("idg", "odg", "tm")


@dataclass(frozen=True)
class PhaseBoundary:
    """Crossover location and width at each alpha (arrays over the alpha input).

    kappa_star: steepest point of log e vs log kappa; width: full width at half depth of the
    slope dip, in log kappa (natural log); kappa_lo, kappa_hi: its two ends; slope: the extreme
    slope d log e/d log kappa at kappa*; error_at_star: e at kappa*; converged: every root found;
    residual: |f''(x*)| w^2/|s*| (dimensionless curvature left at the reported point).
    """

    alpha: np.ndarray
    kappa_star: np.ndarray
    width: np.ndarray
    kappa_lo: np.ndarray
    kappa_hi: np.ndarray
    slope: np.ndarray
    error_at_star: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    protocol: str

    def to_dict(self) -> dict:
        return {"alpha": self.alpha.tolist(), "kappa_star": self.kappa_star.tolist(), "width": self.width.tolist(),
                "kappa_lo": self.kappa_lo.tolist(), "kappa_hi": self.kappa_hi.tolist(),
                "slope": self.slope.tolist(), "error_at_star": self.error_at_star.tolist(),
                "converged": self.converged.tolist(), "residual": self.residual.tolist(),
                "protocol": self.protocol}


def _log_error(x, alpha, tau, rho, sigma, lam, protocol):
    res = solve(alpha, tau, np.exp(x), rho, sigma, lam)
    return np.log(getattr(res.errors(), protocol))


def _one_boundary(alpha, tau, rho, sigma, lam, protocol):
    def f(x):
        return _log_error(np.asarray(x, float), alpha, tau, rho, sigma, lam, protocol)

    # 1. bracket the steepest point on zooming grids (the grid only brackets)
    lo, hi = np.log(rho) - 4.0, np.log(rho) + 4.0
    for _ in range(12):
        x = np.linspace(lo, hi, 401)
        s = np.gradient(f(x), x)
        i = int(np.argmin(s))
        i = min(max(i, 2), len(x) - 3)
        half = s[i] / 2
        left = np.nonzero(s[:i] > half)[0]
        right = np.nonzero(s[i:] > half)[0]
        width_est = (x[i + right[0]] if right.size else x[-1]) - (x[left[-1]] if left.size else x[0])
        step = x[1] - x[0]
        lo, hi = x[i - 2], x[i + 2]
        if step < width_est / 20:
            break
    h = 1e-3 * (hi - lo)

    def slope(xx):
        return (f(xx + h) - f(xx - h)) / (2 * h)

    def curvature(xx):
        return (f(xx + h) - 2 * f(xx) + f(xx - h)) / h**2

    ok = True
    try:
        x_star = optimize.brentq(curvature, lo, hi, xtol=1e-12 * max(1.0, abs(lo)), rtol=1e-12)
    except ValueError:  # no sign change: the minimum sits on a grid point within rounding
        x_star, ok = 0.5 * (lo + hi), False
    s_star = float(slope(x_star))

    def half_depth(xx):
        return slope(xx) - s_star / 2

    ends = []
    for direction in (-1.0, 1.0):
        step = max(width_est, 4 * h)
        far = x_star + direction * step
        n = 0
        while half_depth(far) < 0 and n < 60:
            step *= 1.6
            far = x_star + direction * step
            n += 1
        a, b = sorted((x_star + direction * 2 * h, far))
        try:
            ends.append(optimize.brentq(half_depth, a, b, xtol=1e-12, rtol=1e-12))
        except ValueError:
            ends.append(np.nan)
            ok = False
    width = ends[1] - ends[0]
    residual = abs(curvature(x_star)) * width**2 / abs(s_star) if np.isfinite(width) else np.inf
    return (np.exp(x_star), width, np.exp(ends[0]), np.exp(ends[1]), s_star, float(np.exp(f(x_star))),
            ok and residual < 1e-3, residual)


def phase_boundary(alpha, rho, tau, sigma=0.0, lam=0.0, *, protocol: str = "idg") -> PhaseBoundary:
    r"""Location kappa* and width of the kappa = rho crossover at each alpha (see module docstring).

    Parameters: alpha > 0 (scalar or 1-D array), 0 < rho <= 1, tau > 1 at lam = 0 (any tau > 0 if
    lam > 0), sigma >= 0, lam >= 0; protocol "idg" (default), "odg" or "tm".
    As alpha -> infinity (lam = 0, tau > 1, sigma > 0), kappa* -> rho and width -> 0 like alpha^{-1/2}.
    """
    alphas = np.atleast_1d(check_real("alpha", alpha, lower=0.0)).astype(float)
    rho = float(check_real("rho", rho, lower=0.0, upper=1.0))
    tau = float(check_real("tau", tau, lower=0.0))
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS} (got {protocol!r})")
    if lam == 0 and tau <= 1:
        raise ValueError("tau must be > 1 when lam = 0 (below the interpolation threshold the "
                         "ridgeless error has no kappa = rho transition to locate)")
    rows = [_one_boundary(a, tau, rho, sigma, lam, protocol) for a in alphas]
    cols = [np.array(c) for c in zip(*rows)]
    return PhaseBoundary(alphas, *cols[:6], cols[6].astype(bool), cols[7], protocol)


@dataclass(frozen=True)
class ScalingFit:
    """Power law y = A alpha^{-exponent} fitted by least squares in log-log, with a 95% interval."""

    exponent: float
    ci_low: float
    ci_high: float
    prefactor: float

    def __str__(self):
        return f"{self.exponent:.3f} [95% CI {self.ci_low:.3f}, {self.ci_high:.3f}]"


def fit_power_law(alpha, y) -> ScalingFit:
    """Fit log y = log A - exponent log alpha; CI from the t distribution of the slope."""
    lx, ly = np.log(np.asarray(alpha, float)), np.log(np.asarray(y, float))
    if lx.size < 3:
        raise ValueError("fit_power_law needs at least 3 points")
    fit = stats.linregress(lx, ly)
    t = stats.t.ppf(0.975, lx.size - 2)
    return ScalingFit(-fit.slope, -fit.slope - t * fit.stderr, -fit.slope + t * fit.stderr, float(np.exp(fit.intercept)))


def crossover_scaling(alphas, rho, tau, sigma, lam=0.0, protocol: str = "idg"):
    """phase_boundary at each alpha plus power-law fits of the width and of |kappa* - rho|."""
    pb = phase_boundary(alphas, rho, tau, sigma, lam, protocol=protocol)
    return pb, fit_power_law(pb.alpha, pb.width), fit_power_law(pb.alpha, np.abs(pb.kappa_star - rho))


@dataclass(frozen=True)
class PredictionLaw:
    r"""Joint Gaussian law of (y, yhat) over test prompts for one protocol (D -> infinity).

    Var y = 1 + sigma_t^2, Cov(y, yhat) = m_X, Var yhat = q_X + (1 + sigma_t^2) q_bar/alpha_t, split
    into the signal, noise_T and noise_R parts of q_X and the finite-context part
    (1 + sigma_t^2) q_bar/alpha_t. Consistency: Var y - 2 Cov + Var yhat = e_X.
    """

    var_y: np.ndarray
    cov: np.ndarray
    var_yhat: np.ndarray
    signal: np.ndarray
    noise_T: np.ndarray
    noise_R: np.ndarray
    finite_context: np.ndarray

    @property
    def correlation(self):
        return self.cov / np.sqrt(self.var_y * self.var_yhat)

    @property
    def error(self):
        """E (y - yhat)^2 = Var y - 2 Cov + Var yhat."""
        return self.var_y - 2 * self.cov + self.var_yhat

    def covariance_matrix(self):
        """2 x 2 covariance of (y, yhat) (scalar inputs)."""
        return np.array([[self.var_y, self.cov], [self.cov, self.var_yhat]], dtype=float)


def prediction_law(result, protocol: str = "idg", alpha_test=None, sigma_test=None) -> PredictionLaw:
    """The law of (y, yhat) under protocol "tm", "idg" or "odg" from a solved saddle point."""
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS} (got {protocol!r})")
    a_t = result.params.alpha if alpha_test is None else check_real("alpha_test", alpha_test, lower=0.0)
    s_t = result.params.sigma if sigma_test is None else check_real(
        "sigma_test", sigma_test, lower=0.0, lower_inclusive=True)
    dec = result.decomposition()
    overlap, split = {"tm": (result.m, dec.q), "idg": (result.m0, dec.q0), "odg": (result.m_bar, dec.q_bar)}[protocol]
    finite_context = (1 + s_t**2) * result.q_bar / a_t
    var_yhat = split.signal + split.noise_T + split.noise_R + finite_context
    return PredictionLaw(var_y=1 + s_t**2 + 0 * var_yhat, cov=overlap + 0 * var_yhat, var_yhat=var_yhat,
                         signal=split.signal, noise_T=split.noise_T, noise_R=split.noise_R,
                         finite_context=finite_context)


@dataclass(frozen=True)
class DesignOptimum:
    """Optimal pretraining design: the minimizing alpha (and tau = budget/alpha) and the error there."""

    alpha: float
    tau: float
    error: float
    at_boundary: bool
    converged: bool


def _minimize_log(fun, lo, hi, n_grid=241):
    """Bracket the minimum of fun(exp(t)) on a log grid, then refine with bounded Brent."""
    t = np.linspace(np.log(lo), np.log(hi), n_grid)
    vals = np.asarray(fun(np.exp(t)), dtype=float)
    vals = np.where(np.isfinite(vals), vals, np.inf)
    i = int(np.argmin(vals))
    if i in (0, n_grid - 1):
        return float(np.exp(t[i])), float(vals[i]), True, True
    res = optimize.minimize_scalar(lambda s: float(fun(np.exp(s))), bounds=(t[i - 1], t[i + 1]), method="bounded",
                                   options={"xatol": 1e-10})
    return float(np.exp(res.x)), float(res.fun), False, bool(res.success)


def optimal_context_length(tau, kappa, rho, sigma, lam=0.0, protocol: str = "idg",
                           alpha_range=(1e-2, 1e8)) -> DesignOptimum:
    """alpha minimizing e_protocol at fixed prompts tau, tasks kappa (grid bracket + bounded Brent).

    At lam = 0 the implicit ridge (1 + sigma^2)/alpha vanishes as alpha grows, so for kappa < rho the
    IDG error has an interior minimum; for kappa > rho it decreases to its alpha = infinity value
    (``at_boundary`` True, alpha = the range's upper end).
    """
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS} (got {protocol!r})")
    check_real("tau", tau, lower=0.0)
    check_real("kappa", kappa, lower=0.0)

    def err(a):
        return getattr(solve(a, tau, kappa, rho, sigma, lam).errors(), protocol)

    a, e, edge, ok = _minimize_log(err, *alpha_range)
    return DesignOptimum(a, float(tau), e, edge, ok)


def optimal_token_allocation(token_budget, kappa, rho, sigma, lam=0.0, protocol: str = "idg",
                             alpha_range=(1e-2, 1e6)) -> DesignOptimum:
    """Split a fixed token budget M L = B D^3 (B = tau alpha) between context length and prompts.

    Minimizes e_protocol(alpha, tau = B/alpha) over alpha. At lam = 0 the error is +inf at tau = 1
    (alpha = B), so each side of the interpolation threshold is searched separately.
    """
    budget = float(check_real("token_budget", token_budget, lower=0.0))
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS} (got {protocol!r})")

    def err(a):
        return getattr(solve(a, budget / a, kappa, rho, sigma, lam).errors(), protocol)

    lo, hi = alpha_range
    sides = [(lo, min(hi, budget * (1 - 1e-9)))] if lam == 0 else [(lo, hi)]
    if lam == 0 and hi > budget:
        sides.append((budget * (1 + 1e-9), hi))
    best = None
    for a_lo, a_hi in sides:
        if a_hi <= a_lo:
            continue
        a, e, edge, ok = _minimize_log(err, a_lo, a_hi)
        if best is None or e < best.error:
            best = DesignOptimum(a, budget / a, e, edge, ok)
    return best
