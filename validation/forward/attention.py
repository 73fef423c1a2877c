r"""Full one-layer linear self-attention trained on the pretraining prompts, and its reduction.

Model
-----
Tokens z_l = (x_l, y_l) in R^{D+1} for the L context tokens and the query token
z_q = (x_{L+1}, 0). With a value matrix V and a key-query matrix W = K^T Q (both (D+1) x (D+1)),
the output read at the query's label slot is

    yhat = e_{D+1}^T V S W z_q,      S = (D/L) sum_{l<=L} z_l z_l^T   (the query token is not summed).

The factor D/L (instead of the usual 1/L) makes the reduced model an exact special case with no
rescaling: the blocks of S are S_xx = (D/L) sum x x^T (~ I), S_xy = h = (D/L) sum y_l x_l (the
reduced feature) and S_yy = (D/L) sum y_l^2 (~ D (1 + sigma^2)). Only the last row of V,
v = (v_x, v_y), and the first D columns of W, [W_xx; w_yx^T], enter yhat (z_q has a zero label
slot), and

    yhat = x_q^T Gamma_eff h  +  x_q^T (W_xx^T S_xx v_x + v_y S_yy w_yx),
    Gamma_eff = v_y W_xx^T + w_yx v_x^T.

The first part is the reduced model x^T Gamma h; the second ("bypass" part) is even under
w -> -w and so carries no information on the label for a sign-symmetric task law. Setting
v = e_{D+1} (v_x = 0, v_y = 1), W_xx = Gamma^T, and everything else 0 gives yhat = x_q^T Gamma h
exactly (:func:`embed_gamma`).

Training
--------
    F(V, W) = (1/M) sum_mu (y_mu - yhat_mu)^2 + (lam M0 / M) ||V||_F^2 ||W||_F^2.

The product penalty is the Frobenius norm of the bilinear map V (x) W; on the embedding of a Gamma
it is exactly ||Gamma||_F^2, so F is the pretraining ridge objective (docs/model.md) divided by M. (Plain
weight decay ||V||^2 + ||W||^2 would give 2 ||Gamma||_F at the balanced point, a different
penalty.) F is invariant under (V, W) -> (c V, W / c). The hand-derived gradient, with
r_mu = yhat_mu - y_mu, b_mu = W[:, :D] x_mu, a_mu = S_mu v, is

    dF/dv       = (2/M) sum_mu r_mu S_mu b_mu + 2 p ||W||^2 v       (last row of V),
    dF/dV_rest  = 2 p ||W||^2 V_rest,
    dF/dW[:,:D] = (2/M) sum_mu r_mu a_mu x_mu^T + 2 p ||V||^2 W[:, :D],
    dF/dW[:, D] = 2 p ||V||^2 W[:, D],                                   p = lam M0 / M,

O(M D^2) from the per-prompt sufficient statistics S_mu (M x (D+1) x (D+1)). Optimizers: L-BFGS
(scipy) on this gradient (default) or full-batch gradient descent with backtracking; both in
block-scaled coordinates (the w_yx row is multiplied by S_yy ~ D in yhat, so its curvature is ~D^2
times that of W_xx; rescaling the row by 1/D and v_x, v_y by fixed factors is a change of variables,
not of the model). Initialization: i.i.d. N(0, init_scale^2 / (D+1)) entries from ``seed``.

Exact test error of a trained attention
---------------------------------------
For test tasks w (context length L~, noise sigma_t), with Gamma = Gamma_eff, B = W_xx^T, p = v_x,
s = v_y w_yx, n(w) = ||w||^2 + D sigma_t^2 and e(Gamma) the reduced exact error
(:func:`lowrank_icl.theory.forward.finite_size.exact_test_error`), Gaussian moment algebra gives

    e_full = e(Gamma) - 2 E_w X(w) + E_w Q(w),
    D X(w) = w^T B p + n(w) w^T s - w^T Gamma^T B p - (p^T Gamma^T B w + (p.w) tr(Gamma^T B))/L~
             - (1 + 2/L~) n(w) w^T Gamma^T s,
    D Q(w) = (1 + 1/L~) ||B p||^2 + ||B||_F^2 ||p||^2 / L~ + 2 n(w) s^T B p + (4/L~) (s^T B w)(w^T p)
             + (1 + 2/L~) n(w)^2 ||s||^2,

from E[S_xx A S_xx] = (1 + 1/L)A + tr(A) I/L, E[S_yy S_xx | w] = n I + (2/L) w w^T,
E[S_xx p h^T | w] = p w^T + (w p^T + (p.w) I)/L, E[S_yy h | w] = (1 + 2/L) n w,
E[S_yy^2 | w] = (1 + 2/L) n^2. X is odd in w, so it vanishes for the IDG and ODG laws; TM averages
over the pool tasks exactly. For a rank-r Gaussian law (IDG: subspace A; ODG: a fresh Haar
subspace) E n = D (1 + sigma_t^2), E n^2 = D^2 (1 + 2/r + 2 sigma_t^2 + sigma_t^4) and
E w w^T = C. :func:`sampled_test_error` checks all of this with fresh test prompts.

Public API
----------
- :func:`context_statistics(X, y)` -> (S, x_query, y_query)
- :func:`predict(V, W, S, x_query)`, :func:`embed_gamma(Gamma)`, :func:`effective_gamma(V, W)`
- :func:`loss_and_grad(V, W, S, x_query, y_query, penalty)`
- :func:`train_attention(S, x_query, y_query, lam, n_tasks, ...)` -> :class:`AttentionFit`
- :func:`attention_test_error(V, W, law, context_length, sigma_test)` (exact),
  :func:`sampled_test_error(...)` (Monte Carlo), :func:`compare_with_ridge(...)` (one seed, both models)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize as sopt
from lowrank_icl.numerics.utils import check_int, check_real, single_threaded_blas
from lowrank_icl.numerics.utils import json_document
from lowrank_icl.numerics.results import ConvergenceReport
from lowrank_icl.theory import SecondMoment, exact_test_error
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_contexts
from lowrank_icl.validation.parallel import run_parallel
from lowrank_icl.numerics.results import PROTOCOLS

OPTIMIZERS = ("lbfgs", "gd")
# scaled gradient ||grad F|| ||theta|| / F below which a fit counts as converged: at D = 6-10 going
# from 3e-4 to 1e-6 changed the test error by < 2e-5 relative (far below the Monte Carlo error)
CONVERGED_RESIDUAL = 1e-3
_CHUNK = 4096   # prompts per block when building statistics or sampling test prompts


# ----------------------------------------------------------------------------------------------
# model

def context_statistics(X, y):
    """Per-prompt sufficient statistics of full contexts X (M, L+1, D), y (M, L+1) (query last):

    S (M, D+1, D+1) = (D/L) sum_{l<=L} z_l z_l^T with z_l = (x_l, y_l), the query x (M, D) and its
    label (M,). O(M L D^2) once; every loss/gradient evaluation afterwards is O(M D^2).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 3 or y.shape != X.shape[:2] or X.shape[1] < 2:
        raise ValueError(f"X must be (M, L+1, D) with L >= 1 and y (M, L+1) (got {X.shape}, {y.shape})")
    M, Lp1, dim = X.shape
    L = Lp1 - 1
    S = np.empty((M, dim + 1, dim + 1))
    for s in range(0, M, _CHUNK):
        Z = np.concatenate([X[s:s + _CHUNK, :L], y[s:s + _CHUNK, :L, None]], axis=2)
        S[s:s + _CHUNK] = np.matmul(Z.transpose(0, 2, 1), Z) * (dim / L)
    return S, X[:, L].copy(), y[:, L].copy()


def _check_weights(V, W, dim=None):
    V = np.asarray(V, dtype=float)
    W = np.asarray(W, dtype=float)
    if V.ndim != 2 or V.shape[0] != V.shape[1] or W.shape != V.shape:
        raise ValueError(f"V and W must be square (D+1) x (D+1) of the same shape (got {V.shape}, {W.shape})")
    if dim is not None and V.shape[0] != dim + 1:
        raise ValueError(f"V, W must be {(dim + 1, dim + 1)} for D = {dim} (got {V.shape})")
    return V, W


def predict(V, W, S, x_query):
    """yhat_mu = e_{D+1}^T V S_mu W (x_mu, 0) for statistics S (M, D+1, D+1) and queries (M, D)."""
    S = np.asarray(S, dtype=float)
    xq = np.asarray(x_query, dtype=float)
    V, W = _check_weights(V, W, xq.shape[1])
    b = xq @ W[:, :-1].T                       # (M, D+1): W (x, 0)
    return np.einsum("mij,i,mj->m", S, V[-1], b, optimize=True)


def embed_gamma(gamma):
    """(V, W) whose attention output is exactly x_q^T Gamma h: V = e_{D+1} e_{D+1}^T, W_xx = Gamma^T."""
    G = np.asarray(gamma, dtype=float)
    dim = G.shape[0]
    V = np.zeros((dim + 1, dim + 1))
    V[dim, dim] = 1.0
    W = np.zeros((dim + 1, dim + 1))
    W[:dim, :dim] = G.T
    return V, W


def effective_gamma(V, W):
    """Gamma_eff = v_y W_xx^T + w_yx v_x^T: the part of the attention of the form x^T Gamma h."""
    V, W = _check_weights(V, W)
    dim = V.shape[0] - 1
    v_x, v_y = V[dim, :dim], V[dim, dim]
    return v_y * W[:dim, :dim].T + np.outer(W[dim, :dim], v_x)


def loss_and_grad(V, W, S, x_query, y_query, penalty):
    """F = mean (y - yhat)^2 + penalty ||V||^2 ||W||^2 and its gradient (dF/dV, dF/dW) (module doc)."""
    S = np.asarray(S, dtype=float)
    xq = np.asarray(x_query, dtype=float)
    yq = np.asarray(y_query, dtype=float)
    V, W = _check_weights(V, W, xq.shape[1])
    M, dim = xq.shape
    v = V[-1]
    # one pass over S: columns (S_mu b_mu, S_mu v); S is symmetric so S_mu v is also v^T S_mu
    rhs = np.empty((M, dim + 1, 2))
    rhs[:, :, 0] = xq @ W[:, :-1].T                              # b_mu = W (x_mu, 0)
    rhs[:, :, 1] = v
    T = np.matmul(S, rhs)
    Sb, a = T[:, :, 0], T[:, :, 1]
    r = Sb @ v - yq
    nV, nW = float(np.sum(V * V)), float(np.sum(W * W))
    F = float(r @ r) / M + penalty * nV * nW
    dV = (2 * penalty * nW) * V
    dV[-1] += (2 / M) * (r @ Sb)
    dW = (2 * penalty * nV) * W
    dW[:, :-1] += (2 / M) * ((a * r[:, None]).T @ xq)
    return F, dV, dW


# ----------------------------------------------------------------------------------------------
# training

@dataclass(frozen=True, repr=False)
class AttentionFit(ConvergenceReport):
    """A trained attention: V, W (value, key_query), its effective Gamma and optimizer diagnostics.

    ``residual`` = the scaled gradient ||grad F|| ||theta|| / F at the returned point; ``converged``
    means residual <= 1e-3 and a finite F; ``reason`` says what failed ("" when converged); ``loss``
    the final objective F; ``bypass_norm`` = ||(v_x, w_yx)|| / ||Gamma_eff||_F (0 for the reduced
    model). ``parameters``: the settings of the fit (lam, n_tasks, seed, init_scale, optimizer, tol).
    """

    value: np.ndarray
    key_query: np.ndarray
    gamma: np.ndarray
    loss: float
    converged: bool
    residual: float
    iterations: int
    seconds: float
    optimizer: str
    reason: str = ""
    parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON document: ``parameters``, ``version``, loss, convergence words, V, W and Gamma_eff."""
        return json_document(self.parameters, {
            "loss": self.loss, "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations, "seconds": self.seconds,
            "optimizer": self.optimizer, "bypass_norm": self.bypass_norm, "value": self.value,
            "key_query": self.key_query, "gamma": self.gamma})

    def __repr__(self) -> str:
        return (f"AttentionFit(D={self.gamma.shape[0]}, loss={self.loss:.6g}, converged={self.converged}, "
                f"residual={self.residual:.2g}, iterations={self.iterations}, optimizer={self.optimizer!r})")

    @property
    def bypass_norm(self) -> float:
        dim = self.gamma.shape[0]
        v_x, w_yx = self.value[dim, :dim], self.key_query[dim, :dim]
        return float(np.hypot(np.linalg.norm(v_x), np.linalg.norm(w_yx)) / max(np.linalg.norm(self.gamma), 1e-300))


def _scales(dim, S):
    """Fixed block scales (change of variables) equalizing the curvature of the blocks of W and V."""
    syy = float(np.mean(S[:, dim, dim]))             # ~ D (1 + sigma^2)
    sV = np.ones((dim + 1, dim + 1))
    sW = np.ones((dim + 1, dim + 1))
    sW[dim, :] = 1.0 / max(syy, 1.0)                 # w_yx multiplies S_yy in yhat
    return sV, sW


def train_attention(S, x_query, y_query, lam, n_tasks, *, seed=0, init_scale=1e-2, optimizer="lbfgs",
                    tol=1e-12, max_iter=20000, learning_rate=None, init=None) -> AttentionFit:
    """Minimize F(V, W) (module docstring) from a small random initialization.

    ``lam`` and ``n_tasks`` = M0 set the penalty p = lam M0 / M (the ridge's lam M0 ||Gamma||^2 / M).
    ``optimizer``: "lbfgs" (scipy L-BFGS-B on the hand-derived gradient) or "gd" (full-batch gradient
    descent, step size doubled after an accepted step and halved until the objective decreases).
    ``tol``: lbfgs stops when the relative decrease of F in an iteration is <= tol (scipy ftol);
    gd when the scaled gradient ||grad F|| ||theta|| / F is <= max(tol, 1e-8). ``residual`` reports
    the scaled gradient at the returned point for both; ``converged`` means residual <= 1e-3.
    ``init``: optional (V0, W0) instead of the random start.
    """
    S = np.asarray(S, dtype=float)
    xq = np.asarray(x_query, dtype=float)
    yq = np.asarray(y_query, dtype=float)
    M, dim = xq.shape
    if S.shape != (M, dim + 1, dim + 1) or yq.shape != (M,):
        raise ValueError(f"S must be (M, D+1, D+1), x_query (M, D), y_query (M,) (got {S.shape}, {xq.shape}, {yq.shape})")
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    n_tasks = check_int("n_tasks", n_tasks, lower=1)
    init_scale = float(check_real("init_scale", init_scale, lower=0.0))
    tol = float(check_real("tol", tol, lower=0.0, upper=1.0))
    max_iter = check_int("max_iter", max_iter, lower=1)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} (got {optimizer!r})")
    penalty = lam * n_tasks / M
    n = (dim + 1) ** 2
    sV, sW = _scales(dim, S)
    if init is None:
        rng = np.random.default_rng(seed)
        V0 = rng.standard_normal((dim + 1, dim + 1)) * (init_scale / np.sqrt(dim + 1))
        W0 = rng.standard_normal((dim + 1, dim + 1)) * (init_scale / np.sqrt(dim + 1))
    else:
        V0, W0 = _check_weights(*init, dim)
    theta0 = np.concatenate([(V0 / sV).ravel(), (W0 / sW).ravel()])

    def fg(theta):
        V = theta[:n].reshape(dim + 1, dim + 1) * sV
        W = theta[n:].reshape(dim + 1, dim + 1) * sW
        F, dV, dW = loss_and_grad(V, W, S, xq, yq, penalty)
        return F, np.concatenate([(dV * sV).ravel(), (dW * sW).ravel()])

    start = time.perf_counter()
    with single_threaded_blas():      # many small products: threads only contend on a busy machine
        if optimizer == "lbfgs":
            res = sopt.minimize(fg, theta0, jac=True, method="L-BFGS-B",
                                options={"maxiter": max_iter, "maxfun": 2 * max_iter, "maxcor": 30,
                                         "gtol": 0.0, "ftol": tol})
            theta, F, it = res.x, float(res.fun), int(res.nit)
        else:
            theta, F, it = _gradient_descent(fg, theta0, tol, max_iter, learning_rate)
        F, g = fg(theta)
    residual = _scaled_gradient(F, g, theta)
    V = theta[:n].reshape(dim + 1, dim + 1) * sV
    W = theta[n:].reshape(dim + 1, dim + 1) * sW
    converged = bool(np.isfinite(F) and residual <= CONVERGED_RESIDUAL)
    reason = "" if converged else (
        "non-finite objective" if not np.isfinite(F) else
        f"scaled gradient {residual:.2g} > {CONVERGED_RESIDUAL:g} after {it} iterations; raise max_iter or lower tol")
    return AttentionFit(value=V, key_query=W, gamma=effective_gamma(V, W), loss=F, converged=converged,
                        residual=residual, iterations=it, seconds=time.perf_counter() - start,
                        optimizer=optimizer, reason=reason,
                        parameters={"lam": lam, "n_tasks": n_tasks, "seed": seed, "init_scale": init_scale,
                                    "optimizer": optimizer, "tol": tol, "max_iter": max_iter})


def _scaled_gradient(F, g, theta) -> float:
    """||grad F|| ||theta|| / F: scale-free stationarity measure (F is a quartic polynomial, so
    theta . grad F is of the order of F away from a minimum)."""
    return float(np.linalg.norm(g) * np.linalg.norm(theta) / F) if F > 0 else float(np.linalg.norm(g))


def _gradient_descent(fg, theta, tol, max_iter, learning_rate):
    """Full-batch GD with an adaptive step: grow x2 after an accepted step, halve until F decreases
    (Armijo). Stops when the scaled gradient is below max(tol, 1e-8) or after max_iter steps."""
    F, g = fg(theta)
    eta = 1.0 if learning_rate is None else float(learning_rate)
    it = 0
    while it < max_iter and _scaled_gradient(F, g, theta) > max(tol, 1e-8):
        it += 1
        gg = float(g @ g)
        while True:
            cand = theta - eta * g
            Fc, gc = fg(cand)
            if np.isfinite(Fc) and Fc <= F - 1e-4 * eta * gg:
                break
            eta *= 0.5
            if eta < 1e-300:
                return theta, F, it
        theta, F, g = cand, Fc, gc
        eta *= 2.0
    return theta, F, it


# ----------------------------------------------------------------------------------------------
# test error

@dataclass(frozen=True)
class TaskLaw:
    """A test task law for :func:`attention_test_error`.

    kind "pool": the uniform law on the rows of ``tasks`` (TM); kind "gaussian": w = sqrt(D/r) A v with
    v ~ N(0, I_r) for an orthonormal ``factor`` A (IDG), or a Haar A of rank ``rank`` (ODG,
    ``factor`` None: E w w^T = I). Build with :meth:`pool`, :meth:`subspace`, :meth:`fresh_subspace`.
    """

    kind: str
    dim: int
    rank: int
    tasks: np.ndarray | None = None
    factor: np.ndarray | None = None

    @classmethod
    def pool(cls, tasks) -> "TaskLaw":
        T = np.atleast_2d(np.asarray(tasks, dtype=float))
        return cls("pool", T.shape[1], T.shape[0], tasks=T)

    @classmethod
    def subspace(cls, A) -> "TaskLaw":
        A = np.asarray(A, dtype=float)
        return cls("gaussian", A.shape[0], A.shape[1], factor=A)

    @classmethod
    def fresh_subspace(cls, dim, rank) -> "TaskLaw":
        return cls("gaussian", check_int("dim", dim), check_int("rank", rank, upper=dim))

    def second_moment(self) -> SecondMoment:
        if self.kind == "pool":
            return SecondMoment.pool(self.tasks)
        if self.factor is None:
            return SecondMoment.identity(self.dim)
        return SecondMoment.subspace(self.factor)

    def sample(self, n, rng) -> np.ndarray:
        """n tasks (n x D) from the law, independent across rows (ODG: a fresh subspace per task)."""
        if self.kind == "pool":
            return self.tasks[rng.integers(self.tasks.shape[0], size=n)]
        if self.factor is None:
            # a fresh Haar subspace per task: w = sqrt(D/r) ||v|| u with u uniform on the sphere
            # and ||v||^2 ~ chi2(r), the same law as sqrt(D/r) A v with a new A for every prompt
            u = rng.standard_normal((n, self.dim))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            return np.sqrt(self.dim / self.rank * rng.chisquare(self.rank, size=n))[:, None] * u
        return np.sqrt(self.dim / self.rank) * (rng.standard_normal((n, self.rank)) @ self.factor.T)


def attention_test_error(V, W, law: TaskLaw, context_length, sigma_test=0.0) -> float:
    """Exact test error E (y - yhat)^2 of the attention (V, W) at test context length L~ (module doc).

    e(Gamma_eff) (theory.finite_size) plus the bypass terms: the cross term -2 E X(w) (pool laws only;
    it is odd in w) and the bypass variance E Q(w).
    """
    V, W = _check_weights(V, W, law.dim)
    Lt = float(check_int("context_length", context_length, lower=1))
    s2 = float(check_real("sigma_test", sigma_test, lower=0.0, lower_inclusive=True)) ** 2
    dim = law.dim
    G = effective_gamma(V, W)
    base = float(exact_test_error(G, law.second_moment(), Lt, np.sqrt(s2)))
    B = W[:dim, :dim].T
    p = V[dim, :dim]
    s = V[dim, dim] * W[dim, :dim]
    Bp = B @ p
    const = (1 + 1 / Lt) * float(Bp @ Bp) + float(np.sum(B * B)) * float(p @ p) / Lt
    sBp, ss = float(s @ Bp), float(s @ s)
    if law.kind == "pool":
        T = law.tasks
        n = np.sum(T * T, axis=1) + dim * s2
        Tp, Ts, TB_s = T @ p, T @ s, T @ (B.T @ s)
        TG = T @ G.T                                   # rows (Gamma w)^T
        GBp, GTBsym = G.T @ Bp, (G.T @ B)
        X = (T @ Bp + n * Ts - T @ GBp - (T @ (GTBsym.T @ p) + Tp * float(np.trace(GTBsym))) / Lt
             - (1 + 2 / Lt) * n * (TG @ s))
        Q = const + 2 * n * sBp + (4 / Lt) * TB_s * Tp + (1 + 2 / Lt) * n**2 * ss
        return base + (float(np.mean(Q)) - 2 * float(np.mean(X))) / dim
    C = law.second_moment()
    Cm = C.matrix() if C.kind != "identity" else None
    En = dim * (1 + s2)
    En2 = dim**2 * (1 + 2 / law.rank + 2 * s2 + s2**2)
    sBCp = float((B.T @ s) @ (p if Cm is None else Cm @ p))
    Q = const + 2 * En * sBp + (4 / Lt) * sBCp + (1 + 2 / Lt) * En2 * ss
    return base + Q / dim


def sampled_test_error(V, W, law: TaskLaw, context_length, sigma_test=0.0, n_prompts=20000, seed=0):
    """Monte Carlo test error of (V, W) on fresh explicit test prompts: (mean, standard error).

    Each prompt draws a task from ``law``, L~ + 1 tokens x ~ N(0, I/D) and labels with noise
    ``sigma_test``; chunks of :data:`_CHUNK` prompts bound the memory.
    """
    V, W = _check_weights(V, W, law.dim)
    Lt = check_int("context_length", context_length, lower=1)
    st = float(check_real("sigma_test", sigma_test, lower=0.0, lower_inclusive=True))
    n = check_int("n_prompts", n_prompts, lower=2)
    rng = np.random.default_rng(seed)
    dim = law.dim
    sq = np.empty(n)
    for s0 in range(0, n, _CHUNK):
        k = min(_CHUNK, n - s0)
        w = law.sample(k, rng)
        X = rng.standard_normal((k, Lt + 1, dim)) / np.sqrt(dim)
        y = np.einsum("nld,nd->nl", X, w) + st * rng.standard_normal((k, Lt + 1))
        S, xq, yq = context_statistics(X, y)
        sq[s0:s0 + k] = (yq - predict(V, W, S, xq)) ** 2
    return float(np.mean(sq)), float(np.std(sq, ddof=1) / np.sqrt(n))


# ----------------------------------------------------------------------------------------------
# one seed: full attention and reduced ridge on the same prompts


def compare_with_ridge(dim, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, *, seed=0, alpha_tests=None,
                       sigma_test=None, n_test_prompts=0, optimizer="lbfgs", init_scale=1e-2) -> dict:
    """Train the full attention (small random init, ``seed``) and the reduced ridge on the SAME
    pretraining prompts (:func:`lowrank_icl.validation.forward.sampling.sample_contexts` for ``seed``) and
    measure both. Returns a JSON-ready dict:

    - ``alpha_tests`` and ``context_lengths`` (integer L~ = round(alpha_t D)),
    - ``attention``, ``attention_gamma`` (its Gamma_eff alone), ``ridge``: {protocol: [exact error per
      alpha_t]} for protocol in tm, idg, odg (:func:`attention_test_error`),
    - ``sampled`` (n_test_prompts > 0): {protocol: [mean, se]} of the attention on fresh prompts at
      alpha_t = alpha, ``gamma_distance`` ||Gamma_eff - Gamma_ridge||_F / ||Gamma_ridge||_F,
    - ``loss``/``ridge_loss`` (the training objective of each, both in units of F), diagnostics and times.
    """
    s = Sizes.from_ratios(dim, alpha, tau, kappa, rho)
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    sig_t = sigma if sigma_test is None else float(check_real("sigma_test", sigma_test, lower=0.0,
                                                                lower_inclusive=True))
    a_tests = [float(alpha)] if alpha_tests is None else [float(a) for a in np.atleast_1d(alpha_tests)]
    lengths = [max(1, int(np.floor(a * dim + 0.5))) for a in a_tests]
    t0 = time.perf_counter()
    ctx = sample_contexts(s, sigma, seed)
    S, xq, yq = context_statistics(ctx.X, ctx.y)
    red = ctx.reduced()
    pool, A = ctx.pool, ctx.subspace
    del ctx
    t_data = time.perf_counter() - t0
    fit = train_attention(S, xq, yq, lam, s.n_tasks, seed=seed, optimizer=optimizer, init_scale=init_scale)
    rfit = fit_ridge(red.x, red.h, red.y, lam, s.n_tasks)
    penalty = lam * s.n_tasks / s.n_prompts
    ridge_loss = loss_and_grad(*embed_gamma(rfit.gamma), S, xq, yq, penalty)[0]
    laws = {"tm": TaskLaw.pool(pool), "idg": TaskLaw.subspace(A), "odg": TaskLaw.fresh_subspace(dim, s.rank)}
    models = {"attention": (fit.value, fit.key_query), "attention_gamma": embed_gamma(fit.gamma),
              "ridge": embed_gamma(rfit.gamma)}
    out = {name: {p: [attention_test_error(*vw, laws[p], Lt, sig_t) for Lt in lengths] for p in PROTOCOLS}
           for name, vw in models.items()}
    if n_test_prompts:
        L_train = s.context_length
        out["sampled"] = {p: list(sampled_test_error(fit.value, fit.key_query, laws[p], L_train, sig_t,
                                                     n_prompts=n_test_prompts, seed=seed + 7919))
                          for p in ("idg", "odg")}
        out["sampled_exact"] = {p: attention_test_error(fit.value, fit.key_query, laws[p], L_train, sig_t)
                                for p in ("idg", "odg")}
    out.update({
        "dim": int(dim), "seed": int(seed), "alpha_tests": a_tests, "context_lengths": lengths,
        "sizes": {"L": s.context_length, "M": s.n_prompts, "M0": s.n_tasks, "r": s.rank},
        "gamma_distance": float(np.linalg.norm(fit.gamma - rfit.gamma) / np.linalg.norm(rfit.gamma)),
        "bypass_norm": fit.bypass_norm, "loss": fit.loss, "ridge_loss": float(ridge_loss),
        "converged": bool(fit.converged and rfit.converged), "residual": fit.residual,
        "iterations": fit.iterations, "seconds_attention": fit.seconds, "seconds_ridge": rfit.seconds,
        "seconds_data": t_data, "seconds": time.perf_counter() - t0})
    return out


def _compare_job(job: dict) -> dict:
    return compare_with_ridge(**job)


def run_comparisons(jobs: list, workers: int = 2, progress=None) -> list:
    """:func:`compare_with_ridge` for each job dict (keyword arguments), in up to 2 processes
    (spawned, single-threaded BLAS), results in input order. ``progress(msg)`` after each job."""
    workers = max(1, min(2, int(workers)))
    t0 = time.perf_counter()
    done = [0]

    def report(i, r):
        done[0] += 1
        if progress is not None:
            progress(f"attention D={r['dim']} seed={r['seed']} [{done[0]}/{len(jobs)}] "
                     f"{r['seconds_attention']:.1f}s ({r['iterations']} it), elapsed {time.perf_counter() - t0:.0f}s")

    return run_parallel(_compare_job, jobs, workers, report)
