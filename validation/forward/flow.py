r"""Exact finite-D gradient flow (and gradient descent) of the reduced linear-attention model.

Objective on the pretraining data of :mod:`lowrank_icl.validation.forward.sampling` (features
H_mu = x_mu h_mu^T, design Phi of shape M x D^2):

    F(Gamma) = (1/M) [ sum_mu (y_mu - <Gamma, H_mu>_F)^2 + lam M0 ||Gamma||_F^2 ]
             = vec(Gamma)^T K vec(Gamma) - 2 b^T vec(Gamma) + y^T y / M,
    K = (Phi^T Phi + lam M0 I)/M,   b = Phi^T y / M,   grad F = 2 (K Gamma - b).

Gradient flow in the time in which the Hessian is O(1) as D grows, from zero:

    dGamma/dt = -(D/2) grad F = -(D K Gamma - D b),   Gamma(0) = 0
    =>  Gamma(t) = f_t(D K) D b,   f_t(x) = (1 - exp(-t x)) / x     (f_t(0) = t).

Gradient descent with step eta, Gamma_{k+1} = Gamma_k - eta (D/2) grad F(Gamma_k), time t = k eta:

    Gamma_k = f^{GD}_k(D K) D b,   f^{GD}_k(x) = (1 - (1 - eta x)^k) / x,

stable (every mode contracts) iff eta < 2 / (D lambda_max(K)) (:func:`largest_stable_step`).
t -> infinity (k -> infinity) gives f = 1/x, i.e. Gamma = K^{-1} b: the ridge solution of
:func:`lowrank_icl.validation.forward.ridge.fit_ridge` (at lam = 0 with M < D^2, the component of b
in the null space of K is zero, so f(0) never enters and the limit is the minimum-norm interpolator).

Every curve is a spectral function of D K applied to D b. :func:`spectral_basis` writes
f(D K) D b = sum_j f(theta_j) c_j B_j once, for every f and every time:

* ``"eigh"`` (D <= 40): the dense D^2 x D^2 matrix D K and its eigendecomposition (exact);
* ``"lanczos"`` (matrix-free, any D): Lanczos on D K started at D b, with full reorthogonalization,
  applies of K through :func:`lowrank_icl.validation.forward.ridge.normal_apply` (O(M D^2) each, the
  D^2 x D^2 matrix is never formed). After k steps f(DK) Db ~ ||Db|| V_k f(T_k) e_1; with
  T_k = Q diag(theta) Q^T the Ritz values theta_j, Ritz vectors B_j = (V_k Q)_j and c_j = ||Db|| Q_{1j}
  give the same representation. Lanczos stops when the t = infinity curve (f = 1/x, the hardest: for
  every t the function f_t is entire and f_t <= 1/x) has relative normal-equation residual
  ||D K Gamma_inf - D b|| / ||D b|| = beta_k |e_k^T T_k^{-1} e_1| ||Db|| / ||Db|| <= tol; ``residual`` is
  that number recomputed with one extra apply.

The order parameters of Gamma(t) for a test law C (factor F, C = F F^T) are then
m_C(t) = sum_j Y_tj l_j and q_C(t) = sum_jk Y_tj G_jk Y_tk with Y_tj = f_t(theta_j) c_j,
l_j = tr(B_j C)/D, G_jk = tr(B_j C B_k^T)/D: the cost of all times together is that of one basis.
Test errors use the exact finite-D formula of :func:`lowrank_icl.theory.error_from_summaries`.

Public API
----------
- :func:`flow_basis` / :func:`spectral_basis` -- the spectral representation of one data set.
- :func:`flow_gamma`, :func:`descent_gamma` -- Gamma(t) (flow) or Gamma_k (GD) from a basis.
- :func:`explicit_descent` -- reference gradient descent by explicit iteration (checks only).
- :func:`largest_stable_step` -- 2 / (D lambda_max(K)).
- :func:`simulate_flow` -> :class:`FlowSimulation` -- per-seed order parameters and exact test
  errors along the flow (or along gradient descent with ``steps=``/``lr=``).
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass

import numpy as np
from lowrank_icl.numerics.results import ConvergenceReport
from lowrank_icl.numerics.utils import check_int, check_real, check_seeds, single_threaded_blas
from lowrank_icl.theory import SecondMoment, error_from_summaries
from lowrank_icl.validation.forward.ridge import design_matrix, normal_apply, normal_rhs
from lowrank_icl.validation.forward.sampling import Sizes, sample_pretraining
from lowrank_icl.validation.stats import Estimate

EIGH_MAX_DIM = 40          # dense D^2 x D^2 eigendecomposition up to here (D^2 = 1600)
_ORDER = ("q", "m", "q_bar", "m_bar", "q0", "m0")


# ----------------------------------------------------------------------------------------------
# spectral representation f(DK) Db = sum_j f(theta_j) c_j B_j

@dataclass(frozen=True, repr=False)
class SpectralBasis(ConvergenceReport):
    """f(D K) D b = sum_j f(theta_j) c_j B_j for every scalar function f (see the module docstring).

    ``basis`` (n, D, D) orthonormal in the Frobenius product, ``theta`` (n,) eigen/Ritz values of D K,
    ``coef`` (n,) the c_j. ``method`` "eigh" or "lanczos"; ``residual`` the relative normal-equation
    residual of the t = infinity solution; ``converged`` whether it met ``tol``; ``applies`` (also
    ``iterations``) the number of matrix-free applies of K (0 for eigh); ``reason`` "" when converged.

    Attributes
    ----------
    basis, theta, coef : ndarray
        The modes, their eigen/Ritz values and coefficients.
    method : str
        'eigh' or 'lanczos'.
    residual : float
        Relative normal-equation residual of the t = infinity solution.
    converged : bool
        Whether it met the tolerance.
    applies : int
        Matrix-free applies of K.
    lam_max : float
        Largest eigenvalue of D K found.
    """

    basis: np.ndarray
    theta: np.ndarray
    coef: np.ndarray
    method: str
    residual: float
    converged: bool
    applies: int
    lam_max: float

    @property
    def iterations(self) -> int:
        return int(self.applies)

    @property
    def reason(self) -> str:
        return "" if self.converged else (f"the t = inf solution's normal-equation residual {self.residual:.2g} "
                                          "is above the tolerance")

    def to_dict(self) -> dict:
        """JSON document of the basis's diagnostics (not its modes): size, method, convergence words."""
        from lowrank_icl.numerics.utils import json_document
        return json_document({"dim": int(self.basis.shape[-1])}, {
            "modes": int(self.theta.size), "method": self.method, "lam_max": self.lam_max,
            "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations})

    def __repr__(self) -> str:
        return (f"SpectralBasis(method={self.method!r}, modes={self.theta.size}, converged={self.converged}, "
                f"residual={self.residual:.1e})")

    def combine(self, values) -> np.ndarray:
        """sum_j values[..., j] c_j B_j for values of shape (..., n): Gammas of shape (..., D, D)."""
        v = np.asarray(values, dtype=float) * self.coef
        return np.tensordot(v, self.basis, axes=([-1], [0]))


def _flow_scales(data: "object", lam: float, n_tasks: int):
    M, dim = data.x.shape
    return dim / M, lam * n_tasks


def _eigh_basis(data, lam, n_tasks) -> SpectralBasis:
    scale, penalty = _flow_scales(data, lam, n_tasks)
    dim = data.x.shape[1]
    Phi = design_matrix(data.x, data.h)
    A = scale * (Phi.T @ Phi)
    A[np.diag_indices_from(A)] += scale * penalty
    rhs = scale * (Phi.T @ data.y)
    theta, V = np.linalg.eigh(A)
    coef = V.T @ rhs
    # modes with theta ~ 0 (null space of Phi at lam = 0) carry no part of Db: drop them
    floor = theta.max() * A.shape[0] * np.finfo(float).eps
    keep = theta > floor
    lost = float(np.linalg.norm(coef[~keep]) / max(np.linalg.norm(coef), 1e-300))
    theta, V, coef = theta[keep], V[:, keep], coef[keep]
    g_inf = V @ (coef / theta)
    res = float(np.linalg.norm(A @ g_inf - rhs) / np.linalg.norm(rhs))
    res = max(res, lost)
    return SpectralBasis(basis=V.T.reshape(-1, dim, dim), theta=theta, coef=coef, method="eigh",
                         residual=res, converged=bool(res < 1e-8), applies=0, lam_max=float(theta.max()))


def _lanczos_basis(data, lam, n_tasks, tol, max_steps) -> SpectralBasis:
    scale, penalty = _flow_scales(data, lam, n_tasks)
    X, H = np.ascontiguousarray(data.x, float), np.ascontiguousarray(data.h, float)
    dim = X.shape[1]

    def apply(G):
        return scale * normal_apply(X, H, G, penalty)
    rhs = scale * normal_rhs(X, H, data.y)
    beta0 = float(np.linalg.norm(rhs))
    V = [rhs / beta0]
    alphas, betas = [], []
    applies = 0
    converged = False
    for k in range(max_steps):
        w = apply(V[-1])
        applies += 1
        a = float(np.vdot(V[-1], w))
        w = w - a * V[-1] - (betas[-1] * V[-2] if betas else 0.0)
        for _ in range(2):  # full reorthogonalization (twice is enough)
            for v in V:
                w -= np.vdot(v, w) * v
        alphas.append(a)
        b = float(np.linalg.norm(w))
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        e1 = np.zeros(len(alphas))
        e1[0] = 1.0
        y = np.linalg.solve(T, e1)
        est = b * abs(y[-1])          # ||A V y beta0 - b|| / beta0 (Lanczos relation)
        if est <= tol or b <= 1e-14 * beta0 or k == dim * dim - 1:
            converged = True
            break
        betas.append(b)
        V.append(w / b)
    theta, Q = np.linalg.eigh(T)
    B = np.tensordot(Q.T, np.asarray(V[:len(alphas)]), axes=([1], [0]))
    coef = beta0 * Q[0]
    g_inf = np.tensordot(coef / theta, B, axes=([0], [0]))
    res = float(np.linalg.norm(apply(g_inf) - rhs) / beta0)
    applies += 1
    return SpectralBasis(basis=B, theta=theta, coef=coef, method="lanczos", residual=res,
                         converged=bool(converged and res <= max(10 * tol, 1e-8)), applies=applies,
                         lam_max=float(theta.max()))


def spectral_basis(data, lam: float, n_tasks: int, *, method: str = "auto", tol: float = 1e-10,
                   max_steps: int = 2000) -> SpectralBasis:
    """The spectral representation of one pretraining data set (module docstring).

    Parameters
    ----------
    data : PretrainingData
        From :func:`lowrank_icl.validation.forward.sampling.sample_pretraining`.
    lam : float
        Ridge, penalty lam M0 ||Gamma||_F^2 (>= 0).
    n_tasks : int
        M0 (1 with lam = 0 at kappa = inf: only lam M0 enters).
    method : {"auto", "eigh", "lanczos"}
        "auto": eigh for D <= 40, lanczos above.
    tol : float
        Lanczos stopping rule: relative residual of the t = infinity solution.

    Returns
    -------
    SpectralBasis
    """
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    n_tasks = check_int("n_tasks", n_tasks, lower=1)
    if method not in ("auto", "eigh", "lanczos"):
        raise ValueError(f"method must be 'auto', 'eigh' or 'lanczos' (got {method!r})")
    dim = data.x.shape[1]
    max_steps = check_int("max_steps", max_steps, lower=1)
    # one BLAS thread: multithreaded BLAS loses 4-10x on a busy small machine (see ridge.fit_ridge)
    with single_threaded_blas():
        if method == "eigh" or (method == "auto" and dim <= EIGH_MAX_DIM):
            if dim > 2 * EIGH_MAX_DIM:
                raise ValueError(f"method='eigh' needs dim <= {2 * EIGH_MAX_DIM} (got {dim}); use 'lanczos'")
            return _eigh_basis(data, lam, n_tasks)
        return _lanczos_basis(data, lam, n_tasks, float(tol), max_steps)


flow_basis = spectral_basis


def flow_weights(theta, times) -> np.ndarray:
    """f_t(theta) = (1 - exp(-t theta))/theta for times (T,) and values (n,): shape (T, n); t = inf gives 1/theta."""
    t = np.asarray(times, dtype=float)[:, None]
    th = np.asarray(theta, dtype=float)[None, :]
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.where(np.isinf(t), 1.0 / th, -np.expm1(-t * th) / th)
    return out


def descent_weights(theta, steps, lr: float) -> np.ndarray:
    """f_k(theta) = (1 - (1 - lr theta)^k)/theta for step counts (T,): shape (T, n)."""
    k = np.asarray(steps, dtype=float)[:, None]
    th = np.asarray(theta, dtype=float)[None, :]
    x = lr * th
    with np.errstate(invalid="ignore", divide="ignore"):
        # 1 - (1 - x)^k without cancellation where 0 < x < 1; plain powers where 1 - x <= 0
        small = -np.expm1(k * np.log1p(-np.minimum(x, 0.5)))
        large = 1.0 - np.power(1.0 - x, k)
    return np.where(x < 0.5, small, large) / th


def flow_gamma(basis: SpectralBasis, times) -> np.ndarray:
    """Gamma(t) of the gradient flow at each time: shape (T, D, D)."""
    return basis.combine(flow_weights(basis.theta, np.atleast_1d(times)))


def descent_gamma(basis: SpectralBasis, steps, lr: float) -> np.ndarray:
    """Gamma_k of gradient descent with step ``lr`` after each number of steps: shape (T, D, D)."""
    return basis.combine(descent_weights(basis.theta, np.atleast_1d(steps), lr))


def largest_stable_step(basis: SpectralBasis) -> float:
    """2 / (D lambda_max(K)): gradient descent on F converges iff its step is below this."""
    return 2.0 / basis.lam_max


def explicit_descent(data, lam: float, n_tasks: int, lr: float, steps: int, record=()) -> dict:
    """Reference: run Gamma_{k+1} = Gamma_k - lr (D/2) grad F(Gamma_k) step by step from 0.

    grad F = 2 (K Gamma - b) is applied matrix-free (ridge.normal_apply). Returns {k: Gamma_k} for
    k in ``record`` (and ``steps``). For checks at small D only (cost O(steps M D^2)).
    """
    scale, penalty = _flow_scales(data, lam, n_tasks)
    X, H = data.x, data.h
    rhs = scale * normal_rhs(X, H, data.y)
    G = np.zeros_like(rhs)
    want = set(int(k) for k in record) | {int(steps)}
    out = {0: G.copy()} if 0 in want else {}
    for k in range(1, int(steps) + 1):
        G = G - lr * (scale * normal_apply(X, H, G, penalty) - rhs)
        if k in want:
            out[k] = G.copy()
    return out


# ----------------------------------------------------------------------------------------------
# order parameters along a curve, for all times at once

def _law_tables(basis: SpectralBasis, moment: SecondMoment | None):
    """(l_j, G_jk, t) of one test law: l_j = tr(B_j C)/D, G_jk = tr(B_j C B_k^T)/D, t = tr C/D."""
    B = basis.basis
    n, dim, _ = B.shape
    if moment is None:
        flat = B.reshape(n, -1)
        return np.trace(B, axis1=1, axis2=2) / dim, (flat @ flat.T) / dim, 1.0
    F = moment.data
    BF = np.einsum("jab,bk->jak", B, F).reshape(n, -1)
    lin = np.einsum("ak,jak->j", F, BF.reshape(n, dim, -1)) / dim
    return lin, (BF @ BF.T) / dim, float(np.sum(F * F)) / dim


def curve_summaries(basis: SpectralBasis, weights, pool, subspace) -> dict:
    """Order parameters of Gamma = sum_j weights[:, j] c_j B_j for each row of ``weights`` (T, n).

    Returns arrays of shape (T,): q, m (pool law; ``pool`` None = kappa infinite: the subspace law),
    q0, m0 (subspace law), q_bar, m_bar (isotropic), and the scalar t_tm = tr S/D.
    """
    Y = np.asarray(weights, dtype=float) * basis.coef
    out = {}
    laws = {"sub": SecondMoment.subspace(subspace), "iso": None}
    if pool is not None:
        laws["pool"] = SecondMoment.pool(pool)
    vals = {}
    for name, law in laws.items():
        lin, gram, t = _law_tables(basis, law)
        vals[name] = (Y @ lin, np.einsum("tj,jk,tk->t", Y, gram, Y), t)
    pool_vals = vals.get("pool", (vals["sub"][0], vals["sub"][1], 1.0))
    out.update(m=pool_vals[0], q=pool_vals[1], t_tm=pool_vals[2], m0=vals["sub"][0], q0=vals["sub"][1],
               m_bar=vals["iso"][0], q_bar=vals["iso"][1])
    return out


# ----------------------------------------------------------------------------------------------
# many seeds

@dataclass(frozen=True, repr=False)
class FlowSimulation(ConvergenceReport):
    """Order parameters and exact test errors of trained Gammas along the flow (or GD), per seed.

    ``times`` (T,) the training times (GD: k lr); each order parameter an Estimate over seeds whose
    values have shape (T,). ``residual`` the largest relative residual of the t = infinity solution
    over seeds, ``converged`` whether every spectral basis met its tolerance. ``lr``/``steps`` are set
    for gradient descent, with ``lr_max`` = min over seeds of 2/(D lambda_max(K)). ``iterations`` is
    the largest number of matrix-free applies of K over seeds (0 for the dense eigendecomposition),
    ``reason`` "" when converged, else what failed; ``message`` one line.

    Attributes
    ----------
    sizes : Sizes
        D, L, M, M0, r.
    params : dict
        The model parameters.
    seeds : tuple of int
        Pretraining draws.
    times : ndarray
        Training times (gradient descent: k lr).
    q, m, q_bar, m_bar, q0, m0, t_tm : Estimate
        Order parameters over seeds, values of shape (seeds, T).
    converged, residual, reason, iterations : bool, float, str, int
        Diagnostics of the spectral bases (above).
    methods : tuple of str
        'eigh' and/or 'lanczos'.
    seconds : float
        Wall-clock time.
    lr, steps, lr_max : float, ndarray, float or None
        Gradient descent settings and the largest stable step.
    """

    sizes: Sizes
    params: dict
    seeds: tuple
    times: np.ndarray
    q: Estimate
    m: Estimate
    q_bar: Estimate
    m_bar: Estimate
    q0: Estimate
    m0: Estimate
    t_tm: Estimate
    converged: bool
    residual: float
    methods: tuple
    seconds: float
    lr: float | None = None
    steps: np.ndarray | None = None
    lr_max: float | None = None
    reason: str = ""
    iterations: int = 0

    def errors(self, alpha_test=None, sigma_test=None):
        """Exact e(Gamma(t)) per seed: :class:`~lowrank_icl.validation.stats.EstimatedErrors` whose tm,
        idg, odg Estimates have values of shape (seeds, T) (one curve per seed)."""
        from lowrank_icl.validation.stats import EstimatedErrors
        D = self.sizes.dim
        a_t = float(self.params["alpha"] if alpha_test is None else alpha_test)
        s_t = float(self.params["sigma"] if sigma_test is None else sigma_test)
        Lt = max(1.0, np.floor(a_t * D + 0.5))
        qb = np.asarray(self.q_bar.values)
        n = len(self.seeds)

        def err(t, m, q):
            return Estimate.of(error_from_summaries(np.asarray(t)[:, None], np.asarray(m.values),
                                                    np.asarray(q.values), qb, D, Lt, s_t))
        return EstimatedErrors(tm=err(self.t_tm.values, self.m, self.q), idg=err(np.ones(n), self.m0, self.q0),
                               odg=err(np.ones(n), self.m_bar, self.q_bar))

    def to_dict(self, alpha_test=None, sigma_test=None) -> dict:
        """JSON document: ``parameters``, ``version``, ``time`` beside ``errors`` (mean, sem, values per
        protocol and time), the integer sizes, ``converged``, ``residual`` and, for gradient descent,
        ``lr``, ``steps`` and ``lr_max``."""
        from lowrank_icl.numerics.utils import json_document
        s = self.sizes
        return json_document({**self.params, "dim": s.dim, "seeds": list(self.seeds)}, {
            "time": self.times, "errors": self.errors(alpha_test, sigma_test).to_dict(),
            "sizes": {"D": s.dim, "L": s.context_length, "M": s.n_prompts,
                      "M0": "inf" if s.fresh_tasks else s.n_tasks, "r": s.rank},
            "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations, "methods": list(self.methods),
            "lr": self.lr, "steps": self.steps, "lr_max": self.lr_max, "seconds": self.seconds})

    def __repr__(self) -> str:
        s = self.sizes
        return (f"FlowSimulation(D={s.dim}, {len(self.seeds)} seeds, {self.times.size} times, "
                f"converged={self.converged}, residual={self.residual:.1e})")


def simulate_flow(*, dim, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, time=None, steps=None, lr=None,
                  seeds=range(5), method: str = "auto", tol: float = 1e-10) -> FlowSimulation:
    """Exact finite-D gradient flow (``time=``) or gradient descent (``steps=``, ``lr=``) for each seed.

    Parameters
    ----------
    dim, alpha, tau, kappa, rho, sigma, lam : model parameters as in ``simulate`` (scalars).
    time : float or array
        Training times t >= 0 (``inf`` allowed: the ridge solution).
    steps, lr : array of int, float
        Gradient descent instead of the flow: numbers of steps k and the step eta (time k eta).
        ``lr`` must be below the largest stable step 2/(D lambda_max(K)) of every seed.
    seeds : count or sequence of distinct integers (the draws of ``sample_pretraining``).
    method, tol : see :func:`spectral_basis`.

    Returns
    -------
    FlowSimulation
    """
    if (time is None) == (steps is None):
        raise ValueError("give time= (gradient flow) or steps= with lr= (gradient descent)")
    if steps is not None:
        if lr is None:
            raise ValueError("steps= needs lr= (the gradient-descent step eta)")
        lr = float(check_real("lr", lr, lower=0.0))
        steps = np.atleast_1d(np.asarray(steps))
        if steps.ndim != 1 or np.any(steps < 0) or np.any(steps != np.floor(steps)):
            raise ValueError("steps must be nonnegative integers")
        times = steps * lr
    else:
        times = np.atleast_1d(np.asarray(time, dtype=float))
        if times.ndim != 1 or np.any(np.isnan(times)) or np.any(times < 0):
            raise ValueError("time must be a scalar or 1-D array of values >= 0 (inf allowed)")
    seeds = check_seeds(seeds)
    s = Sizes.from_ratios(dim, alpha, tau, kappa, rho)
    if s.fresh_tasks and float(lam) != 0.0:
        raise ValueError("kappa = inf needs lam = 0 (the penalty lam M0 ||Gamma||^2 grows without bound)")
    start = _time.perf_counter()
    rows, residuals, ok, methods, lr_max, applies = [], [], True, set(), np.inf, 0
    for seed in seeds:
        data = sample_pretraining(s, sigma, seed)
        basis = spectral_basis(data, lam, s.n_tasks or 1, method=method, tol=tol)
        lr_max = min(lr_max, largest_stable_step(basis))
        if steps is not None:
            if lr >= largest_stable_step(basis):
                raise ValueError(f"lr = {lr:g} is not below the largest stable step 2/(D lambda_max(K)) = "
                                 f"{largest_stable_step(basis):.6g} of seed {seed}")
            w = descent_weights(basis.theta, steps, lr)
        else:
            w = flow_weights(basis.theta, times)
        rows.append(curve_summaries(basis, w, data.pool, data.subspace))
        residuals.append(basis.residual)
        ok &= basis.converged
        applies = max(applies, basis.applies)
        methods.add(basis.method)
    est = {k: Estimate.of([r[k] for r in rows]) for k in (*_ORDER, "t_tm")}
    params = dict(alpha=float(alpha), tau=float(tau), kappa=float(kappa), rho=float(rho), sigma=float(sigma),
                  lam=float(lam))
    return FlowSimulation(sizes=s, params=params, seeds=seeds, times=times, **est, converged=bool(ok),
                          residual=float(max(residuals)), methods=tuple(sorted(methods)),
                          seconds=_time.perf_counter() - start, lr=lr, steps=steps,
                          lr_max=float(lr_max) if steps is not None else None, iterations=applies,
                          reason="" if ok else (f"a spectral basis did not reach its tolerance {tol:g} "
                                                f"(largest t = inf residual {max(residuals):.2g})"))


__all__ = ["SpectralBasis", "spectral_basis", "flow_basis", "flow_weights", "descent_weights", "flow_gamma",
           "descent_gamma", "largest_stable_step", "explicit_descent", "curve_summaries", "FlowSimulation",
           "simulate_flow", "EIGH_MAX_DIM"]


def parse_times(text: str) -> np.ndarray:
    """Training times from the command line: "T1,T2,..." (floats >= 0, ``inf`` allowed), in the given order."""
    try:
        values = np.array([float(v) for v in str(text).split(",") if v.strip()], dtype=float)
    except ValueError:
        raise ValueError(f"--time must be a comma-separated list of times >= 0 (got {text!r})") from None
    if values.size == 0 or np.any(np.isnan(values)) or np.any(values < 0):
        raise ValueError(f"--time must be a comma-separated list of times >= 0 (got {text!r})")
    return values


def print_curves(times, errors, header: str) -> None:
    """Text table of learning curves: one row per time with tm, idg, odg (means ± SE for estimates)."""
    print(header)
    print(f"  {'time':>10s}  {'tm':>18s}  {'idg':>18s}  {'odg':>18s}")
    for i, t in enumerate(np.atleast_1d(times)):
        cells = []
        for k in ("tm", "idg", "odg"):
            v = getattr(errors, k)
            if hasattr(v, "sem"):   # an Estimate (simulation); arrays have a mean() method too
                cells.append(f"{np.atleast_1d(v.mean)[i]:.6g} ± {np.atleast_1d(v.sem)[i]:.2g}")
            else:
                cells.append(f"{np.ravel(v)[i]:.10g}")
        print(f"  {t:>10.4g}  " + "  ".join(f"{c:>18s}" for c in cells))
