r"""The forward saddle point for a general task spectrum: :func:`solve_spectrum`.

Model: pretraining tasks w ~ N(0, Sigma), Sigma = O diag(s) O^T, test tasks with second moment
Sigma' whose diagonal in Sigma's eigenbasis is t (a :class:`TaskSpectrum`). The pool's resolvent
R = (S + nu)^{-1} is replaced by its deterministic equivalent (x Sigma + nu)^{-1}, where x = 1/(1 + delta)
and delta solves the monotone scalar equation (theory: :mod:`lowrank_icl.theory.forward.spectra`)

    F(delta; nu) = delta - ((1 + delta)/kappa) mean_i s_i / (s_i + nu (1 + delta)) = 0.

F is convex in delta, F(0) < 0 and F(m1/(kappa nu)) >= 0 (m1 = mean s), so Newton's method
started at any point right of the root decreases monotonically onto it. The saddle point then
reduces, exactly as for the rank-r model, to

    G(u) = tau - 1 + u g(c + u) - lam kappa / u = 0,   g(nu) = (1/D) tr Rbar = mean (1 + delta)/(s + nu(1 + delta)),

strictly increasing in u; it is solved by a safeguarded Newton in log u inside a proved bracket, with
the inner equation re-solved (warm-started) at every outer iterate. Every order parameter is then
explicit, and the test-law traces (1/D) tr C S R, tr C S^2 R^2, tr C S R^2, tr C R^2 are sums of
positive terms over the atoms (no cancellation).

Scale: tasks are used as given (E|w|^2 = D m1). Internally the spectrum is normalized to m1 = 1 with
sigma -> sigma/sqrt(m1), lam -> lam/m1, which leaves Gamma unchanged; errors, m, q, q0, m0, the
training error and nu are reported in the original units. The conjugates (q_hat, ..., chi, chi_bar)
are those of the normalized model (identical to the original ones when m1 = 1, as for every named family).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np

from lowrank_icl.numerics._checks import check_int
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.precision import log_bracket_mp, newton_in_log_mp
from lowrank_icl.numerics.forward.results import to_mp, unwrap
from lowrank_icl.numerics.forward import ForwardErrors, ForwardSolution  # the package's public result types
from lowrank_icl.numerics.forward.spectrum import TaskSpectrum
from lowrank_icl.theory.forward.saddle_point import evaluate_explicit, numeric_published_map

_RESIDUAL_TOL = 1e-10
_CHUNK = 256  # evaluation points per block: keeps the (points x atoms) work arrays in cache-sized pieces

RIDGE, RIDGELESS_UNDER, RIDGELESS_OVER, THRESHOLD = ("ridge", "ridgeless tau>1", "ridgeless tau<1",
                                                     "interpolation threshold")


# ----------------------------------------------------------------------------------------------
# the pool's deterministic equivalent

@dataclass
class SpectralTransforms:
    """Deterministic-equivalent traces of the pool at effective ridge nu (normalized spectrum).

    g, dg = (1/D) tr R, tr R^2; A1, B1, A2, Mm, Q3, W = tr S R, tr S R^2, tr S^2 R^2, tr S^2 R, tr S^3 R^2,
    nu^2 B1 (the moments of the rank-r solver, now for any spectrum); ``laws[name]`` = (m, s2r2, sr2, e2)
    = (1/D) tr C S R, tr C S^2 R^2, tr C S R^2, tr C R^2 for each test law C; delta the inner root.
    """

    delta: np.ndarray
    g: np.ndarray
    dg: np.ndarray
    A1: np.ndarray
    B1: np.ndarray
    A2: np.ndarray
    Mm: np.ndarray
    Q3: np.ndarray
    W: np.ndarray
    laws: dict

    @property
    def g_tilde(self):  # evaluate_explicit reads these rank-r fields; unused with rho = 1
        return self.g

    @property
    def dg_tilde(self):
        return self.dg


def _inner_solve(nu, inv_k, s, p, delta=None, max_iter=100, with_residual=True):
    """Root delta(nu) of F (module docstring), vectorized over points (nu, inv_k = 1/kappa arrays).

    Newton from the right of the root decreases monotonically (F convex). A warm start left of the
    root is moved right by one Newton step (the tangent of a convex F overshoots) or reset to the
    bound. Stops after a Newton step of relative size <= 1e-9 (convergence is quadratic: F'(root) >=
    -F(0)/root > 0, so the step left is ~1e-18) or once F <= 0 is reached from the right (the root up to
    rounding). Returns (delta, iterations, relative residual |F| / (delta + (1 + delta) h/kappa)); the
    residual costs one more pass and is None with ``with_residual=False``.
    """
    nu = np.asarray(nu, dtype=float)
    inv_k = np.broadcast_to(np.asarray(inv_k, dtype=float), nu.shape)
    ps, ps2 = p * s, p * s * s
    upper = float(np.sum(ps)) * inv_k / nu
    delta = upper.copy() if delta is None else np.minimum(np.where(np.isfinite(delta), delta, upper), upper)
    n_it = np.zeros(nu.shape, dtype=int)
    right = np.zeros(nu.shape, dtype=bool)  # has F >= 0 been seen (then the iterates only decrease)
    active = np.ones(nu.shape, dtype=bool)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        dl, nn, ik = delta[idx], nu[idx], inv_k[idx]
        y = 1.0 + dl
        buf = np.add(s[None, :], (nn * y)[:, None])
        np.reciprocal(buf, out=buf)
        h1 = buf @ ps                  # mean s/d
        np.multiply(buf, buf, out=buf)
        h2 = buf @ ps2                 # mean s^2/d^2
        del buf
        F = dl - ik * y * h1
        dF = 1.0 - ik * h2
        n_it[idx] += 1
        at_root = right[idx] & (F <= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = F / dF
        bad = ~at_root & (~np.isfinite(step) | ((F < 0) & (dF <= 0)))
        new = np.where(at_root, dl, np.where(bad, upper[idx], np.maximum(dl - step, 0.0)))
        small = ~bad & (np.abs(new - dl) <= 1e-9 * np.maximum(dl, 1e-300))
        right[idx] |= F >= 0
        delta[idx] = new
        active[idx[at_root | small | ((new == 0.0) & (dl == 0.0))]] = False
    if not with_residual:
        return delta, n_it, None
    y = 1.0 + delta
    h1 = (1.0 / (s[None, :] + (nu * y)[:, None])) @ ps
    F = delta - inv_k * y * h1
    return delta, n_it, np.abs(F) / np.maximum(delta + inv_k * y * h1, 1e-300)


def _transforms(nu, inv_k, s, p, laws, delta):
    """All traces at (nu, delta) for the atoms (s, p) and test laws {name: t} (numpy, any number of points)."""
    y = 1.0 + delta
    r1 = np.add(s[None, :], (nu * y)[:, None])
    np.reciprocal(r1, out=r1)
    ps = p * s
    names = list(laws)
    # columns: p, p s, p s^2, p s^3, then (p t, p t s, p t s^2) per law
    cols1 = [p, ps, ps * s] + [p * laws[k] * s for k in names]
    cols2 = [p, ps, ps * s, ps * s * s] + [c for k in names for c in (p * laws[k], p * laws[k] * s,
                                                                         p * laws[k] * s * s)]
    t1 = r1 @ np.stack(cols1, axis=1)
    np.multiply(r1, r1, out=r1)
    t2 = r1 @ np.stack(cols2, axis=1)
    S_r1, S_sr1, S_s2r1 = t1[:, 0], t1[:, 1], t1[:, 2]
    S_r2, S_sr2, S_s2r2, S_s3r2 = t2[:, 0], t2[:, 1], t2[:, 2], t2[:, 3]
    y2 = y * y
    dn = 1.0 + inv_k * nu * y2 * S_sr2
    xp = inv_k * y * S_sr2 / dn
    J = inv_k * S_s2r2
    out_laws = {}
    for j, k in enumerate(names):
        a, b, c = t2[:, 4 + 3 * j], t2[:, 5 + 3 * j], t2[:, 6 + 3 * j]
        out_laws[k] = (t1[:, 3 + j],                         # tr C S R = mean t s/d
                       c + nu * nu * xp * y2 * b,            # tr C S^2 R^2
                       (y / dn) * b,                         # tr C S R^2
                       y2 * (a + xp * b))                    # tr C R^2
    B1 = (y / dn) * S_sr2
    return SpectralTransforms(
        delta=delta, g=y * S_r1, dg=y2 * (S_r2 + xp * S_sr2), A1=S_sr1, B1=B1,
        A2=S_s2r2 + nu * nu * xp * y2 * S_sr2, Mm=S_s2r1 + nu * delta * S_sr1,
        Q3=S_s3r2 + 2 * nu * delta * S_s2r2 + nu * nu * (delta * delta + y * J / dn) * S_sr2,
        W=nu * nu * B1, laws=out_laws)


def spectral_transforms(nu, kappa, spectrum: TaskSpectrum, laws: dict | None = None) -> SpectralTransforms:
    """Public entry: the pool traces at effective ridges ``nu`` (> 0) for ``spectrum`` normalized to mean 1.

    ``laws`` maps names to per-atom test diagonals t (default: {"test": spectrum.test}); e.g. with
    t = 1 the law traces are the isotropic ones. Vectorized over nu (kappa a scalar).
    """
    nu = np.atleast_1d(np.asarray(nu, dtype=float))
    if np.any(~(nu > 0)):
        raise ValueError("nu must be > 0")
    m1 = spectrum.train_mean
    s = spectrum.train / m1
    laws = {"test": spectrum.test} if laws is None else {k: np.asarray(v, float) for k, v in laws.items()}
    inv_k = np.broadcast_to(1.0 / np.asarray(kappa, dtype=float), nu.shape)
    delta, _it, _res = _inner_solve(nu, inv_k, s, spectrum.weights)
    return _transforms(nu, inv_k, s, spectrum.weights, laws, delta)


# ----------------------------------------------------------------------------------------------
# the outer equation G(u) = 0

def _bracket(tau, lk, c):
    """[lo, hi] with G(lo) <= 0 <= G(hi): u g <= u/(c + u) <= 1, and Jensen u g >= u/(1 + c + u) (mean s = 1)."""
    lo = np.maximum(lk / tau, np.where(tau < 1, c * (1 - tau) / tau, 0.0))
    hi = 2.0 * (1.0 + c + lk) / tau
    with np.errstate(divide="ignore"):
        hi = np.where(tau > 1, np.minimum(hi, lk / np.where(tau > 1, tau - 1, 1.0)), hi)
    return lo, hi


def _solve_u(tau, inv_k, lam, c, s, p, max_iter):
    """Safeguarded Newton in log u (vectorized), the inner equation re-solved (warm) at each iterate.

    Returns u, delta at nu = c + u, iterations and the scaled residual |G| / (tau + 1 + lam kappa/u).
    """
    lk = lam / inv_k
    u = np.zeros_like(tau)
    iters = np.zeros(tau.shape, dtype=int)
    g_res = np.zeros_like(tau)
    delta_out = np.full(tau.shape, np.nan)
    act = np.flatnonzero((lam > 0) | (tau < 1))  # elsewhere the root is exactly u = 0
    if act.size == 0:
        return u, delta_out, iters, g_res
    ta, ika, ca, lka = tau[act], inv_k[act], c[act], lk[act]
    lo, hi = _bracket(ta, lka, ca)
    t_lo, t_hi = np.log(lo), np.log(hi)
    t = 0.5 * (t_lo + t_hi)
    delta = np.full(t.shape, np.nan)
    done = np.zeros(t.shape, dtype=bool)
    n_it = np.zeros(t.shape, dtype=int)
    for _ in range(max_iter):
        idx = np.flatnonzero(~done)
        if idx.size == 0:
            break
        uu = np.exp(t[idx])
        nu = ca[idx] + uu
        dl, _it, _r = _inner_solve(nu, ika[idx], s, p, delta[idx], with_residual=False)
        delta[idx] = dl
        tr = _transforms(nu, ika[idx], s, p, {}, dl)
        G = ta[idx] - 1 + uu * tr.g - lka[idx] / uu
        dG = tr.g - uu * tr.dg + lka[idx] / uu**2
        n_it[idx] += 1
        neg = G < 0
        t_lo[idx] = np.where(neg, t[idx], t_lo[idx])
        t_hi[idx] = np.where(neg, t_hi[idx], t[idx])
        at_root = np.abs(G) <= 1e-16 * (ta[idx] + 1 + lka[idx] / uu)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_new = t[idx] - G / (uu * dG)
        inside = np.isfinite(t_new) & (t_new >= t_lo[idx]) & (t_new <= t_hi[idx])
        t_new = np.where(at_root, t[idx], np.where(inside, t_new, 0.5 * (t_lo[idx] + t_hi[idx])))
        tol = np.maximum(1.0, np.abs(t_new))
        # a Newton step of 1e-9 leaves an error ~1e-18 (quadratic convergence; dG > 0 is bounded away
        # from 0 on the bracket), so it is the last one needed
        done[idx] = at_root | (inside & (np.abs(t_new - t[idx]) <= 1e-9 * tol)) \
            | (t_hi[idx] - t_lo[idx] <= 4e-16 * tol)
        t[idx] = t_new
    u_a = np.exp(t)
    nu = ca + u_a
    dl, _it, _r = _inner_solve(nu, ika, s, p, delta, with_residual=False)
    tr = _transforms(nu, ika, s, p, {}, dl)
    G = ta - 1 + u_a * tr.g - lka / u_a
    u[act], delta_out[act], iters[act] = u_a, dl, n_it
    g_res[act] = np.abs(G) / (ta + 1 + lka / u_a)
    return u, delta_out, iters, g_res


# ----------------------------------------------------------------------------------------------
# results

@dataclass(frozen=True)
class SpectrumSolution(ForwardSolution):
    r"""A :class:`ForwardSolution` for a general task spectrum.

    Beyond the rank-r fields: m0, q0 are the order parameters of the train law (IDG: tr(Gamma Sigma)/D,
    tr(Gamma Sigma Gamma^T)/D), ``m_test``, ``q_test`` those of the test law Sigma', ``inner_residual``
    the residual of the deterministic-equivalent equation. ``residual`` is the largest of: the relative
    residual of G(u) = 0, of the inner equation, and of the five published equations evaluated literally
    at the returned state divided by the condition number of the training error in the state
    (:func:`_training_error_condition`); ``converged`` is ``residual <= 1e-10`` (float64) or
    ``<= 10^-(precision - 8)`` (mpmath). ``errors()`` gives TM, IDG (train law) and
    "odg" on the test law t (isotropic for the named families unless a test law is chosen).

    Attributes
    ----------
    spectrum : TaskSpectrum
        The task spectrum solved.
    m_test, q_test : ndarray
        Order parameters of the test law: tr(Gamma Sigma') / D and tr(Gamma Sigma' Gamma^T) / D.
    inner_residual : ndarray
        Residual of the deterministic-equivalent equation.
    bias, noise_test : dict, ndarray
        The parts of the test errors on the test law.
    """

    spectrum: TaskSpectrum | None = None
    m_test: np.ndarray | float | None = None
    q_test: np.ndarray | float | None = None
    inner_residual: np.ndarray | float | None = None
    bias: dict | None = field(default=None, repr=False)
    precision: int | None = None
    noise_test: np.ndarray | float | None = field(default=None, repr=False)

    def errors(self, alpha_test=None, sigma_test=None) -> ForwardErrors:
        r"""TM, IDG and test-law ("odg") errors at test context alpha_test and test noise sigma_test.

        e_C = sigma_t^2 + mean_C - 2 m_C + q_C + (mean_C + sigma_t^2) q_bar/alpha_t, evaluated without
        cancellation: mean_C - 2 m_C + (signal part of q_C) = (1/D) tr C (I - S R)^2 = nu^2 (1/D) tr C R^2
        (``bias``, W = nu^2 B1 for the pool), plus the two noise parts of q_C; every term is >= 0.
        """
        from lowrank_icl.numerics._checks import check_real
        a_t = self.params.alpha if alpha_test is None else check_real("alpha_test", alpha_test, lower=0.0)
        s_t = self.params.sigma if sigma_test is None else check_real(
            "sigma_test", sigma_test, lower=0.0, lower_inclusive=True)
        spec = self.spectrum
        m1, mt = spec.train_mean, spec.test_mean
        if isinstance(self.q, mpmath.mpf) or getattr(self.q, 'dtype', None) == object:
            a_t, s_t = to_mp(a_t), to_mp(s_t)
            m1, mt = mpmath.mpf(m1), mpmath.mpf(mt)
        if self.precision is not None:
            with mpmath.workdps(self.precision):
                return self._errors(a_t, s_t, m1, mt)
        return self._errors(a_t, s_t, m1, mt)

    def _errors(self, a_t, s_t, m1, mt):
        parts = self._parts
        noise = {"tm": parts["q"]["noise_T"] + parts["q"]["noise_R"],
                 "idg": parts["q0"]["noise_T"] + parts["q0"]["noise_R"], "odg": self.noise_test}
        means = {"tm": m1, "idg": m1, "odg": mt}
        with np.errstate(invalid="ignore"):
            return ForwardErrors(**{k: unwrap(s_t**2 + self.bias[k] + noise[k] + (means[k] + s_t**2) * self.q_bar / a_t)
                                    for k in ("tm", "idg", "odg")})


def solve_spectrum(alpha, tau, kappa, sigma=0.0, lam=0.0, *, spectrum: TaskSpectrum,
                   precision: int | None = None, max_iter: int | None = None) -> SpectrumSolution:
    r"""Solve the forward saddle point for the task spectrum ``spectrum`` (see the module docstring).

    Parameters broadcast (alpha > 0, tau > 0, kappa > 0, sigma >= 0 the label-noise std, lam >= 0
    the ridge, penalty lam M0 ||Gamma||_F^2). ``precision=N`` runs in mpmath with N digits.
    ``solve(..., spectrum=TaskSpectrum.low_rank(rho))`` equals ``solve(..., rho=rho)``.
    """
    if not isinstance(spectrum, TaskSpectrum):
        raise ValueError(f"spectrum must be a TaskSpectrum (got {type(spectrum).__name__})")
    params = ForwardParams(alpha=alpha, tau=tau, kappa=kappa, rho=1.0, sigma=sigma, lam=lam)
    if precision is not None:
        precision = check_int("precision", precision, lower=15, upper=10_000)
        return _solve_mp(params, spectrum, precision)
    max_iter = check_int("max_iter", max_iter or 200, lower=1)
    p = {k: np.ravel(v).astype(float) for k, v in params.broadcast().items()}
    _check_representable(p, spectrum.train_mean)
    n = p["alpha"].size
    blocks = [_solve_block({k: v[i:i + _CHUNK] for k, v in p.items()}, spectrum, max_iter)
              for i in range(0, n, _CHUNK)] or [_solve_block(p, spectrum, max_iter)]
    sol = {k: np.concatenate([b[0][k] for b in blocks]) for k in blocks[0][0]}
    parts = {k: {pn: np.concatenate([b[1][k][pn] for b in blocks]) for pn in d} for k, d in blocks[0][1].items()}
    extra = {k: np.concatenate([b[2][k] for b in blocks]) for k in blocks[0][2]}
    shape = params.shape

    def shaped(x):
        return np.asarray(x).reshape(shape)[()]

    return SpectrumSolution(params=params, **{k: shaped(v) for k, v in sol.items()},
                            converged=shaped(extra["converged"]), residual=shaped(extra["residual"]),
                            iterations=shaped(extra["iterations"]), branch=shaped(_branches(p["tau"], p["lam"])),
                            method="reduced",
                            _parts={k: {pn: shaped(v) for pn, v in d.items()} for k, d in parts.items()},
                            spectrum=spectrum, m_test=shaped(extra["m_test"]), q_test=shaped(extra["q_test"]),
                            inner_residual=shaped(extra["inner_residual"]),
                            bias={k: shaped(extra["bias_" + k]) for k in ("tm", "idg", "odg")},
                            noise_test=shaped(extra["noise_test"]))


def _check_representable(p, m1):
    """Refuse inputs whose effective ridge leaves [1e-150, 1e150] (normalized units): the positive forms
    multiply nu^2 and (1 + delta)^2 ~ nu^-2 terms, which overflow float64 beyond that (use precision=)."""
    with np.errstate(over="ignore", divide="ignore"):
        c = (1 + p["sigma"] ** 2 / m1) / p["alpha"]
        hi = c + 2 * (1 + c + p["lam"] / m1 * p["kappa"]) / p["tau"]
    if np.any(c < 1e-150):
        raise ValueError("(mean(s) + sigma^2)/(mean(s) alpha) must be >= 1e-150 for float64 "
                         f"(got alpha up to {np.max(p['alpha']):g}); use precision=")
    if np.any(~(hi <= 1e150)):
        raise ValueError("the effective ridge bound (1 + sigma^2)/alpha + 2 (1 + c + lam kappa)/tau must be "
                         "<= 1e150 for float64 (large lam, small alpha or small tau); use precision=")


def _branches(tau, lam):
    return np.where(lam > 0, RIDGE, np.where(tau > 1, RIDGELESS_UNDER, np.where(tau < 1, RIDGELESS_OVER, THRESHOLD)))


def _solve_block(p, spectrum, max_iter):
    m1 = spectrum.train_mean
    s, w = spectrum.train / m1, spectrum.weights
    alpha, tau, kappa, sigma, lam = p["alpha"], p["tau"], p["kappa"], p["sigma"], p["lam"]
    sig_n, lam_n = sigma / np.sqrt(m1), lam / m1
    c = (1 + sig_n**2) / alpha
    inv_k = 1.0 / kappa
    laws = {"train": spectrum.train, "test": spectrum.test}
    u, delta, iters, g_res = _solve_u(tau, inv_k, lam_n, c, s, w, max_iter)
    nu = c + u
    delta, _it, inner_res = _inner_solve(nu, inv_k, s, w, delta)
    tr = _transforms(nu, inv_k, s, w, laws, delta)
    fields = {k: getattr(tr, k) for k in ("g", "dg", "A1", "B1", "A2", "Mm", "Q3", "W", "delta")}
    law_vals = tr.laws
    mo = SpectralTransforms(**fields, laws={})
    order, parts = evaluate_explicit(u, mo, alpha, tau, kappa, 1.0, sig_n, lam_n)
    f = np.asarray(order["E"]) / tau  # E/tau (inf at the threshold)
    with np.errstate(invalid="ignore"):
        law_out = {}
        for k in laws:
            m_l, s2r2, sr2, e2 = law_vals[k]
            sig = s2r2
            nT, nR = f * sr2, f * c * e2
            law_out[k] = (m_l, sig + nT + nR, {"signal": sig, "noise_T": nT, "noise_R": nR})
    q_hat = np.where(lam_n > 0, lam_n / np.where(u > 0, u, 1.0), np.maximum(tau - 1, 0.0) / kappa)
    pos = q_hat > 0
    safe = np.where(pos, q_hat, 1.0)
    with np.errstate(invalid="ignore"):
        chi_hat = np.where(pos, order["chi_hat_over_q_hat2"] * q_hat**2, 0.0)
    sol_n = dict(q=order["q"], m=order["m"], chi=np.where(pos, order["chi_times_q_hat"] / safe, np.inf),
                 q_bar=order["q_bar"], chi_bar=np.where(pos, order["chi_bar_times_q_hat"] / safe, np.inf),
                 q_hat=q_hat, m_hat=q_hat, chi_hat=chi_hat, q_bar_hat=(1 + sig_n**2) * q_hat / alpha,
                 chi_bar_hat=(1 + sig_n**2) * chi_hat / alpha, nu=nu, training_error=order["E"])
    published = _published_residual(p, dict(sol_n, delta=delta), s, w, sig_n, lam_n)
    residual = np.maximum(np.maximum(published / _training_error_condition(sol_n, sig_n, alpha), g_res), inner_res)
    converged = np.isfinite(residual) & (residual <= _RESIDUAL_TOL)
    # back to the original units (Gamma is unchanged by the normalization)
    sol = dict(sol_n)
    sol.update(q=m1 * sol_n["q"], m=m1 * sol_n["m"], training_error=m1 * sol_n["training_error"], nu=m1 * nu,
               m_bar=order["m_bar"], m0=law_out["train"][0], q0=law_out["train"][1])
    parts_out = {"q": {k: m1 * v for k, v in parts["q"].items()}, "q_bar": parts["q_bar"],
                 "q0": law_out["train"][2]}
    extra = dict(converged=converged, residual=residual, iterations=iters, m_test=law_out["test"][0],
                 q_test=law_out["test"][1], inner_residual=inner_res,
                 bias_tm=m1 * fields["W"], bias_idg=nu * nu * law_vals["train"][3],
                 bias_odg=nu * nu * law_vals["test"][3],
                 noise_test=law_out["test"][2]["noise_T"] + law_out["test"][2]["noise_R"])
    return ({k: np.broadcast_to(v, tau.shape) for k, v in sol.items()},
            {k: {pn: np.broadcast_to(v, tau.shape) for pn, v in d.items()} for k, d in parts_out.items()}, extra)


def _training_error_condition(sol, sig_n, alpha):
    """max(1, cond), cond = (s2 + 2|m| + |q| + s2 |q_bar|/alpha) / E with s2 = 1 + sigma^2 (normalized model).

    The published equations take the training error from the state as E = s2 - 2m + q + s2 q_bar/alpha;
    when E is much smaller than its terms (sigma = 0, large alpha) float64 rounding of the state alone
    moves them by ~eps cond, so their residual is reported divided by this condition number (the
    reduced equations G(u) = 0 and the inner equation, which fix the solution, are checked unscaled).
    """
    s2 = 1 + sig_n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = s2 + 2 * np.abs(sol["m"]) + np.abs(sol["q"]) + s2 * np.abs(sol["q_bar"]) / alpha
        cond = mag / np.asarray(sol["training_error"])
    return np.where(np.isfinite(cond), np.maximum(cond, 1.0), 1.0)


def _published_residual(p, sol, s, w, sig_n, lam_n):
    """Max relative residual of the published five equations (normalized model) at the returned state.

    Regular points: conjugates and z from the state by their published definitions, the pool traces
    re-evaluated at that z (inner equation re-solved), the five right-hand sides compared with the state.
    lam = 0, tau < 1 (chi = inf): the q, m, q_bar equations with the conjugates divided by q_hat, and
    q_hat chi + c q_hat chi_bar = tau/kappa (the lam -> 0 limit of the chi, chi_bar and Delta equations).
    The interpolation threshold (infinite errors) has residual 0 by definition.
    """
    z_fn, _hats, rhs_fns = numeric_published_map("numpy")
    alpha, tau, kappa = p["alpha"], p["tau"], p["kappa"]
    names = ("q", "m", "chi", "q_bar", "chi_bar")
    res = np.zeros(tau.shape)
    regular = np.isfinite(sol["chi"]) & np.isfinite(sol["q"])
    scaled = ~regular & np.isfinite(sol["q"])

    def rel(a, b):
        return np.abs(a - b) / np.maximum(np.abs(b), 1e-300)

    def moments(nu, sel):
        dl, _it, _r = _inner_solve(nu, 1.0 / kappa[sel], s, w, np.asarray(sol["delta"])[sel], with_residual=False)
        tr = _transforms(nu, 1.0 / kappa[sel], s, w, {}, dl)
        return (tr.g, tr.dg, tr.A1, tr.B1, tr.A2, tr.Mm, tr.Q3)

    with np.errstate(divide="ignore", invalid="ignore"):
        reg = np.flatnonzero(regular)
        if reg.size:
            state = [np.asarray(sol[k])[reg] for k in names]
            prm = [x[reg] for x in (alpha, tau, kappa, sig_n, lam_n)]
            z = z_fn(*state, *prm)
            ok = np.isfinite(z) & (z < 0)
            mo = moments(np.where(ok, -z, 1.0), reg)
            res[reg] = np.where(ok, np.max([rel(rhs_fns[k](*state, *mo, *prm), st)
                                            for k, st in zip(names, state)], axis=0), np.inf)
        sc = np.flatnonzero(scaled)
        if sc.size:
            a_, t_, k_, s_ = alpha[sc], tau[sc], kappa[sc], sig_n[sc]
            cc = (1 + s_**2) / a_
            q_, m_, qb_ = (np.asarray(sol[k])[sc] for k in ("q", "m", "q_bar"))
            mo = moments(np.asarray(sol["nu"])[sc], sc)
            chi_hat_s = k_ * ((1 + s_**2) - 2 * m_ + q_ + cc * qb_) / t_
            vals = {k: fn(1.0, 1.0, chi_hat_s, cc * chi_hat_s, *mo, a_, t_, k_, s_)
                    for k, fn in _hat_rhs().items()}
            res[sc] = np.max([rel(vals["q"], q_), rel(vals["m"], m_), rel(vals["q_bar"], qb_),
                              rel(vals["chi"] + cc * vals["chi_bar"], t_ / k_)], axis=0)
    return res


@lru_cache(maxsize=None)
def _hat_rhs():
    import sympy as sp

    from lowrank_icl.theory.forward import saddle_point as spm
    H = spm.HAT_SYMBOLS
    args = (H["q_hat"], H["m_hat"], H["chi_hat"], H["chi_bar_hat"], spm.g, spm.dg, *spm.MOMENTS,
            spm.alpha, spm.tau, spm.kappa, spm.sigma)
    return {str(k): sp.lambdify(args, v, modules="numpy") for k, v in spm.published_saddle_point().rhs.items()}


# ----------------------------------------------------------------------------------------------
# mpmath mode

def _mp_atoms(spectrum):
    """Atoms as mpmath numbers; the weights are renormalized to sum to 1 at the working precision
    (their float64 values sum to 1 only to rounding, and the moment identities need a probability)."""
    obj = lambda v: np.array([mpmath.mpf(float(a)) for a in v], dtype=object)  # noqa: E731
    w = obj(spectrum.weights)
    w = w / mpmath.fsum(w)
    m1 = mpmath.fsum(w * obj(spectrum.train))
    return m1, obj(spectrum.train) / m1, w, {"train": obj(spectrum.train), "test": obj(spectrum.test)}


def _inner_solve_mp(nu, inv_k, s, p, max_iter=400):
    """Scalar mpmath twin of :func:`_inner_solve` (Newton from the upper bound, monotone)."""
    ps, ps2 = p * s, p * s * s
    delta = mpmath.fsum(ps) * inv_k / nu
    eps = mpmath.mpf(10) ** (-mpmath.mp.dps + 2)
    for _ in range(max_iter):
        y = 1 + delta
        r1 = [1 / (si + nu * y) for si in s]
        F = delta - inv_k * y * mpmath.fsum(a * b for a, b in zip(r1, ps))
        dF = 1 - inv_k * mpmath.fsum(a * a * b for a, b in zip(r1, ps2))
        new = max(delta - F / dF, mpmath.mpf(0))
        if F <= 0 or abs(new - delta) <= eps * delta:
            delta = new if F > 0 else delta
            break
        delta = new
    y = 1 + delta
    F = delta - inv_k * y * mpmath.fsum(pi * si / (si + nu * y) for pi, si in zip(p, s))
    return delta, abs(F) / max(delta, mpmath.mpf(1))


def _mp_transforms(nu, inv_k, s, p, laws):
    delta, ires = _inner_solve_mp(nu, inv_k, s, p)
    arr = lambda v: np.array([v], dtype=object)  # noqa: E731
    return _transforms(arr(nu), inv_k, s, p, laws, arr(delta)), ires


def _solve_mp(params, spectrum, precision):
    """Scalar loop in mpmath at ``precision`` digits (same equations as the float64 path)."""
    flat = {k: np.ravel(v) for k, v in params.broadcast().items()}
    n = flat["alpha"].size
    z_fn, _hats, rhs_fns = numeric_published_map("mpmath")
    rows, parts_rows = [], []
    with mpmath.workdps(precision):
        m1, s, w, laws = _mp_atoms(spectrum)
        tol = mpmath.mpf(10) ** (-(precision - 8))
        for i in range(n):
            alpha, tau, kappa, sigma, lam = (mpmath.mpf(float(flat[k][i]))
                                             for k in ("alpha", "tau", "kappa", "sigma", "lam"))
            sig_n, lam_n = sigma / mpmath.sqrt(m1), lam / m1
            c, inv_k = (1 + sig_n**2) / alpha, 1 / kappa
            lk = lam_n * kappa

            def G(uu, c=c, inv_k=inv_k, tau=tau, lk=lk):
                tr, _r = _mp_transforms(c + uu, inv_k, s, w, {})
                return tau - 1 + uu * tr.g[0] - lk / uu, tr.g[0] - uu * tr.dg[0] + lk / uu**2

            u, it, g_res = mpmath.mpf(0), 0, mpmath.mpf(0)
            if lam_n > 0 or tau < 1:
                u, it, _stopped = newton_in_log_mp(G, *log_bracket_mp(tau, c, lk),
                                                   mpmath.mpf(10) ** (-precision + 3), 400)
                g_res = abs(G(u)[0]) / (tau + 1 + lk / u)
            nu = c + u
            tr, ires = _mp_transforms(nu, inv_k, s, w, laws)
            mo = SpectralTransforms(**{k: getattr(tr, k)[0] for k in ("delta", "g", "dg", "A1", "B1", "A2", "Mm",
                                                                      "Q3", "W")}, laws={})
            order, parts = evaluate_explicit(u, mo, alpha, tau, kappa, 1, sig_n, lam_n)
            f = order["E"] / tau
            q_hat = lam_n / u if lam_n > 0 else max(tau - 1, 0) / kappa
            chi_hat = order["chi_hat_over_q_hat2"] * q_hat**2 if q_hat > 0 else mpmath.mpf(0)
            law_out = {}
            for k in laws:
                m_l, s2r2, sr2, e2 = (v[0] for v in tr.laws[k])
                split = {"signal": s2r2, "noise_T": f * sr2, "noise_R": f * c * e2}
                law_out[k] = (m_l, split["signal"] + split["noise_T"] + split["noise_R"], split)
            inf = mpmath.inf
            sol = dict(q=m1 * order["q"], m=m1 * order["m"],
                       chi=order["chi_times_q_hat"] / q_hat if q_hat > 0 else inf, q_bar=order["q_bar"],
                       chi_bar=order["chi_bar_times_q_hat"] / q_hat if q_hat > 0 else inf, q_hat=q_hat,
                       m_hat=q_hat, chi_hat=chi_hat, q_bar_hat=(1 + sig_n**2) * q_hat / alpha,
                       chi_bar_hat=(1 + sig_n**2) * chi_hat / alpha, m_bar=order["m_bar"],
                       q0=law_out["train"][1], m0=law_out["train"][0], nu=m1 * nu,
                       training_error=m1 * order["E"])
            # residual of the published equations (regular points) at the returned state
            pub_res = mpmath.mpf(0)
            if q_hat > 0 and mpmath.isfinite(order["q"]):
                names = ("q", "m", "chi", "q_bar", "chi_bar")
                state = [order["q"], order["m"], sol["chi"], order["q_bar"], sol["chi_bar"]]
                prm = (alpha, tau, kappa, sig_n, lam_n)
                z = z_fn(*state, *prm)
                tz, _r = _mp_transforms(-z, inv_k, s, w, {})
                mom = [getattr(tz, k)[0] for k in ("g", "dg", "A1", "B1", "A2", "Mm", "Q3")]
                pub_res = max(abs(rhs_fns[k](*state, *mom, *prm) - st) / abs(st) for k, st in zip(names, state))
            s2 = 1 + sig_n**2
            cond = (s2 + 2 * abs(order["m"]) + abs(order["q"]) + s2 * abs(order["q_bar"]) / alpha) / order["E"] \
                if mpmath.isfinite(order["E"]) else mpmath.mpf(1)
            residual = max(pub_res / max(cond, 1), g_res, ires)
            rows.append(dict(sol, converged=bool(residual <= tol), residual=residual, iterations=it,
                             m_test=law_out["test"][0], q_test=law_out["test"][1], inner_residual=ires,
                             bias_tm=m1 * mo.W, bias_idg=nu * nu * tr.laws["train"][3][0],
                             bias_odg=nu * nu * tr.laws["test"][3][0],
                             noise_test=law_out["test"][2]["noise_T"] + law_out["test"][2]["noise_R"]))
            parts_rows.append({"q": {k: m1 * v for k, v in parts["q"].items()}, "q_bar": parts["q_bar"],
                               "q0": law_out["train"][2]})
    shape = params.shape

    def col(key, dtype=object):
        arr = np.array([r[key] for r in rows], dtype=dtype)
        return arr.reshape(shape)[()] if shape else arr[0]

    sol_keys = [k for k in rows[0] if k not in ("converged", "residual", "iterations", "m_test", "q_test",
                                                 "inner_residual", "noise_test") and not k.startswith("bias_")]
    parts = {k: {pn: col_parts(parts_rows, k, pn, shape) for pn in d} for k, d in parts_rows[0].items()}
    return SpectrumSolution(params=params, **{k: col(k) for k in sol_keys}, converged=col("converged", bool),
                            residual=col("residual"), iterations=col("iterations", int),
                            branch=_branches(flat["tau"], flat["lam"]).reshape(shape)[()], method="reduced",
                            _parts=parts, spectrum=spectrum, m_test=col("m_test"), q_test=col("q_test"),
                            inner_residual=col("inner_residual"),
                            bias={k: col("bias_" + k) for k in ("tm", "idg", "odg")}, noise_test=col("noise_test"),
                            precision=precision)


def col_parts(rows, k, pn, shape):
    arr = np.array([r[k][pn] for r in rows], dtype=object)
    return arr.reshape(shape)[()] if shape else arr[0]


__all__ = ["solve_spectrum", "SpectrumSolution", "SpectralTransforms", "spectral_transforms"]
