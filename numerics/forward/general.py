r"""The forward saddle point for a general task spectrum: :func:`solve_spectrum`.

Model: pretraining tasks w ~ N(0, Sigma), Sigma = O diag(s) O^T, test tasks with second moment
Sigma' whose diagonal in Sigma's eigenbasis is t (a :class:`TaskSpectrum`). The pool's resolvent
R = (S + nu)^{-1} is replaced by its deterministic equivalent (x Sigma + nu)^{-1}, where x = 1/(1 + delta)
and delta solves the monotone scalar equation (theory: :mod:`lowrank_icl.theory.forward.spectra`)

    F(delta; nu) = delta - ((1 + delta)/kappa) mean_i s_i / (s_i + nu (1 + delta)) = 0.

F is convex in delta, F(0) < 0 and F(m1/(kappa nu)) >= 0 (m1 = mean s), so Newton's method
started at any point right of the root decreases monotonically onto it (kappa = inf: delta = 0, the
pool is the population law). The saddle point then reduces, exactly as for the rank-r model, to

    G(u) = tau - 1 + u g(c + u) - lam kappa / u = 0,   g(nu) = (1/D) tr Rbar = mean (1 + delta)/(s + nu(1 + delta)),

and is solved by the one solver core (:mod:`lowrank_icl.numerics.forward.core`): the same bracket,
Newton step, stopping rule, conjugates, published-equation residual, tolerance and branch labels as
the rank-r model, in float64 or with ``precision=N``. This module is the spectrum's *moment provider*
(:class:`SpectrumPool`): at every outer iterate it re-solves the inner equation (warm-started) and
returns the pool traces, all sums of positive terms over the atoms; at the root it adds the test-law
traces (1/D) tr C S R, tr C S^2 R^2, tr C S R^2, tr C R^2 (no cancellation).

Scale: tasks are used as given (E|w|^2 = D m1). Internally the spectrum is normalized to m1 = 1 with
sigma -> sigma/sqrt(m1), lam -> lam/m1, which leaves Gamma unchanged; errors, m, q, q0, m0, the
training error and nu are reported in the original units. The conjugates (q_hat, ..., chi, chi_bar)
are those of the normalized model (identical to the original ones when m1 = 1, as for every named family).

Size: the work is (points x atoms) per evaluation; float64 evaluates it in blocks of at most
:data:`BLOCK_ELEMENTS` elements (bounded memory), and refuses more than :data:`MAX_WORK` point-atoms
(float64) or :data:`MAX_WORK_MP` (mpmath) up front, with the estimate in the message.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mpmath
import numpy as np

from lowrank_icl.numerics._checks import check_int
from lowrank_icl.numerics.forward import core
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.results import ForwardSolution
from lowrank_icl.numerics.forward.spectrum import TaskSpectrum

BLOCK_ELEMENTS = 1 << 18  # points x atoms per block: 2 MB work arrays, cache-sized
MAX_WORK = 3e9            # float64: points x atoms (~20 passes of ~1 ns each: about a minute)
MAX_WORK_MP = 2e5         # mpmath: points x atoms (~ms per point-atom at 30 digits)


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
    inner_residual: np.ndarray | None = None

    @property
    def g_tilde(self):  # evaluate_explicit reads these rank-r fields; unused with rho = 1
        return self.g

    @property
    def dg_tilde(self):
        return self.dg


_EPS = float(np.finfo(float).eps)


def _inner_solve(nu, inv_k, s, p, delta=None, max_iter=100, with_residual=True, last_step=False):
    """Root delta(nu) of F (module docstring), vectorized over points (nu, inv_k = 1/kappa arrays).

    Newton from the right of the root decreases monotonically (F convex). A warm start left of the
    root is moved right by one Newton step (the tangent of a convex F overshoots) or reset to the
    bound. A point stops at the first iterate where F is zero to rounding (|F| <= 4 eps (its terms),
    or F <= 0 reached from the right), so the traces of that last pass are those of the returned delta.
    Returns (delta, iterations, relative residual |F| / (delta + (1 + delta) h/kappa) or None with
    ``with_residual=False``, sums): ``sums`` are the mean of p/d, p s/d, p/d^2, p s/d^2 over the atoms
    at the returned delta (d = s + nu (1 + delta)), from which :func:`_root_transforms` builds g, g', A1, B1.

    ``last_step=True`` (the root search) also stops after a Newton step of relative size <= 1e-9,
    which leaves an error ~1e-18 (quadratic convergence), and moves the first-order sums to the new
    delta by their derivative (d(1/d)/d delta = -nu/d^2, error ~1e-18); the second-order sums, which
    enter only dG/du, keep their value at the previous iterate (relative error ~1e-9). This saves the
    final pass at every outer iterate.
    """
    nu = np.asarray(nu, dtype=float)
    inv_k = np.broadcast_to(np.asarray(inv_k, dtype=float), nu.shape)
    ps, ps2 = p * s, p * s * s
    upper = float(np.sum(ps)) * inv_k / nu
    delta = upper.copy() if delta is None else np.minimum(np.where(np.isfinite(delta), delta, upper), upper)
    n_it = np.zeros(nu.shape, dtype=int)
    right = np.zeros(nu.shape, dtype=bool)  # has F >= 0 been seen (then the iterates only decrease)
    active = np.ones(nu.shape, dtype=bool)
    sums = np.zeros((4, nu.size))
    resid = np.zeros(nu.shape)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        dl, nn, ik = delta[idx], nu[idx], inv_k[idx]
        y = 1.0 + dl
        buf = np.add(s[None, :], (nn * y)[:, None])
        np.divide(1.0, buf, out=buf)
        h1 = buf.dot(ps)                   # mean s/d
        r_p = buf.dot(p)                   # mean 1/d
        np.multiply(buf, buf, out=buf)
        h2 = buf.dot(ps2)                  # mean s^2/d^2
        r2_p, r2_ps = buf.dot(p), buf.dot(ps)
        del buf
        F = dl - ik * y * h1
        dF = 1.0 - ik * h2
        n_it[idx] += 1
        scale = dl + ik * y * h1
        at_root = (np.abs(F) <= 4 * _EPS * scale) | (right[idx] & (F <= 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = F / dF
        bad = ~at_root & (~np.isfinite(step) | ((F < 0) & (dF <= 0)))
        new = np.where(at_root, dl, np.where(bad, upper[idx], np.maximum(dl - step, 0.0)))
        right[idx] |= F >= 0
        delta[idx] = new
        stop = at_root | ((new == 0.0) & (dl == 0.0))
        if last_step:
            moved = new - dl
            final = ~at_root & ~bad & (np.abs(moved) <= 1e-9 * dl)
            r_p = np.where(final, r_p - nn * moved * r2_p, r_p)
            h1 = np.where(final, h1 - nn * moved * r2_ps, h1)
            stop |= final
        sums[:, idx] = (r_p, h1, r2_p, r2_ps)
        with np.errstate(divide="ignore", invalid="ignore"):
            resid[idx] = np.abs(F) / np.maximum(scale, 1e-300)
        active[idx[stop]] = False
    return delta, n_it, (resid if with_residual else None), sums


def _root_transforms(nu, inv_k, delta, sums):
    """g, g', A1, B1 (the root search's moments) from the sums of :func:`_inner_solve` at its delta
    (the same positive forms as :func:`_transforms`)."""
    r_p, r_ps, r2_p, r2_ps = sums
    y = 1.0 + delta
    dn = 1.0 + inv_k * nu * y * y * r2_ps
    xp = inv_k * y * r2_ps / dn
    return RootTraces(g=y * r_p, dg=y * y * (r2_p + xp * r2_ps), A1=r_ps, B1=(y / dn) * r2_ps)


@dataclass
class RootTraces:
    """The four pool traces the reduced equation needs: g, g', A1 = tr S R, B1 = tr S R^2."""

    g: np.ndarray
    dg: np.ndarray
    A1: np.ndarray
    B1: np.ndarray


def _transforms(nu, inv_k, s, p, laws, delta):
    """All traces at (nu, delta) for the atoms (s, p) and test laws {name: t} (numpy, any number of points)."""
    y = 1.0 + delta
    r1 = np.add(s[None, :], (nu * y)[:, None])
    np.divide(1.0, r1, out=r1)
    ps = p * s
    names = list(laws)
    # columns: p, p s, p s^2, p s^3, then (p t, p t s, p t s^2) per law
    cols1 = [p, ps, ps * s] + [p * laws[k] * s for k in names]
    cols2 = [p, ps, ps * s, ps * s * s] + [c for k in names for c in (p * laws[k], p * laws[k] * s,
                                                                         p * laws[k] * s * s)]
    # one matrix-vector product per column: faster than a thin matrix product on small blocks
    t1 = np.stack([r1.dot(col) for col in cols1], axis=1)
    np.multiply(r1, r1, out=r1)
    t2 = np.stack([r1.dot(col) for col in cols2], axis=1)
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
    delta, _it, _res, _sums = _inner_solve(nu, inv_k, s, spectrum.weights)
    return _transforms(nu, inv_k, s, spectrum.weights, laws, delta)



# ----------------------------------------------------------------------------------------------
# the moment provider

class SpectrumPool:
    r"""Moment provider of a general spectrum for :func:`lowrank_icl.numerics.forward.core.solve_core`.

    ``params`` are the normalized flat parameters (rho = 1, sigma/sqrt(m1), lam/m1); ``moments(nu, sel)``
    solves the inner equation at each nu (warm-started from the last delta of that point) and returns
    the :class:`SpectralTransforms`; ``finish`` adds the train and test laws at the root, restores the
    original units and returns the inner equation's residual as an extra residual.
    """

    def __init__(self, params: ForwardParams, spectrum: TaskSpectrum, be):
        self.be, self.spectrum = be, spectrum
        flat = {k: np.ravel(v) for k, v in params.broadcast().items()}
        if be.precision is None:
            self.m1 = spectrum.train_mean
            self.s, self.w = spectrum.train / self.m1, spectrum.weights
            self.laws = {"train": spectrum.train, "test": spectrum.test}
            self.means = {"train": self.m1, "test": spectrum.test_mean}
        else:
            self.m1, self.s, self.w, self.laws = _mp_atoms(spectrum)
            self.means = {k: np.sum(self.w * v) for k, v in self.laws.items()}
        p = {k: be.array(v) for k, v in flat.items()}
        p["rho"] = be.array(np.ones_like(flat["rho"]))
        root_m1 = mpmath.sqrt(self.m1) if be.precision else np.sqrt(self.m1)
        p["sigma"], p["lam"] = p["sigma"] / root_m1, p["lam"] / self.m1
        self.params = p
        self.c = (1 + p["sigma"] ** 2) / p["alpha"]
        self.lk = core.lam_kappa(p["lam"], p["kappa"])
        self.inv_k = 1 / p["kappa"]  # 0 at kappa = inf: delta = 0, the pool is the population law
        n = flat["alpha"].size
        self.delta = np.full(n, np.nan) if be.precision is None else np.array([None] * n, dtype=object)

    def _blocks(self, sel):
        step = max(1, BLOCK_ELEMENTS // self.s.size)
        return [slice(i, i + step) for i in range(0, len(sel), step)] or [slice(0, 0)]

    def _solve(self, nu, sel, laws):
        """Inner root and traces at nu for the points sel (:class:`SpectralTransforms` with inner_residual)."""
        if self.be.precision is not None:
            deltas, res = [], []
            for v, ik in zip(nu, self.inv_k[sel]):
                d, r = _inner_solve_mp(v, ik, self.s, self.w)
                deltas.append(d)
                res.append(r)
            delta = np.array(deltas or [], dtype=object)
            self.delta[sel] = delta
            tr = _transforms(nu, self.inv_k[sel], self.s, self.w, laws, delta)
            tr.inner_residual = self.be.to_float(np.array(res or [], dtype=object))
            return tr
        nu = np.asarray(nu, dtype=float)
        parts, resid = [], []
        for blk in self._blocks(sel):
            ix = sel[blk]
            d, _it, r, _sums = _inner_solve(nu[blk], self.inv_k[ix], self.s, self.w, self.delta[ix])
            self.delta[ix] = d
            parts.append(_transforms(nu[blk], self.inv_k[ix], self.s, self.w, laws, d))
            resid.append(r)
        fields = {k: np.concatenate([getattr(t, k) for t in parts]) for k in
                  ("delta", "g", "dg", "A1", "B1", "A2", "Mm", "Q3", "W")}
        law_vals = {k: tuple(np.concatenate([t.laws[k][j] for t in parts]) for j in range(4)) for k in laws}
        return SpectralTransforms(**fields, laws=law_vals, inner_residual=np.concatenate(resid))

    def moments(self, nu, sel):
        """Every pool trace, the test-law traces and the inner residual at nu (points sel)."""
        return self._solve(nu, sel, self.laws)

    def state_moments(self, nu, sel):
        """The pool traces alone (the residual test's evaluation at the state's z)."""
        return self._solve(nu, sel, {})

    def root_moments(self, nu, sel):
        if self.be.precision is not None:
            return self.moments(nu, sel)
        nu = np.asarray(nu, dtype=float)
        out = [np.empty(len(sel)) for _ in range(4)]
        for blk in self._blocks(sel):
            ix = sel[blk]
            d, _it, _r, sums = _inner_solve(nu[blk], self.inv_k[ix], self.s, self.w, self.delta[ix],
                                            with_residual=False, last_step=True)
            self.delta[ix] = d
            tr = _root_transforms(nu[blk], self.inv_k[ix], d, sums)
            for o, v in zip(out, (tr.g, tr.dg, tr.A1, tr.B1)):
                o[blk] = v
        return RootTraces(*out)

    def finish(self, sol, parts, order, mo, u):
        be, m1 = self.be, self.m1
        nu = sol["nu"]
        tr, inner_res = mo, mo.inner_residual
        c, f = self.c, order["f"]
        law_parts = {}
        for k in self.laws:
            m_l, s2r2, sr2, e2 = tr.laws[k]
            law_parts[k] = {"signal": s2r2, "noise_T": f * sr2, "noise_R": f * c * e2, "misfit": nu * nu * e2,
                            "mean": self.means[k], "m": m_l}
        out = dict(sol)
        out.update(q=m1 * sol["q"], m=m1 * sol["m"], training_error=m1 * sol["training_error"], nu=m1 * nu,
                   m0=law_parts["train"]["m"],
                   q0=law_parts["train"]["signal"] + law_parts["train"]["noise_T"] + law_parts["train"]["noise_R"])
        q_parts = {k: m1 * v for k, v in parts["q"].items() if k != "misfit"}
        split = ("signal", "noise_T", "noise_R")
        new_parts = {"q": q_parts, "q_bar": {k: parts["q_bar"][k] for k in split},
                     "q0": {k: law_parts["train"][k] for k in split},
                     "errors": {"tm": dict(q_parts, misfit=m1 * mo.W, mean=m1),
                                "idg": {k: law_parts["train"][k] for k in ("noise_T", "noise_R", "misfit", "mean")},
                                "odg": {k: law_parts["test"][k] for k in ("noise_T", "noise_R", "misfit", "mean")}}}
        test = law_parts["test"]
        more = {"spectrum": self.spectrum, "m_test": test["m"],
                "q_test": test["signal"] + test["noise_T"] + test["noise_R"],
                "inner_residual": inner_res, "extra_residual": inner_res}
        return out, new_parts, more


# ----------------------------------------------------------------------------------------------
# results

@dataclass(frozen=True, repr=False)
class SpectrumSolution(ForwardSolution):
    r"""A :class:`ForwardSolution` for a general task spectrum (same fields, same tolerance rule).

    Beyond the rank-r fields: m0, q0 are the order parameters of the train law (IDG: tr(Gamma Sigma)/D,
    tr(Gamma Sigma Gamma^T)/D), ``m_test``, ``q_test`` those of the test law Sigma', ``inner_residual``
    the relative residual of the deterministic-equivalent equation at the root (also included in
    ``residual``). ``errors()`` gives TM, IDG (train law) and "odg" on the test law t (isotropic for
    the named families unless a test law is chosen).

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

    def parameters(self) -> dict:
        """The inputs: alpha, tau, kappa, sigma, lam and the spectrum (its atoms)."""
        return {**{k: getattr(self.params, k) for k in ("alpha", "tau", "kappa", "sigma", "lam")},
                "spectrum": self.spectrum.to_dict()}

    def _describe(self) -> str:
        return f", spectrum={self.spectrum.size} atoms"


def check_spectrum_size(spectrum: TaskSpectrum, points: int, precision: int | None) -> None:
    """Refuse a solve whose points x atoms work exceeds :data:`MAX_WORK` (float64) or :data:`MAX_WORK_MP`."""
    work = float(points) * spectrum.size
    limit = MAX_WORK if precision is None else MAX_WORK_MP
    if work > limit:
        mode = "float64" if precision is None else f"precision={precision}"
        raise ValueError(f"spectrum of {spectrum.size} atoms at {points} points is {work:.3g} point-atoms, above the "
                         f"{mode} limit {limit:.0e} (estimated over a minute of work): use fewer atoms (merge atoms "
                         "into cells of equal weight) or fewer points")


def solve_spectrum(alpha, tau, kappa, sigma=0.0, lam=0.0, *, spectrum: TaskSpectrum,
                   precision: int | None = None, max_iter: int | None = None) -> SpectrumSolution:
    r"""Solve the forward saddle point for the task spectrum ``spectrum`` (see the module docstring).

    Parameters broadcast (alpha > 0, tau > 0, kappa > 0 or inf, sigma >= 0 the label-noise std,
    lam >= 0 the ridge, penalty lam M0 ||Gamma||_F^2; lam = 0 at kappa = inf). ``precision=N`` runs
    in mpmath with N digits. ``solve(..., spectrum=TaskSpectrum.low_rank(rho))`` equals
    ``solve(..., rho=rho)``. Returns a :class:`SpectrumSolution`.
    """
    if not isinstance(spectrum, TaskSpectrum):
        raise ValueError(f"spectrum must be a TaskSpectrum (got {type(spectrum).__name__})")
    params = ForwardParams(alpha=alpha, tau=tau, kappa=kappa, rho=1.0, sigma=sigma, lam=lam)
    precision = core.check_precision(precision)
    max_iter = check_int("max_iter", max_iter or 200, lower=1)
    points = int(np.prod(params.shape, dtype=int))
    check_spectrum_size(spectrum, points, precision)
    if precision is None:
        _check_representable({k: np.ravel(v) for k, v in params.broadcast().items()}, spectrum.train_mean)
    be = core.backend(precision)
    with be.context():
        pool = SpectrumPool(params, spectrum, be)
    return core.solve_core(pool, be, max_iter, params, solution_type=SpectrumSolution)


def _check_representable(p, m1):
    """Refuse inputs whose effective ridge leaves [1e-150, 1e150] (normalized units): the positive forms
    multiply nu^2 and (1 + delta)^2 ~ nu^-2 terms, which overflow float64 beyond that (use precision=)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        c = (1 + p["sigma"] ** 2 / m1) / p["alpha"]
        lk = np.where(p["lam"] > 0, p["lam"] / m1 * p["kappa"], 0.0)
        hi = c + 2 * (1 + c + lk) / p["tau"]
    if np.any(c < 1e-150):
        raise ValueError("(mean(s) + sigma^2)/(mean(s) alpha) must be >= 1e-150 for float64 "
                         f"(got alpha up to {np.max(p['alpha']):g}); use precision=")
    if np.any(~(hi <= 1e150)):
        raise ValueError("the effective ridge bound c + 2 (1 + c + lam kappa/mean(s))/tau, c = (1 + sigma^2/mean(s))/alpha, "
                         "must be <= 1e150 for float64 (small alpha or tau, or large sigma or lam kappa); use precision=")


# ----------------------------------------------------------------------------------------------
# mpmath atoms and inner equation

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



__all__ = ["solve_spectrum", "SpectrumSolution", "SpectrumPool", "SpectralTransforms", "spectral_transforms",
           "check_spectrum_size", "MAX_WORK", "MAX_WORK_MP"]
