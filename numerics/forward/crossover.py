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

from lowrank_icl.numerics._checks import check_real
from lowrank_icl.numerics.forward.solver import solve
from lowrank_icl.numerics.power_law import log_log_fit
from lowrank_icl.numerics.results import ConvergenceReport

PROTOCOL_NAMES = ("idg", "odg", "tm")


class UnconvergedSolve(ArithmeticError):
    """A point the forward solver did not certify (converged=False): callers stop, never use it."""


def converged_errors(alpha, tau, kappa, rho, sigma, lam, protocol):
    """e_protocol from :func:`solve`, or UnconvergedSolve if any point failed its residual test."""
    res = solve(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    if not np.all(res.converged):
        bad = np.flatnonzero(~np.atleast_1d(res.converged))[0]
        raise UnconvergedSolve(f"solve did not converge: {np.atleast_1d(res.reason)[bad]}")
    return getattr(res.errors(), protocol)


@dataclass(frozen=True)
class PhaseBoundary(ConvergenceReport):
    """Crossover location and width at each alpha (arrays over the alpha input).

    kappa_star: steepest point of log e vs log kappa; width: full width at half depth of the
    slope dip, in log kappa (natural log); kappa_lo, kappa_hi: its two ends; slope: the extreme
    slope d log e/d log kappa at kappa*; error_at_star: e at kappa*; converged: a crossover exists and every root was found;
    residual: abs(f''(x*)) w^2 / abs(s*) (dimensionless curvature left at the reported point);
    reason: "" or why a point failed. Fields are scalars for scalar alpha, arrays for array alpha.

    Attributes
    ----------
    alpha : ndarray
        The alpha values.
    kappa_star, width, kappa_lo, kappa_hi, slope, error_at_star : ndarray
        The crossover (above).
    converged, residual, reason : ndarray
        Diagnostics (above); ``message`` one line over all alphas.
    iterations : ndarray of int
        Grid zooms plus Brent iterations spent at each alpha.
    protocol : str
        'idg', 'odg' or 'tm'.
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
    reason: np.ndarray = None
    parameters: dict = None
    iterations: np.ndarray = None

    _message_unit = "alphas"

    _FIELDS = ("kappa_star", "width", "kappa_lo", "kappa_hi", "slope", "error_at_star", "converged",
               "residual", "reason", "message", "iterations")

    def to_dict(self) -> dict:
        """The package's JSON layout (:func:`lowrank_icl.numerics._json.json_document`): the inputs
        (alpha included) under ``"parameters"``, ``"version"``, then each field as a list (a scalar
        for scalar alpha); NaN becomes null."""
        from lowrank_icl.numerics._json import json_document
        parameters = dict(self.parameters or {})
        parameters.setdefault("alpha", self.alpha)
        parameters.setdefault("protocol", self.protocol)
        return json_document(parameters, {k: getattr(self, k) for k in self._FIELDS})

    def __repr__(self):
        a = np.atleast_1d(self.alpha)
        conv = np.atleast_1d(self.converged)
        if a.size == 1:
            return (f"PhaseBoundary(protocol={self.protocol!r}, alpha={a[0]:.6g})\n"
                    f"  kappa*={float(self.kappa_star):.10g}, width={float(self.width):.6g} (log kappa), "
                    f"slope={float(self.slope):.6g}\n  converged={bool(self.converged)}, residual={float(self.residual):.2g}")
        return (f"PhaseBoundary(protocol={self.protocol!r}, {a.size} alphas from {a.min():.3g} to {a.max():.3g})\n"
                f"  kappa* from {np.nanmin(self.kappa_star):.6g} to {np.nanmax(self.kappa_star):.6g}\n"
                f"  converged {int(conv.sum())}/{conv.size}")


# A crossover needs the error to fall by at least this much per e-fold of kappa at its steepest
# point (d log e / d log kappa <= -MIN_CROSSOVER_SLOPE); a shallower dip is no transition.
MIN_CROSSOVER_SLOPE = 0.1
# The steepest point is searched on [rho e^-WINDOW, rho e^WINDOW].
WINDOW = 4.0


class NoBoundary(ArithmeticError):
    """No crossover at this point, or one the root finders could not certify (the message says why)."""


def _one_boundary(alpha, tau, rho, sigma, lam, protocol):
    """(kappa*, width, kappa_lo, kappa_hi, slope, e*, converged, residual, reason); NaN values with a
    reason when the point has no certified crossover."""
    counter = [0]
    try:
        with np.errstate(all="ignore"):   # non-finite intermediate values are caught below, with a reason
            *values, residual = _boundary_point(alpha, tau, rho, sigma, lam, protocol, counter)
        return (*values, True, residual, "", counter[0])
    except (UnconvergedSolve, NoBoundary) as exc:
        return (np.nan,) * 6 + (False, np.inf, str(exc), counter[0])


def _boundary_point(alpha, tau, rho, sigma, lam, protocol, counter):
    """The crossover at one alpha; ``counter[0]`` accumulates the grid zooms and Brent iterations."""
    from scipy import optimize  # scipy.optimize costs ~0.3 s: loaded on first use

    def f(x):
        return np.log(converged_errors(alpha, tau, np.exp(np.asarray(x, float)), rho, sigma, lam, protocol))

    # 1. bracket the steepest point on zooming grids (the grid only brackets)
    lo, hi = np.log(rho) - WINDOW, np.log(rho) + WINDOW
    for zoom in range(12):
        counter[0] += 1
        x = np.linspace(lo, hi, 401)
        s = np.gradient(f(x), x)
        if not np.all(np.isfinite(s)):
            raise NoBoundary(f"log e_{protocol} is not finite on kappa in [{np.exp(lo):.3g}, {np.exp(hi):.3g}]")
        i = int(np.argmin(s))
        if zoom == 0 and s[i] > -MIN_CROSSOVER_SLOPE:
            raise NoBoundary(
                f"no crossover: the steepest slope d log e_{protocol}/d log kappa on kappa in "
                f"[{np.exp(lo):.3g}, {np.exp(hi):.3g}] is {s[i]:.3g}, and a crossover needs <= "
                f"-{MIN_CROSSOVER_SLOPE:g} (e_{protocol} hardly depends on kappa at alpha = {alpha:g})")
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

    try:
        x_star, info = optimize.brentq(curvature, lo, hi, xtol=1e-12 * max(1.0, abs(lo)), rtol=1e-12,
                                       full_output=True)
        counter[0] += info.iterations
    except ValueError:
        raise NoBoundary(f"the curvature of log e_{protocol} has no sign change around kappa = "
                         f"{np.exp(0.5 * (lo + hi)):.6g}: the steepest point is not an inflection "
                         "resolved in float64") from None
    s_star = float(slope(x_star))

    def half_depth(xx):
        return slope(xx) - s_star / 2

    ends = []
    for direction, side in ((-1.0, "below"), (1.0, "above")):
        step = max(width_est, 4 * h)
        far = x_star + direction * step
        n = 0
        while half_depth(far) < 0 and n < 60:
            step *= 1.6
            far = x_star + direction * step
            n += 1
        a, b = sorted((x_star + direction * 2 * h, far))
        try:
            end, info = optimize.brentq(half_depth, a, b, xtol=1e-12, rtol=1e-12, full_output=True)
            ends.append(end)
            counter[0] += info.iterations
        except ValueError:
            raise NoBoundary(f"the slope of log e_{protocol} does not come back to half its extreme "
                             f"({s_star:.3g}) {side} kappa* = {np.exp(x_star):.6g}") from None
    width = ends[1] - ends[0]
    residual = abs(curvature(x_star)) * width**2 / abs(s_star)
    if not (np.isfinite(residual) and residual < 1e-3):
        raise NoBoundary(f"the curvature left at kappa* = {np.exp(x_star):.6g} is {residual:.2g} "
                         "(|f''| w^2/|s*|; needs < 1e-3)")
    return (np.exp(x_star), width, np.exp(ends[0]), np.exp(ends[1]), s_star, float(np.exp(f(x_star))), residual)


def phase_boundary(*, alpha, tau, rho, sigma=0.1, lam=0.0, protocol: str = "idg") -> PhaseBoundary:
    r"""Location kappa* and width of the kappa = rho crossover at each alpha (see module docstring).

    Keyword-only parameters: alpha > 0 (scalar or 1-D array), tau > 1 at lam = 0 (any tau > 0 if
    lam > 0), 0 < rho <= 1, sigma >= 0 (default 0.1, as on the CLI), lam >= 0; protocol "idg"
    (default), "odg" or "tm". Scalar alpha gives scalar fields.
    As alpha -> infinity (lam = 0, tau > 1, sigma > 0), kappa* -> rho and width -> 0 like alpha^{-1/2}.
    A point without a certified crossover is returned with converged=False, NaN values and a
    reason: the solver did not converge there; the error hardly depends on kappa (its steepest slope
    d log e/d log kappa on [rho e^-4, rho e^4] is above -:data:`MIN_CROSSOVER_SLOPE`, e.g. at small
    alpha); or a root of the location or width could not be resolved.
    Raises ValueError for an empty or repeated alpha and the ranges above.

    Parameters
    ----------
    alpha : float or array_like
        Context ratios (> 0, scalar or 1-D).
    tau : float
        Prompts ratio M / D^2.
    rho : float
        Task rank ratio.
    sigma : float
        Label-noise standard deviation.
    lam : float
        Ridge strength.
    protocol : {'idg', 'odg', 'tm'}
        The error whose crossover in kappa is located.

    Returns
    -------
    PhaseBoundary
        kappa* = argmax over kappa of abs(d log e / d log kappa) and the full width at half depth of that
        slope, in log kappa.
    """
    scalar = np.ndim(alpha) == 0
    alphas = np.atleast_1d(check_real("alpha", alpha, lower=0.0)).astype(float)
    if alphas.ndim != 1 or alphas.size == 0:
        raise ValueError(f"alpha must be a number or a non-empty 1-D list of numbers (got shape {np.shape(alpha)})")
    if np.unique(alphas).size != alphas.size:
        raise ValueError(f"alpha must not repeat a value (got {alphas.tolist()})")
    rho = float(check_real("rho", rho, lower=0.0, upper=1.0))
    tau = float(check_real("tau", tau, lower=0.0))
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    if protocol not in PROTOCOL_NAMES:
        raise ValueError(f"protocol must be one of {PROTOCOL_NAMES} (got {protocol!r})")
    if lam == 0 and tau <= 1:
        raise ValueError("tau must be > 1 when lam = 0 (below the interpolation threshold the "
                         "ridgeless error has no kappa = rho transition to locate)")
    rows = [_one_boundary(a, tau, rho, sigma, lam, protocol) for a in alphas]
    cols = [np.array(c, dtype=object) for c in zip(*rows)]
    cols = [alphas, *(c.astype(float) for c in cols[:6]), cols[6].astype(bool), cols[7].astype(float),
            cols[8], cols[9].astype(int)]
    if scalar:
        cols = [c[0] for c in cols]
    parameters = {"alpha": alphas[0] if scalar else alphas, "tau": tau, "rho": rho, "sigma": sigma, "lam": lam,
                  "protocol": protocol}
    return PhaseBoundary(*cols[:9], protocol=protocol, reason=cols[9], parameters=parameters, iterations=cols[10])


@dataclass(frozen=True)
class ScalingFit:
    """Power law y = A alpha^{-exponent} fitted by least squares in log-log, with a 95% interval.

    Attributes
    ----------
    exponent : float
        p in y = A alpha^{-p}.
    ci_low, ci_high : float
        Its 95 % interval.
    prefactor : float
        A.
    """

    exponent: float
    ci_low: float
    ci_high: float
    prefactor: float

    def __str__(self):
        return f"{self.exponent:.3f} [95% CI {self.ci_low:.3f}, {self.ci_high:.3f}]"


def fit_power_law(alpha, y) -> ScalingFit:
    """Fit log y = log A - exponent log alpha; CI from the t distribution of the slope.

    Parameters
    ----------
    alpha, y : array_like
        Positive values (at least three points).

    Returns
    -------
    ScalingFit
        y = A alpha^{-exponent} by least squares of log y on log alpha, with the 95 % interval of the
        exponent from the t distribution (n - 2 degrees of freedom).
    """
    if np.asarray(alpha).size < 3:
        raise ValueError("fit_power_law needs at least 3 points")
    fit = log_log_fit(alpha, y)
    return ScalingFit(-fit.exponent, -fit.exponent_ci[1], -fit.exponent_ci[0], fit.prefactor)


def crossover_scaling(*, alpha, tau, rho, sigma=0.1, lam=0.0, protocol: str = "idg"):
    """phase_boundary at each alpha plus power-law fits of the width and of abs(kappa* - rho).

    Raises ValueError if a boundary point did not converge (a fit through it would be meaningless).

    Parameters
    ----------
    alpha : array_like
        Context ratios (at least three).
    tau, rho, sigma, lam : float
        As in :func:`phase_boundary`.
    protocol : {'idg', 'odg', 'tm'}
        The error.

    Returns
    -------
    boundary : PhaseBoundary
        The crossover at each alpha.
    width_fit, location_fit : ScalingFit
        Power laws width ~ A alpha^{-p} and abs(kappa* - rho) ~ A alpha^{-p}.
    """
    pb = phase_boundary(alpha=np.atleast_1d(alpha), tau=tau, rho=rho, sigma=sigma, lam=lam, protocol=protocol)
    if not np.all(pb.converged):
        raise ValueError(f"phase_boundary failed at alpha = {pb.alpha[~pb.converged][0]:g}: "
                         f"{pb.reason[~pb.converged][0]}")
    return pb, fit_power_law(pb.alpha, pb.width), fit_power_law(pb.alpha, np.abs(pb.kappa_star - rho))


