r"""Inverse in-context learning: infer the task vector w of one context from its (X, Y).

Model and conventions (spec ``inverse.md``; Lu & Yu, arXiv 2505.12138)
---------------------------------------------------------------------

* Inputs: the rows x_i of a context X (N x d) are i.i.d. N(0, Sigma_x) with

      Sigma_x = Q diag(s) Q^T,   s_i = c_x^{(i-1)/(d-1)} rescaled so that  tr Sigma_x = sum_i s_i = d,

  i.e. log-spaced eigenvalues with condition number c_x = s_max / s_min and mean eigenvalue 1
  (so E ||x||^2 = d and Sigma_x = I when c_x = 1). Q is Haar-distributed on O(d).
* Task prior: w = w0 + U v, U (d x r) with orthonormal columns drawn from the Haar measure,
  v ~ N(0, Lambda), Lambda = diag(lambda_1..lambda_r) > 0, so Sigma_w = U Lambda U^T has rank r.
  Defaults: Lambda = I_r, w0 = 1_d / sqrt(d) (unit norm).
* Labels: y_i = <x_i, w> + eps_i, eps_i ~ N(0, sigma^2) (sigma is a standard deviation).
* Array shapes (batch of n contexts): X (n, N, d), Y (n, N), W (n, d).
* Error: the per-coordinate mean squared error ||w_hat - w||^2 / d (an MSE, not an RMSE).

:class:`InverseParams` holds the numbers, :class:`InverseModel` one draw of the random bases
(Q, U) together with the numbers, and :meth:`InverseModel.sample` draws contexts.

Estimators share one signature: ``est.fit(train_X, train_Y)`` (training contexts, never the
true W) then ``est.predict(X, Y) -> W_hat`` of shape (n, d).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from lowrank_icl.numerics._blas import single_threaded_blas
from lowrank_icl.numerics._checks import check_int, check_real


class InverseRegimeWarning(UserWarning):
    """The task rank r is at least the context length N: the oracle risk bound does not apply."""


def _as_vector(name: str, value, length: int, *, positive: bool) -> np.ndarray:
    arr = check_real(name, value, lower=0.0 if positive else None)
    if arr.ndim == 0:
        arr = np.full(length, float(arr))
    if arr.shape != (length,):
        raise ValueError(f"{name} must be a scalar or a vector of length {length} (got shape {arr.shape})")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class InverseParams:
    r"""Parameters of the inverse ICL problem (conventions in the module docstring).

    ======  =============================================================  ====================
    field   meaning                                                        valid range
    ======  =============================================================  ====================
    d       dimension of x and of the task vector w                        d >= 1
    N       context length (rows of X)                                     N >= 1
    r       task rank, Sigma_w = U Lambda U^T has rank r                   1 <= r <= d
    sigma   label-noise standard deviation                                 sigma >= 0
    cond    condition number c_x of Sigma_x (log-spaced spectrum)          cond >= 1
    n_s     number of training contexts (tasks)                            n_s >= 1
    w0      prior mean: None (1_d/sqrt(d)), a scalar c (c 1_d/sqrt(d),     finite
            i.e. norm |c|) or a vector of length d
    Lambda  prior variances of v: a scalar (lambda I_r) or a length-r      Lambda > 0
            vector
    ======  =============================================================  ====================

    r >= N is allowed (it is part of the science: claim 3) but raises
    :class:`InverseRegimeWarning`, since each context then cannot pin down v even without noise.
    """

    d: int
    N: int
    r: int
    sigma: float = 0.1
    cond: float = 1.0
    n_s: int = 10_000
    w0: np.ndarray | float | None = None
    Lambda: np.ndarray | float = 1.0

    def __post_init__(self):
        d = check_int("d", self.d, lower=1)
        N = check_int("N", self.N, lower=1)
        r = check_int("r", self.r, lower=1, upper=d)
        sigma = float(check_real("sigma", self.sigma, lower=0.0, lower_inclusive=True))
        cond = float(check_real("cond", self.cond, lower=1.0, lower_inclusive=True))
        n_s = check_int("n_s", self.n_s, lower=1)
        if self.w0 is None:
            w0 = _as_vector("w0", 1.0 / np.sqrt(d), d, positive=False)
        elif np.ndim(self.w0) == 0:
            w0 = _as_vector("w0", float(check_real("w0", self.w0)) / np.sqrt(d), d, positive=False)
        else:
            w0 = _as_vector("w0", self.w0, d, positive=False)
        Lambda = _as_vector("Lambda", self.Lambda, r, positive=True)
        for name, value in dict(d=d, N=N, r=r, sigma=sigma, cond=cond, n_s=n_s, w0=w0,
                                Lambda=Lambda).items():
            object.__setattr__(self, name, value)
        if r >= N:
            warnings.warn(f"task rank r={r} >= context length N={N}: each context is rank-deficient "
                          "even on span(U); the oracle risk bound sigma^2 r/(N b) does not apply",
                          InverseRegimeWarning, stacklevel=3)

    def replace(self, **changes) -> "InverseParams":
        """A copy with some fields changed (re-validated). A changed r resets Lambda if its length differs."""
        fields = dict(d=self.d, N=self.N, r=self.r, sigma=self.sigma, cond=self.cond, n_s=self.n_s,
                      w0=self.w0, Lambda=self.Lambda)
        fields.update(changes)
        if "d" in changes and "w0" not in changes:
            fields["w0"] = None
        if np.ndim(fields["Lambda"]) and len(fields["Lambda"]) != fields["r"]:
            lam = np.asarray(fields["Lambda"])
            if np.all(lam == lam[0]):
                fields["Lambda"] = float(lam[0])
            else:
                raise ValueError("changing r needs a new Lambda of length r")
        return InverseParams(**fields)


def input_spectrum(d: int, cond: float) -> np.ndarray:
    r"""Eigenvalues s of Sigma_x: log-spaced with s_max/s_min = cond, normalized so sum(s) = d.

    s_i proportional to cond^{(i-1)/(d-1)}, i = 1..d (ascending); all ones when cond = 1.
    """
    d = check_int("d", d, lower=1)
    cond = float(check_real("cond", cond, lower=1.0, lower_inclusive=True))
    if d == 1:
        return np.ones(1)
    s = cond ** (np.arange(d) / (d - 1))
    return s * (d / s.sum())


def haar_orthogonal(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A d x k matrix with orthonormal columns, Haar-distributed (QR of a Gaussian, signs fixed)."""
    g = rng.standard_normal((d, k))
    q, rmat = np.linalg.qr(g)
    return q * np.sign(np.diag(rmat))


@dataclass(frozen=True, eq=False)
class Contexts:
    """A batch of n contexts: X (n, N, d), Y (n, N) and the true task vectors W (n, d)."""

    X: np.ndarray
    Y: np.ndarray
    W: np.ndarray

    def __len__(self) -> int:
        return self.X.shape[0]


@dataclass(frozen=True, eq=False)
class InverseModel:
    r"""One realisation of the task distribution: parameters plus the random bases Q and U.

    Sigma_x = Q diag(s) Q^T, Sigma_w = U diag(Lambda) U^T, prior mean w0.
    Build with :meth:`draw`; draw contexts with :meth:`sample`.
    """

    params: InverseParams
    Q: np.ndarray        # (d, d) eigenvectors of Sigma_x
    s: np.ndarray        # (d,) eigenvalues of Sigma_x, sum(s) = d
    U: np.ndarray        # (d, r) orthonormal basis of the task subspace

    @classmethod
    def draw(cls, params: InverseParams, rng: np.random.Generator) -> "InverseModel":
        """Draw Q (Haar; the identity when cond = 1, where it does not matter) and U (Haar)."""
        d = params.d
        U = haar_orthogonal(d, params.r, rng)
        s = input_spectrum(d, params.cond)
        Q = np.eye(d) if params.cond == 1.0 else haar_orthogonal(d, d, rng)
        return cls(params, Q, s, U)

    # -- derived quantities -------------------------------------------------------------
    @property
    def d(self) -> int:
        return self.params.d

    @property
    def N(self) -> int:
        return self.params.N

    @property
    def r(self) -> int:
        return self.params.r

    @property
    def sigma(self) -> float:
        return self.params.sigma

    @property
    def w0(self) -> np.ndarray:
        return self.params.w0

    @property
    def Lambda(self) -> np.ndarray:
        return self.params.Lambda

    @property
    def Sigma_x(self) -> np.ndarray:
        """Input covariance Q diag(s) Q^T (d x d)."""
        return (self.Q * self.s) @ self.Q.T

    @property
    def Sigma_w(self) -> np.ndarray:
        """Task covariance U diag(Lambda) U^T (d x d, rank r)."""
        return (self.U * self.Lambda) @ self.U.T

    def sample(self, n: int, rng: np.random.Generator, N: int | None = None) -> Contexts:
        """Draw n contexts of length N (default params.N): X (n, N, d), Y (n, N), W (n, d)."""
        n = check_int("n", n, lower=1)
        N = self.N if N is None else check_int("N", N, lower=1)
        d, r = self.d, self.r
        W = self.w0 + (rng.standard_normal((n, r)) * np.sqrt(self.Lambda)) @ self.U.T
        X = np.empty((n, N, d))
        Y = np.empty((n, N))
        scale = np.sqrt(self.s)
        identity_cov = self.params.cond == 1.0
        # chunks keep the Gaussian temporaries small when n N d is large (1e4 x 50 x 100 = 400 MB)
        step = max(1, 2_000_000 // (N * d))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            Z = rng.standard_normal((hi - lo, N, d))
            X[lo:hi] = Z if identity_cov else (Z * scale) @ self.Q.T
            Y[lo:hi] = np.einsum("nij,nj->ni", X[lo:hi], W[lo:hi])
        if self.sigma > 0:
            Y += self.sigma * rng.standard_normal((n, N))
        return Contexts(X, Y, W)


def mse_per_coordinate(W_hat: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per-context error ||w_hat - w||^2 / d (shape (n,)): an MSE, not an RMSE."""
    W_hat = np.asarray(W_hat, dtype=float)
    return np.sum((W_hat - W) ** 2, axis=-1) / W.shape[-1]


# ---------------------------------------------------------------------------------------
# Estimators: est.fit(train_X, train_Y[, train_W]) -> est;  est.predict(X, Y) -> W_hat (n, d)
# ---------------------------------------------------------------------------------------
def _check_batch(X, Y, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if X.ndim != 3 or Y.ndim != 2 or X.shape[:2] != Y.shape:
        raise ValueError(f"X must have shape (n, N, d) and Y shape (n, N) (got {X.shape} and {Y.shape})")
    if d is not None and X.shape[2] != d:
        raise ValueError(f"X has dimension d={X.shape[2]} but the estimator was built for d={d}")
    return X, Y


def posterior_mean(X, Y, w0, U, Lambda, sigma) -> np.ndarray:
    r"""Gaussian-prior posterior mean (generalized Tikhonov), batched over contexts.

    w_hat = w0 + U v_hat,  v_hat = (sigma^2 Lambda^{-1} + (XU)^T XU)^{-1} (XU)^T (Y - X w0),

    the same as Sigma_post (XU)^T (Y - X w0) / sigma^2 with
    Sigma_post = (Lambda^{-1} + (XU)^T XU / sigma^2)^{-1}. At sigma = 0 the pseudo-inverse
    (least squares on span U) is used.
    """
    with single_threaded_blas():
        return _posterior_mean(X, Y, w0, U, Lambda, sigma)


def _posterior_mean(X, Y, w0, U, Lambda, sigma) -> np.ndarray:
    X, Y = _check_batch(X, Y)
    U = np.asarray(U, dtype=float)
    Lambda = np.asarray(Lambda, dtype=float)
    w0 = np.asarray(w0, dtype=float)
    XU = X @ U                                                   # (n, N, r)
    resid = Y - X @ w0                                           # (n, N)
    rhs = np.einsum("nir,ni->nr", XU, resid)
    gram = np.einsum("nir,nis->nrs", XU, XU)
    if sigma > 0:
        gram = gram + np.diag(sigma ** 2 / Lambda)
        v = np.linalg.solve(gram, rhs[..., None])[..., 0]
    else:
        v = np.einsum("nrs,ns->nr", np.linalg.pinv(gram, hermitian=True), rhs)
    return w0 + v @ U.T


class ORE:
    """Oracle posterior mean with the true (w0, U, Lambda, sigma); ``fit`` does nothing."""

    def __init__(self, w0, U, Lambda, sigma: float):
        self.U = np.asarray(U, dtype=float)
        self.w0 = np.asarray(w0, dtype=float)
        self.Lambda = np.asarray(Lambda, dtype=float)
        self.sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))

    @classmethod
    def from_model(cls, model: InverseModel) -> "ORE":
        return cls(model.w0, model.U, model.Lambda, model.sigma)

    def fit(self, train_X=None, train_Y=None, train_W=None) -> "ORE":
        return self

    def predict(self, X, Y) -> np.ndarray:
        return posterior_mean(X, Y, self.w0, self.U, self.Lambda, self.sigma)

    def posterior_covariance(self, X) -> np.ndarray:
        r"""Sigma_post = (Lambda^{-1} + (XU)^T XU / sigma^2)^{-1} per context, shape (n, r, r).

        Its trace is the ORE risk conditional on X, E[||w_hat - w||^2 | X] (w - w_hat = U (v - v_hat));
        by the law of total covariance U E_X[Sigma_post] U^T = sigma^2 C = Sigma_w - Cov(w_hat).
        """
        X = np.asarray(X, dtype=float)
        if X.ndim != 3 or X.shape[2] != self.U.shape[0]:
            raise ValueError(f"X must have shape (n, N, {self.U.shape[0]}) (got {X.shape})")
        with single_threaded_blas():
            XU = X @ self.U
            prec = np.einsum("nir,nis->nrs", XU, XU)
            if self.sigma > 0:
                return np.linalg.inv(np.diag(1.0 / self.Lambda) + prec / self.sigma ** 2)
            # sigma = 0: Lambda^{1/2} (I - P) Lambda^{1/2}, P the projector on the row space of XU Lambda^{1/2}
            root = np.sqrt(self.Lambda)
            B = XU * root
            P = np.linalg.pinv(B) @ B
            return root[:, None] * (np.eye(len(root)) - P) * root[None, :]

    def conditional_risk(self, X) -> np.ndarray:
        """Exact ORE risk per coordinate given each design: tr Sigma_post / d, shape (n,)."""
        return np.trace(self.posterior_covariance(X), axis1=1, axis2=2) / self.U.shape[0]


class RE:
    r"""Per-context ridge w = (X^T X + N lam I)^{-1} X^T Y, lam chosen per context.

    ``method='gcv'`` minimizes GCV(lam) = (1/N)||(I - H)Y||^2 / (1 - tr H / N)^2 with
    H = X (X^T X + N lam I)^{-1} X^T; ``method='lcurve'`` takes the point of maximum curvature of
    (log ||Y - X w||, log ||w||) along lam. Both search a log grid of ``n_grid`` values of
    N lam spanning ``span`` decades around the mean eigenvalue of X X^T, per context.
    No cross-task information: ``fit`` does nothing. The chosen lam of the last
    ``predict`` call are in ``self.lam_``.
    """

    def __init__(self, method: str = "gcv", n_grid: int = 121, span: tuple[float, float] = (-10.0, 3.0)):
        if method not in ("gcv", "lcurve"):
            raise ValueError(f"method must be 'gcv' or 'lcurve' (got {method!r})")
        self.method = method
        self.n_grid = check_int("n_grid", n_grid, lower=5)
        self.span = span
        self.lam_ = None

    def fit(self, train_X=None, train_Y=None, train_W=None) -> "RE":
        return self

    def predict(self, X, Y) -> np.ndarray:
        with single_threaded_blas():
            return self._predict(X, Y)

    def _predict(self, X, Y) -> np.ndarray:
        X, Y = _check_batch(X, Y)
        n, N, d = X.shape
        out = np.empty((n, d))
        lam = np.empty(n)
        step = 1000
        for lo in range(0, n, step):
            out[lo:lo + step], lam[lo:lo + step] = self._predict_chunk(X[lo:lo + step], Y[lo:lo + step])
        self.lam_ = lam
        return out

    def _predict_chunk(self, X, Y):
        n, N, d = X.shape
        # eigen-decomposition of the N x N Gram matrix X X^T = A diag(e) A^T (works for any N, d:
        # (X^T X + c I)^{-1} X^T = X^T (X X^T + c I)^{-1})
        e, A = np.linalg.eigh(X @ np.swapaxes(X, 1, 2))
        e = np.clip(e, 0.0, None)
        z = np.einsum("nij,ni->nj", A, Y)                             # A^T Y
        scale = np.maximum(e.mean(axis=1), np.finfo(float).tiny)      # mean eigenvalue of X X^T
        c = scale[:, None] * np.logspace(self.span[0], self.span[1], self.n_grid)[None, :]  # N lam
        f = c[:, None, :] / (e[:, :, None] + c[:, None, :])           # (n, N, grid): 1 - h
        res2 = np.einsum("nk,nkg->ng", z ** 2, f ** 2)                # ||(I - H) Y||^2
        if self.method == "gcv":
            trace_res = f.sum(axis=1)                                 # N - tr H
            crit = (res2 / N) / (trace_res / N) ** 2
            best = np.argmin(crit, axis=1)
        else:
            norm2 = np.einsum("nk,nkg->ng", z ** 2 * e, 1.0 / (e[:, :, None] + c[:, None, :]) ** 2)
            x = 0.5 * np.log(np.maximum(res2, 1e-300))
            y = 0.5 * np.log(np.maximum(norm2, 1e-300))
            t = np.log(c[0])
            dx, dy = np.gradient(x, t, axis=1), np.gradient(y, t, axis=1)
            ddx, ddy = np.gradient(dx, t, axis=1), np.gradient(dy, t, axis=1)
            kappa = (dx * ddy - ddx * dy) / np.maximum((dx ** 2 + dy ** 2) ** 1.5, 1e-300)
            kappa[:, :2] = -np.inf                                    # one-sided ends are unreliable
            kappa[:, -2:] = -np.inf
            best = np.argmax(kappa, axis=1)
        cb = c[np.arange(n), best]
        coef = np.einsum("nij,nj->ni", A, z / (e + cb[:, None]))    # (X X^T + c)^{-1} Y
        w = np.einsum("nij,ni->nj", X, coef)
        return w, cb / N


def spectral_gap_rank(eigs: np.ndarray) -> int:
    r"""Rank from the largest spectral gap of a (noise-corrected) covariance estimate.

    eigs descending. The noise floor tau is the median |eigenvalue| (the corrected noise bulk
    sits around 0; assumes r < d/2), at least 1e-4 of the largest eigenvalue (so that rounding-level
    eigenvalues of an exactly low-rank matrix make no gap of their own), and r_hat = argmax_k lambda_k / max(lambda_{k+1}, tau) over
    the eigenvalues above tau.
    """
    tau = max(float(np.median(np.abs(eigs))), 1e-4 * max(float(eigs[0]), 1e-300))
    ratios = eigs[:-1] / np.maximum(eigs[1:], tau)
    ratios[eigs[:-1] <= tau] = -np.inf
    if not np.isfinite(ratios).any():
        return 1
    return int(np.argmax(ratios)) + 1


@dataclass(frozen=True, eq=False)
class PriorEstimate:
    r"""Stage 1 of TRE: the empirical-Bayes estimate of the Gaussian task prior.

    w0 (d,), U (d, r_hat), Lambda (r_hat,), sigma (noise std), Sigma_x (d, d) and the
    eigenvalues of the noise-corrected covariance whose gap gave r_hat (``spectrum``).
    """

    w0: np.ndarray
    U: np.ndarray
    Lambda: np.ndarray
    sigma: float
    Sigma_x: np.ndarray
    spectrum: np.ndarray

    @property
    def r(self) -> int:
        return self.U.shape[1]


class TRE:
    r"""Two-stage empirical Bayes ("trained regularized estimator").

    Stage 1 (``fit``, training contexts only, never the true w):

    * Sigma_x_hat = pooled (1/(n_s N)) sum_j X_j^T X_j;
    * per-task moment estimates w~_j = Sigma_x_hat^{-1} X_j^T Y_j / N (unbiased: E w~ = w0);
      w0_hat = their mean;
    * their covariance obeys (exact Gaussian/Wishart moments)
      Cov(w~) = (1 + 1/N) Sigma_w + (w0 w0^T + E[y^2] Sigma_x^{-1}) / N,
      so Sigma_w_hat = [Cov_hat(w~) - (w0_hat w0_hat^T + mean(Y^2) Sigma_x_hat^{-1})/N] / (1 + 1/N)
      (the design-and-noise contribution removed);
    * r_hat from the spectral gap of Sigma_w_hat (or ``rank`` if given); U_hat, Lambda_hat from
      its top r_hat eigenpairs;
    * sigma_hat^2 = pooled residual variance of least squares of Y - X w0_hat on X U_hat
      (divided by N - r_hat); if r_hat >= N, the moment estimate mean(Y^2) - tr(M_hat Sigma_x_hat).

    Stage 2 (``predict``): :func:`posterior_mean` under the estimated prior.
    """

    def __init__(self, rank: int | None = None):
        self.rank = None if rank is None else check_int("rank", rank, lower=1)
        self.prior_: PriorEstimate | None = None

    def fit(self, train_X, train_Y, train_W=None) -> "TRE":
        with single_threaded_blas():
            return self._fit(train_X, train_Y)

    def _fit(self, train_X, train_Y) -> "TRE":
        X, Y = _check_batch(train_X, train_Y)
        n, N, d = X.shape
        flat = X.reshape(-1, d)
        Sigma_x = flat.T @ flat / (n * N)
        z = np.einsum("nij,ni->nj", X, Y) / N                        # X^T Y / N
        w_tilde = np.linalg.solve(Sigma_x, z.T).T
        w0 = w_tilde.mean(axis=0)
        dev = w_tilde - w0
        cov = dev.T @ dev / max(n - 1, 1)
        m2 = float(np.mean(Y ** 2))
        Sigma_w = (cov - (np.outer(w0, w0) + m2 * np.linalg.inv(Sigma_x)) / N) / (1.0 + 1.0 / N)
        eigs, vecs = np.linalg.eigh((Sigma_w + Sigma_w.T) / 2)
        eigs, vecs = eigs[::-1], vecs[:, ::-1]
        r_hat = self.rank if self.rank is not None else spectral_gap_rank(eigs)
        r_hat = min(r_hat, d)
        U = vecs[:, :r_hat]
        Lambda = np.maximum(eigs[:r_hat], 1e-8 * max(eigs[0], 1e-300))
        if r_hat < N:
            XU = X @ U
            resid = Y - X @ w0
            gram = np.einsum("nir,nis->nrs", XU, XU)
            coef = np.linalg.solve(gram, np.einsum("nir,ni->nr", XU, resid)[..., None])[..., 0]
            rss = np.sum((resid - np.einsum("nir,nr->ni", XU, coef)) ** 2)
            sigma2 = rss / (n * (N - r_hat))
        else:
            M = np.outer(w0, w0) + (U * Lambda) @ U.T
            sigma2 = m2 - float(np.sum(M * Sigma_x))
        sigma = float(np.sqrt(max(sigma2, 1e-12 * m2)))
        self.prior_ = PriorEstimate(w0, U, Lambda, sigma, Sigma_x, eigs)
        return self

    def predict(self, X, Y) -> np.ndarray:
        if self.prior_ is None:
            raise ValueError("TRE.predict needs fit(train_X, train_Y) first")
        p = self.prior_
        return posterior_mean(X, Y, p.w0, p.U, p.Lambda, p.sigma)


# ---------------------------------------------------------------------------------------
# The K-layer linear transformer in preconditioned-gradient-descent form
# ---------------------------------------------------------------------------------------
LT_LOSSES = ("unsupervised", "heldout", "supervised")


def lt_forward(b, Gammas, X, Y) -> tuple[np.ndarray, np.ndarray]:
    r"""Run w_0 = b, w_k = w_{k-1} + Gamma_k X^T (Y - X w_{k-1}) / N, k = 1..K, batched.

    b (d,), Gammas (K, d, d), X (n, N, d), Y (n, N). Returns (w, g): w (K+1, n, d) holds
    w_0..w_K and g (K, n, d) the normalized gradients X^T (Y - X w_{k-1}) / N (kept for backprop).
    """
    n, N, d = X.shape
    K = Gammas.shape[0]
    w = np.empty((K + 1, n, d))
    g = np.empty((K, n, d))
    w[0] = b
    for k in range(K):
        res = Y - np.einsum("nij,nj->ni", X, w[k])
        g[k] = np.einsum("nij,ni->nj", X, res) / N
        w[k + 1] = w[k] + g[k] @ Gammas[k].T
    return w, g


def lt_loss_and_grad(theta, d: int, K: int, loss: str, X, Y, W=None, X_val=None, Y_val=None):
    r"""Loss and its hand-derived gradient with respect to theta = [b, Gamma_1..Gamma_K].

    Losses (n contexts):
      'supervised'   (1/n) sum_j ||w_K^j - w^j||^2
      'unsupervised' (1/n) sum_j ||X^j w_K^j - Y^j||^2         (the paper's data misfit)
      'heldout'      (1/n) sum_j ||X_val^j w_K^j - Y_val^j||^2  (w_K from (X, Y), scored on the held-out rows)
    Backpropagation through the K steps: with a_k = dL/dw_k,
      dL/dGamma_k = sum_j a_k^j (g_k^j)^T,
      a_{k-1} = a_k - X^T X Gamma_k^T a_k / N,
      dL/db = sum_j a_0^j.
    """
    n, N, _ = X.shape
    b = theta[:d]
    Gammas = theta[d:].reshape(K, d, d)
    w, g = lt_forward(b, Gammas, X, Y)
    wK = w[K]
    if loss == "supervised":
        diff = wK - W
        value = float(np.sum(diff ** 2)) / n
        a = 2.0 * diff / n
    elif loss == "unsupervised":
        res = np.einsum("nij,nj->ni", X, wK) - Y
        value = float(np.sum(res ** 2)) / n
        a = 2.0 * np.einsum("nij,ni->nj", X, res) / n
    elif loss == "heldout":
        res = np.einsum("nij,nj->ni", X_val, wK) - Y_val
        value = float(np.sum(res ** 2)) / n
        a = 2.0 * np.einsum("nij,ni->nj", X_val, res) / n
    else:
        raise ValueError(f"loss must be one of {LT_LOSSES} (got {loss!r})")
    grad = np.empty_like(theta)
    gG = grad[d:].reshape(K, d, d)
    for k in range(K - 1, -1, -1):
        gG[k] = a.T @ g[k]
        h = a @ Gammas[k]                                            # rows: (Gamma_k^T a_k)^T
        a = a - np.einsum("nij,ni->nj", X, np.einsum("nij,nj->ni", X, h)) / N
    grad[:d] = a.sum(axis=0)
    return value, grad


@dataclass(frozen=True)
class LTTrainResult:
    """Training record of :class:`LT`: final loss, convergence and cost."""

    loss: str
    value: float            # final training loss
    converged: bool
    residual: float         # max |gradient| at the end
    iterations: int         # L-BFGS iterations
    evaluations: int        # loss+gradient evaluations
    seconds: float          # wall-clock training time
    message: str
    n_tasks: int
    flops_per_evaluation: float   # dominant multiply-adds x 2 of one loss+gradient evaluation


class LT:
    r"""K-layer linear transformer in preconditioned-GD form with parameters b, Gamma_1..Gamma_K.

    w_0 = b, w_k = w_{k-1} + Gamma_k X^T (Y - X w_{k-1}) / N (von Oswald et al. 2023; Ahn et al. 2023),
    parameters shared by all tasks, trained by L-BFGS (scipy) on one of :data:`LT_LOSSES` with the
    gradient of :func:`lt_loss_and_grad`. 'heldout' fits on the first N - round(holdout N) rows of
    each training context and scores on the rest. Initialization: b = 0 and
    Gamma_k = I / (2 L), L the mean largest eigenvalue of X^T X / N over a few training contexts.
    """

    def __init__(self, K: int = 1, loss: str = "supervised", holdout: float = 0.2, maxiter: int = 500,
                 tol: float = 1e-10):
        self.K = check_int("K", K, lower=1)
        if loss not in LT_LOSSES:
            raise ValueError(f"loss must be one of {LT_LOSSES} (got {loss!r})")
        self.loss = loss
        self.holdout = float(check_real("holdout", holdout, lower=0.0, upper=1.0, upper_inclusive=False))
        self.maxiter = check_int("maxiter", maxiter, lower=1)
        self.tol = float(check_real("tol", tol, lower=0.0))
        self.b = None
        self.Gammas = None
        self.train_ = None

    def fit(self, train_X, train_Y, train_W=None, theta0=None) -> "LT":
        import time

        from scipy.optimize import minimize

        X, Y = _check_batch(train_X, train_Y)
        n, N, d = X.shape
        K = self.K
        kwargs = {}
        if self.loss == "supervised":
            if train_W is None:
                raise ValueError("loss='supervised' needs train_W (the true task vectors)")
            kwargs["W"] = np.asarray(train_W, dtype=float)
        elif self.loss == "heldout":
            n_val = int(round(self.holdout * N))
            if n_val < 1 or n_val >= N:
                raise ValueError(f"holdout={self.holdout} leaves no fit or no held-out rows at N={N}")
            kwargs["X_val"], kwargs["Y_val"] = X[:, N - n_val:], Y[:, N - n_val:]
            X, Y = X[:, :N - n_val], Y[:, :N - n_val]
        if theta0 is None:
            probe = X[: min(n, 20)]
            L = float(np.mean([np.linalg.eigvalsh(x.T @ x / x.shape[0])[-1] for x in probe]))
            theta0 = np.concatenate([np.zeros(d), np.tile((np.eye(d) / (2 * L)).ravel(), K)])
        evaluations = [0]

        def fun(theta):
            evaluations[0] += 1
            return lt_loss_and_grad(theta, d, K, self.loss, X, Y, **kwargs)

        start = time.perf_counter()
        with single_threaded_blas():
            res = minimize(fun, np.asarray(theta0, dtype=float), jac=True, method="L-BFGS-B",
                           options=dict(maxiter=self.maxiter, maxfun=2 * self.maxiter, ftol=self.tol,
                                        gtol=self.tol, maxcor=20))
        seconds = time.perf_counter() - start
        self.b = res.x[:d].copy()
        self.Gammas = res.x[d:].reshape(K, d, d).copy()
        Nf = X.shape[1]
        # per evaluation: 4K+1 passes of X (2 n N d flops each) and 2K products with Gamma (2 n d^2 each)
        flops = (4 * K + 1) * 2.0 * n * Nf * d + 2 * K * 2.0 * n * d * d
        self.train_ = LTTrainResult(self.loss, float(res.fun), bool(res.success),
                                    float(np.max(np.abs(res.jac))), int(res.nit), evaluations[0], seconds,
                                    str(res.message), n, flops)
        return self

    def predict(self, X, Y) -> np.ndarray:
        if self.b is None:
            raise ValueError("LT.predict needs fit(...) first")
        X, Y = _check_batch(X, Y, d=self.b.shape[0])
        with single_threaded_blas():
            return lt_forward(self.b, self.Gammas, X, Y)[0][-1]
