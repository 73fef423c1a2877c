r"""The forward saddle-point solver users call: :func:`solve`.

Default method ``"reduced"``: the published five-equation saddle point (forward spec, section 4)
reduces to one scalar equation in the explicit-ridge part u of the effective ridge nu = c + u,
c = (1 + sigma^2)/alpha (derivation in :mod:`lowrank_icl.theory.forward.saddle_point`):

    G(u) = tau - 1 + u g(-c - u) - lam kappa / u = 0,    G strictly increasing in u.

It is solved by Newton's method in log u inside a bracket that is proved valid (see
:func:`_bracket`), falling back to bisection whenever a Newton step leaves the bracket, so every
point converges. All order parameters then follow explicitly. The residual reported is the max
relative residual of the *published* equations evaluated at the returned point.

Method ``"damped"`` is the published damped fixed-point iteration, kept as a baseline.
``precision=N`` runs the reduced method in mpmath with N significant digits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np

from lowrank_icl.numerics._checks import check_int, check_real
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.theory.forward.saddle_point import (asymptotic_error, evaluate_explicit,
                                             numeric_published_map)
from lowrank_icl.theory.forward.stieltjes import (pool_moments, pool_moments_mp, pool_transforms,
                                          pool_transforms_mp, published_g, published_g_derivative)

ORDER_PARAMETERS = ("q", "m", "chi", "q_bar", "chi_bar", "q_hat", "m_hat", "chi_hat", "q_bar_hat",
                    "chi_bar_hat", "m_bar", "q0", "m0", "nu")

# Branch labels (``result.branch``).
RIDGE = "ridge"                          # lam > 0
RIDGELESS_UNDER = "ridgeless tau>1"      # lam = 0, more prompts than weights: u = 0
RIDGELESS_OVER = "ridgeless tau<1"       # lam = 0, fewer prompts than weights: min-norm interpolator
THRESHOLD = "interpolation threshold"    # lam = 0, tau = 1: errors are +inf

_RESIDUAL_TOL = 1e-10


@dataclass(frozen=True)
class ForwardErrors:
    """Asymptotic test errors (squared label units): task memorization, in- and out-of-distribution."""

    tm: np.ndarray | float
    idg: np.ndarray | float
    odg: np.ndarray | float

    def to_dict(self) -> dict:
        return {"tm": _jsonable(self.tm), "idg": _jsonable(self.idg), "odg": _jsonable(self.odg)}


@dataclass(frozen=True)
class PartSplit:
    """Three additive parts of a second moment: signal (mean weights) and two noise parts.

    noise_T comes from the finite number of pretraining prompts (chi_hat), noise_R from the
    finite contexts of the training prompts (chi_bar_hat); both vanish as tau -> infinity.
    """

    signal: np.ndarray | float
    noise_T: np.ndarray | float
    noise_R: np.ndarray | float

    @property
    def total(self):
        return self.signal + self.noise_T + self.noise_R


@dataclass(frozen=True)
class Decomposition:
    """Signal / noise-T / noise-R split of q (pool tasks), q_bar (isotropic) and q0 (subspace)."""

    q: PartSplit
    q_bar: PartSplit
    q0: PartSplit


@dataclass(frozen=True)
class ForwardSolution:
    r"""Solution of the forward saddle point at each parameter point (arrays broadcast).

    Order parameters (forward spec, sections 2 and 4): q, m (pool tasks), q_bar, m_bar
    (isotropic), q0, m0 (task subspace), the susceptibilities chi, chi_bar, the conjugates
    q_hat, m_hat, chi_hat, q_bar_hat, chi_bar_hat, and the effective ridge nu = -z =
    (1 + sigma^2)/alpha + u (implicit part from finite contexts plus explicit part u).
    ``training_error`` is E = s2 - 2m + q + s2 q_bar/alpha. ``converged`` is True where the
    published equations hold to ``residual`` <= 1e-10 (relative).
    At lam = 0, tau < 1 the conjugates vanish and chi, chi_bar are +inf (ridgeless interpolation);
    at lam = 0, tau = 1 the errors are +inf (``branch == "interpolation threshold"``).
    """

    params: ForwardParams
    q: np.ndarray
    m: np.ndarray
    chi: np.ndarray
    q_bar: np.ndarray
    chi_bar: np.ndarray
    q_hat: np.ndarray
    m_hat: np.ndarray
    chi_hat: np.ndarray
    q_bar_hat: np.ndarray
    chi_bar_hat: np.ndarray
    m_bar: np.ndarray
    q0: np.ndarray
    m0: np.ndarray
    nu: np.ndarray
    training_error: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray
    branch: np.ndarray
    method: str = "reduced"
    _parts: dict = field(default=None, repr=False, compare=False)

    def errors(self, alpha_test=None, sigma_test=None) -> ForwardErrors:
        """TM, IDG and ODG errors at test context ratio alpha_test = L~/D and test noise std sigma_test.

        e_X = sigma_t^2 + 1 - 2 m_X + q_X + (1 + sigma_t^2) q_bar / alpha_t with (m_X, q_X) =
        (m, q), (m0, q0), (m_bar, q_bar). Defaults: the training alpha and sigma. Broadcasts.
        """
        a_t = self.params.alpha if alpha_test is None else check_real("alpha_test", alpha_test, lower=0.0)
        s_t = self.params.sigma if sigma_test is None else check_real(
            "sigma_test", sigma_test, lower=0.0, lower_inclusive=True)
        if _is_mp(self.q):  # keep precision= results exact: no float64 arithmetic on the test values
            a_t, s_t = _to_mp(a_t), _to_mp(s_t)
        with np.errstate(invalid="ignore"):
            return ForwardErrors(
                tm=_unwrap(asymptotic_error(self.m, self.q, self.q_bar, a_t, s_t)),
                idg=_unwrap(asymptotic_error(self.m0, self.q0, self.q_bar, a_t, s_t)),
                odg=_unwrap(asymptotic_error(self.m_bar, self.q_bar, self.q_bar, a_t, s_t)))

    def decomposition(self) -> Decomposition:
        """Signal / noise-T / noise-R parts of q, q_bar and q0 (they sum to the totals)."""
        return Decomposition(**{k: PartSplit(**{p: _unwrap(v) for p, v in d.items()})
                                for k, d in self._parts.items()})

    @property
    def effective_ridge(self):
        """nu = -z, the ridge the mean weights see: (1 + sigma^2)/alpha + explicit part."""
        return self.nu

    @property
    def implicit_ridge(self):
        """(1 + sigma^2)/alpha: the part of nu present even at lam = 0 (finite contexts)."""
        return (1 + self.params.sigma**2) / self.params.alpha

    def order_parameters(self) -> dict:
        """The order parameters as a dict keyed like the CLI JSON."""
        return {k: getattr(self, k) for k in ORDER_PARAMETERS}

    def to_dict(self, alpha_test=None, sigma_test=None) -> dict:
        """JSON-ready dict: order_parameters, errors, converged, residual (the CLI contract)."""
        return {"order_parameters": {k: _jsonable(v) for k, v in self.order_parameters().items()},
                "errors": self.errors(alpha_test, sigma_test).to_dict(),
                "converged": _jsonable(self.converged), "residual": _jsonable(self.residual),
                "branch": _jsonable(self.branch), "method": self.method}


def solve(alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, *, method: str = "reduced",
          precision: int | None = None, max_iter: int | None = None, damping: float = 0.5,
          spectrum=None) -> ForwardSolution:
    r"""Solve the forward saddle point of low-rank linear-attention ICL.

    Parameters (forward spec, section 1; all broadcast): alpha = L/D > 0, tau = M/D^2 > 0,
    kappa = M0/D > 0, rho = r/D in (0, 1], sigma >= 0 the label-noise std, lam >= 0 the ridge
    (penalty lam M0 ||Gamma||_F^2).

    ``method="reduced"`` (default) solves G(u) = tau - 1 + u g(-c-u) - lam kappa/u = 0 and
    evaluates every order parameter explicitly; ``method="damped"`` runs the published damped
    fixed-point iteration (baseline, may fail). ``precision=N`` uses mpmath with N digits
    (reduced method; fields are mpmath numbers, object arrays for array input).

    Returns a :class:`ForwardSolution`; ``result.errors(alpha_test, sigma_test)`` gives TM/IDG/ODG.
    ``spectrum=TaskSpectrum(...)`` replaces rho by a general train/test task spectrum
    (:mod:`lowrank_icl.numerics.forward.general`; "odg" is then the error on its test law).

    >>> res = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1)
    >>> bool(res.converged), round(float(res.errors().idg), 6)
    (True, 1.647853)
    """
    if spectrum is not None:  # general task covariance (numerics.forward.general)
        from lowrank_icl.numerics.forward.general import solve_spectrum
        if not (np.ndim(rho) == 0 and float(rho) == 1.0) or method != "reduced":
            raise ValueError("spectrum= replaces rho (leave rho at its default) and needs method='reduced'")
        return solve_spectrum(alpha, tau, kappa, sigma, lam, spectrum=spectrum, precision=precision,
                              max_iter=max_iter)
    params = ForwardParams(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    if method not in ("reduced", "damped"):
        raise ValueError(f"method must be 'reduced' or 'damped' (got {method!r})")
    if precision is not None:
        precision = check_int("precision", precision, lower=15, upper=10_000)
        if method != "reduced":
            raise ValueError("precision= is available with method='reduced' only")
        return _solve_mp(params, precision)
    if method == "damped":
        return _solve_damped(params, max_iter=check_int("max_iter", max_iter or 1000, lower=1),
                             damping=check_real("damping", damping, lower=0.0, upper=1.0))
    return _solve_reduced(params, max_iter=check_int("max_iter", max_iter or 200, lower=1))


# ----------------------------------------------------------------------------------------------
# reduced method, float64, vectorized

def _bracket(tau, kappa, c, lam):
    """A bracket [lo, hi] with G(lo) <= 0 <= G(hi), from 0 <= u g(-c-u) <= min(1, u/(c+u)) and
    Jensen, u g >= u/(1 + c + u) (the pool spectrum has mean exactly 1)."""
    lk = lam * kappa
    lo = np.maximum(lk / tau, np.where(tau < 1, c * (1 - tau) / tau, 0.0))
    hi = 2.0 * (1.0 + c + lk) / tau
    with np.errstate(divide="ignore"):
        hi = np.where(tau > 1, np.minimum(hi, lk / np.where(tau > 1, tau - 1, 1.0)), hi)
    return lo, hi


def _g_equation(u, c, tau, kappa, rho, lam):
    """G(u) and dG/du (= g - u g' + lam kappa/u^2 > 0)."""
    tr = pool_transforms(-(c + u), kappa, rho)
    lk = lam * kappa
    return tau - 1 + u * tr.g - lk / u, tr.g - u * tr.dg + lk / u**2, tr


def _solve_u(p: dict, max_iter: int):
    """Vectorized safeguarded Newton in t = log u; returns u, iterations, |G| scaled residual."""
    tau, kappa, rho, lam = p["tau"], p["kappa"], p["rho"], p["lam"]
    c = (1 + p["sigma"] ** 2) / p["alpha"]
    u = np.zeros_like(tau)
    iters = np.zeros(tau.shape, dtype=int)
    g_res = np.zeros_like(tau)
    active = (lam > 0) | (tau < 1)  # elsewhere the root is exactly u = 0
    if not np.any(active):
        return u, iters, g_res
    lo, hi = (x[active] for x in _bracket(tau, kappa, c, lam))
    ta, ka, ra, la, ca = tau[active], kappa[active], rho[active], lam[active], c[active]
    t_lo, t_hi = np.log(lo), np.log(hi)
    t = 0.5 * (t_lo + t_hi)
    done = np.zeros(t.shape, dtype=bool)
    n_it = np.zeros(t.shape, dtype=int)
    for _ in range(max_iter):
        idx = ~done
        if not np.any(idx):
            break
        uu = np.exp(t[idx])
        G, dG, _tr = _g_equation(uu, ca[idx], ta[idx], ka[idx], ra[idx], la[idx])
        n_it[idx] += 1
        neg = G < 0
        t_lo[idx] = np.where(neg, t[idx], t_lo[idx])
        t_hi[idx] = np.where(neg, t_hi[idx], t[idx])
        scale = ta[idx] + 1 + la[idx] * ka[idx] / uu
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
    G, _dG, _tr = _g_equation(u_a, ca, ta, ka, ra, la)
    u[active] = u_a
    iters[active] = n_it
    g_res[active] = np.abs(G) / (ta + 1 + la * ka / u_a)
    return u, iters, g_res


def _branches(tau, lam):
    return np.where(lam > 0, RIDGE, np.where(tau > 1, RIDGELESS_UNDER, np.where(tau < 1, RIDGELESS_OVER, THRESHOLD)))


def _q_hat(tau, kappa, lam, u):
    """q_hat = lam/u; its lam -> 0 limits are (tau - 1)/kappa for tau > 1 and 0 for tau <= 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lam > 0, lam / np.where(u > 0, u, 1.0), np.maximum(tau - 1, 0.0) / kappa)


def _explicit(p: dict, u):
    """Every order parameter from the root u (float64 arrays), via the stable moments."""
    alpha, tau, kappa, rho, sigma, lam = (p[k] for k in ForwardParams.field_names())
    nu = (1 + sigma**2) / alpha + u
    mo = pool_moments(-nu, kappa, rho)
    order, parts = evaluate_explicit(u, mo, alpha, tau, kappa, rho, sigma, lam)
    order = {k: np.broadcast_to(v, nu.shape) for k, v in order.items()}
    q_hat = _q_hat(tau, kappa, lam, u)
    pos = q_hat > 0
    safe = np.where(pos, q_hat, 1.0)
    with np.errstate(invalid="ignore"):  # inf * 0 at the threshold is discarded by the where
        chi_hat = np.where(pos, order["chi_hat_over_q_hat2"] * q_hat**2, 0.0)  # 0 also at the threshold
    sol = dict(q=order["q"], m=order["m"], chi=np.where(pos, order["chi_times_q_hat"] / safe, np.inf),
               q_bar=order["q_bar"], chi_bar=np.where(pos, order["chi_bar_times_q_hat"] / safe, np.inf),
               q_hat=q_hat, m_hat=q_hat, chi_hat=chi_hat, q_bar_hat=(1 + sigma**2) * q_hat / alpha,
               chi_bar_hat=(1 + sigma**2) * chi_hat / alpha, m_bar=order["m_bar"], q0=order["q0"],
               m0=order["m0"], nu=nu, training_error=order["E"])
    parts = {k: {pn: np.broadcast_to(v, nu.shape) for pn, v in d.items()} for k, d in parts.items()}
    return sol, parts


def _moment_args(mo):
    return (mo.g, mo.dg, mo.A1, mo.B1, mo.A2, mo.Mm, mo.Q3)


def published_residual(p: dict, sol: dict) -> np.ndarray:
    """Max relative residual of the published equations at the point ``sol`` (float64 arrays).

    Where every quantity is finite the five published equations are evaluated literally from the
    state (q, m, chi, q_bar, chi_bar): conjugates and z from their published definitions, then the
    right-hand sides, with the spectral moments at that z evaluated cancellation-free
    (stieltjes.pool_moments). At lam = 0, tau < 1 (q_hat = 0, chi = +inf) they are evaluated in their
    lam -> 0 limit: the q, m, q_bar equations are homogeneous of degree 0 in the conjugates, so
    they are evaluated with the conjugates divided by q_hat; the chi and chi_bar equations times
    q_hat combine with the Delta equation times q_hat into tau/kappa = q_hat chi + c q_hat chi_bar.
    At the interpolation threshold the residual is 0 by definition (exact limit, infinite errors).
    """
    z_fn, _hats, rhs_fns = numeric_published_map("numpy")
    alpha, tau, kappa, rho, sigma, lam = (p[k] for k in ForwardParams.field_names())
    regular = np.isfinite(sol["chi"]) & np.isfinite(sol["q"])
    res = np.zeros(tau.shape, dtype=float)
    names = ("q", "m", "chi", "q_bar", "chi_bar")

    def rel(a, b):
        return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)

    with np.errstate(divide="ignore", invalid="ignore"):
        if np.any(regular):
            state = [np.asarray(sol[k])[regular] for k in names]
            prm = [x[regular] for x in (alpha, tau, kappa, sigma, lam)]
            z_state = z_fn(*state, *prm)
            ok = np.isfinite(z_state) & (z_state < 0)
            mo = pool_moments(np.where(ok, z_state, -1.0), prm[2], rho[regular])
            rhs = [rhs_fns[k](*state, *_moment_args(mo), *prm) for k in names]
            res[regular] = np.where(ok, np.max([rel(r, st) for r, st in zip(rhs, state)], axis=0), np.inf)
        scaled = ~regular & np.isfinite(sol["q"])
        if np.any(scaled):
            a_, t_, k_, s_, r_ = (x[scaled] for x in (alpha, tau, kappa, sigma, rho))
            c = (1 + s_**2) / a_
            q_, m_, qb_ = (np.asarray(sol[k])[scaled] for k in ("q", "m", "q_bar"))
            mo = pool_moments(-np.asarray(sol["nu"])[scaled], k_, r_)
            chi_hat_s = k_ * ((1 + s_**2) - 2 * m_ + q_ + c * qb_) / t_
            vals = {k: fn(1.0, 1.0, chi_hat_s, c * chi_hat_s, *_moment_args(mo), a_, t_, k_, s_)
                    for k, fn in _hat_rhs("numpy").items()}
            delta_eq = rel(vals["chi"] + c * vals["chi_bar"], t_ / k_)
            res[scaled] = np.max([rel(vals["q"], q_), rel(vals["m"], m_), rel(vals["q_bar"], qb_), delta_eq], axis=0)
    return res


@lru_cache(maxsize=None)
def _hat_rhs(module: str):
    """Published right-hand sides as functions of given conjugate values (the lam -> 0 limit)."""
    import sympy as sp

    from lowrank_icl.theory.forward import saddle_point as spm
    H = spm.HAT_SYMBOLS
    args = (H["q_hat"], H["m_hat"], H["chi_hat"], H["chi_bar_hat"], spm.g, spm.dg, *spm.MOMENTS,
            spm.alpha, spm.tau, spm.kappa, spm.sigma)
    return {str(k): sp.lambdify(args, v, modules=module) for k, v in spm.published_saddle_point().rhs.items()}


def _solve_reduced(params: ForwardParams, max_iter: int) -> ForwardSolution:
    p = {k: np.atleast_1d(v).astype(float) for k, v in params.broadcast().items()}
    u, iters, g_res = _solve_u(p, max_iter)
    sol, parts = _explicit(p, u)
    residual = np.maximum(published_residual(p, sol), g_res)
    converged = np.isfinite(residual) & (residual <= _RESIDUAL_TOL)
    return _package(params, params.shape, sol, parts, converged, residual, iters,
                    _branches(p["tau"], p["lam"]), "reduced")


def _package(params, shape, sol, parts, converged, residual, iters, branch, method):
    def shaped(x):
        x = np.asarray(x)
        return x.reshape(shape)[()] if x.size == int(np.prod(shape, dtype=int)) else x

    return ForwardSolution(params=params, **{k: shaped(v) for k, v in sol.items()},
                           converged=shaped(converged), residual=shaped(residual),
                           iterations=shaped(iters), branch=shaped(branch), method=method,
                           _parts={k: {pn: shaped(v) for pn, v in d.items()} for k, d in parts.items()})


# ----------------------------------------------------------------------------------------------
# reduced method in mpmath (referee checks, near-singular points)

def _solve_u_mp(tau, kappa, rho, sigma, alpha, lam, max_iter=400):
    """Scalar safeguarded Newton/bisection in log u at the current mpmath precision."""
    c = (1 + sigma**2) / alpha
    if lam == 0 and tau >= 1:
        return mpmath.mpf(0), 0, mpmath.mpf(0)
    lk = lam * kappa
    lo = max(lk / tau, c * (1 - tau) / tau if tau < 1 else mpmath.mpf(0))
    hi = 2 * (1 + c + lk) / tau
    if tau > 1:
        hi = min(hi, lk / (tau - 1))
    t_lo, t_hi = mpmath.log(lo), mpmath.log(hi)
    t = (t_lo + t_hi) / 2
    eps = mpmath.mpf(10) ** (-mpmath.mp.dps + 3)

    def G(uu):
        tr = pool_transforms_mp(-(c + uu), kappa, rho)
        return tau - 1 + uu * tr.g - lk / uu, tr.g - uu * tr.dg + lk / uu**2

    it = 0
    for it in range(1, max_iter + 1):
        uu = mpmath.exp(t)
        val, der = G(uu)
        if val == 0:
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
            break
    uu = mpmath.exp(t)
    val, _ = G(uu)
    return uu, it, abs(val) / (tau + 1 + lk / uu)


def _solve_mp(params: ForwardParams, precision: int) -> ForwardSolution:
    flat = {k: np.ravel(v) for k, v in params.broadcast().items()}
    n = flat["alpha"].size
    sols, parts_list, iters, residuals = [], [], [], []
    with mpmath.workdps(precision):
        for i in range(n):
            pt = {k: mpmath.mpf(float(v[i])) for k, v in flat.items()}
            u, it, g_res = _solve_u_mp(pt["tau"], pt["kappa"], pt["rho"], pt["sigma"], pt["alpha"], pt["lam"])
            sol, parts = _explicit_mp(pt, u)
            sols.append(sol)
            parts_list.append(parts)
            iters.append(it)
            residuals.append(max(_residual_mp(pt, sol), g_res))
        tol = mpmath.mpf(10) ** (-(precision - 5))
        converged = np.array([bool(r <= tol) for r in residuals])
    sol = {k: np.array([s_[k] for s_ in sols], dtype=object) for k in sols[0]}
    parts = {k: {pn: np.array([pl[k][pn] for pl in parts_list], dtype=object) for pn in d}
             for k, d in parts_list[0].items()}
    return _package(params, params.shape, sol, parts, converged, np.array(residuals, dtype=object),
                    np.array(iters), _branches(flat["tau"], flat["lam"]), "reduced")


def _explicit_mp(p, u):
    alpha, tau, kappa, rho, sigma, lam = (p[k] for k in ForwardParams.field_names())
    nu = (1 + sigma**2) / alpha + u
    order, parts = evaluate_explicit(u, pool_moments_mp(-nu, kappa, rho), alpha, tau, kappa, rho, sigma, lam)
    q_hat = lam / u if lam > 0 else max(tau - 1, 0) / kappa
    chi_hat = order["chi_hat_over_q_hat2"] * q_hat**2 if q_hat > 0 else mpmath.mpf(0)
    inf = mpmath.inf
    sol = dict(q=order["q"], m=order["m"], chi=order["chi_times_q_hat"] / q_hat if q_hat > 0 else inf,
               q_bar=order["q_bar"], chi_bar=order["chi_bar_times_q_hat"] / q_hat if q_hat > 0 else inf,
               q_hat=q_hat, m_hat=q_hat, chi_hat=chi_hat, q_bar_hat=(1 + sigma**2) * q_hat / alpha,
               chi_bar_hat=(1 + sigma**2) * chi_hat / alpha, m_bar=order["m_bar"], q0=order["q0"],
               m0=order["m0"], nu=nu, training_error=order["E"])
    return sol, parts


def _residual_mp(p, sol):
    """Scalar mpmath twin of :func:`published_residual` (same two cases)."""
    if not mpmath.isfinite(sol["q"]):
        return mpmath.mpf(0)
    alpha, tau, kappa, sigma = p["alpha"], p["tau"], p["kappa"], p["sigma"]
    if mpmath.isfinite(sol["chi"]):
        z_fn, _h, rhs_fns = numeric_published_map("mpmath")
        names = ("q", "m", "chi", "q_bar", "chi_bar")
        state = [sol[k] for k in names]
        prm = [p[k] for k in ("alpha", "tau", "kappa", "sigma", "lam")]
        mo = pool_moments_mp(z_fn(*state, *prm), kappa, p["rho"])
        return max(abs(rhs_fns[k](*state, *_moment_args(mo), *prm) - sol[k]) / abs(sol[k]) for k in names)
    c = (1 + sigma**2) / alpha
    mo = pool_moments_mp(-sol["nu"], kappa, p["rho"])
    chi_hat_s = kappa * ((1 + sigma**2) - 2 * sol["m"] + sol["q"] + c * sol["q_bar"]) / tau
    vals = {k: fn(1, 1, chi_hat_s, c * chi_hat_s, *_moment_args(mo), alpha, tau, kappa, sigma)
            for k, fn in _hat_rhs("mpmath").items()}
    checks = [abs(vals[k] - sol[k]) / abs(sol[k]) for k in ("q", "m", "q_bar")]
    checks.append(abs(vals["chi"] + c * vals["chi_bar"] - tau / kappa) / (tau / kappa))
    return max(checks)


# ----------------------------------------------------------------------------------------------
# the published damped iteration (baseline)

def _solve_damped(params: ForwardParams, max_iter: int, damping: float) -> ForwardSolution:
    """x <- (1 - eta) x + eta F(x) on (q, m, chi, q_bar, chi_bar), F the published map.

    Settings of the published code (anchors.md): all five start at 1, eta = 0.5, at most 1000
    iterations, stop when the Euclidean norm of the change is < 1e-9, and g from the textbook
    root (:func:`lowrank_icl.theory.forward.stieltjes.published_g`). A point that produces NaN/inf or
    exhausts max_iter is reported as not converged; the reported residual is evaluated with the
    accurate transforms, so it measures the iteration, not the textbook root.
    """
    p = {k: np.atleast_1d(v).astype(float) for k, v in params.broadcast().items()}
    shape = params.shape
    z_fn, _hats, rhs_fns = numeric_published_map("numpy")
    textbook_moments = _textbook_moments()
    names = ("q", "m", "chi", "q_bar", "chi_bar")
    n = p["tau"].size
    x = {k: np.ones(n) for k in names}
    prm = [p[k].ravel() for k in ("alpha", "tau", "kappa", "sigma", "lam")]
    rho = p["rho"].ravel()
    active = np.ones(n, dtype=bool)
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
            stop = ~np.isfinite(sq_change) | (np.sqrt(sq_change) < 1e-9)
            active[idx[stop]] = False
    # everything else follows from the state: hats and z from their published definitions, the
    # at-the-solution formulas for m_bar, q0, m0 (spec section 4)
    pflat = {k: v.ravel() for k, v in p.items()}
    with np.errstate(all="ignore"):
        zf = z_fn(*[x[k] for k in names], *prm)
        finite = np.isfinite(zf) & (zf < 0) & np.all([np.isfinite(x[k]) for k in names], axis=0)
        hats = {k: fn(*[x[k2] for k2 in names], *prm) for k, fn in _hats.items()}
        mo = pool_moments(np.where(finite, zf, -1.0), prm[2], rho)
        f = np.where(finite, hats["chi_hat"] / hats["q_hat"] ** 2, np.nan) / prm[2]  # = E/tau
        c = (1 + prm[3] ** 2) / prm[0]
        sol = {k: x[k] for k in names}
        sol.update({k: hats[k] for k in ("q_hat", "m_hat", "chi_hat", "q_bar_hat", "chi_bar_hat")})
        sol.update(m_bar=mo.A1, m0=mo.A1 / rho, q0=f * (mo.B1 / rho + c * mo.dg_tilde) + mo.A2 / rho, nu=-zf,
                   training_error=(1 + prm[3] ** 2) - 2 * x["m"] + x["q"] + c * x["q_bar"])
        parts = {"q": {"signal": mo.Q3, "noise_T": f * mo.A2, "noise_R": f * c * mo.B1},
                 "q_bar": {"signal": mo.A2, "noise_T": f * mo.B1, "noise_R": f * c * mo.dg},
                 "q0": {"signal": mo.A2 / rho, "noise_T": f * mo.B1 / rho, "noise_R": f * c * mo.dg_tilde}}
        res = published_residual(pflat, {**sol, **{k: np.where(finite, x[k], 1.0) for k in names}})
    res = np.where(finite, res, np.nan)
    converged = np.isfinite(res) & (res <= _RESIDUAL_TOL)
    return _package(params, shape, sol, parts, converged, res, iters, _branches(pflat["tau"], pflat["lam"]), "damped")


@lru_cache(maxsize=None)
def _textbook_moments():
    import sympy as sp

    from lowrank_icl.theory.forward import saddle_point as spm
    return [sp.lambdify((spm.zs, spm.g, spm.dg), spm.MOMENT_DEFINITIONS[mom], modules="numpy")
            for mom in spm.MOMENTS]


def _is_mp(x) -> bool:
    return isinstance(x, mpmath.mpf) or (isinstance(x, np.ndarray) and x.dtype == object)


def _to_mp(x):
    """float or float array -> mpmath number or object array (exact conversion of the binary value)."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        return mpmath.mpf(float(arr))
    return np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])(arr)


def _unwrap(x):
    x = np.asarray(x) if not isinstance(x, mpmath.mpf) else x
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()] if x.dtype == object else x.tolist()
    if isinstance(x, mpmath.mpf):
        return float(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


__all__ = ["solve", "ForwardSolution", "ForwardErrors", "Decomposition", "PartSplit", "ORDER_PARAMETERS",
           "published_residual"]
