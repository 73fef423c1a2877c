r"""Estimators of the inverse ICL task vector: per-context ridge (RE), empirical Bayes (TRE), oracle Bayes (ORE).

Signature shared with the linear transformer (``lt.py``): ``est.fit(train_X, train_Y[, train_W])``
returns the estimator; ``est.predict(X, Y)`` returns W_hat of shape (n, d). Shapes and the model:
``model.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowrank_icl.numerics._blas import single_threaded_blas
from lowrank_icl.numerics._checks import check_int, check_real
from lowrank_icl.numerics.inverse.model import InverseModel, check_batch as _check_batch
from lowrank_icl.theory.inverse.bayes import posterior_covariance

def posterior_mean(X, Y, w0, U, Lambda, sigma) -> np.ndarray:
    r"""Gaussian-prior posterior mean (generalized Tikhonov), batched over contexts.

    w_hat = w0 + U v_hat,  v_hat = (sigma^2 Lambda^{-1} + (XU)^T XU)^{-1} (XU)^T (Y - X w0),

    the same as Sigma_post (XU)^T (Y - X w0) / sigma^2 with
    Sigma_post = (Lambda^{-1} + (XU)^T XU / sigma^2)^{-1}. At sigma = 0 the pseudo-inverse
    (least squares on span U) is used.

    Parameters
    ----------
    X, Y : array_like
        Contexts, shapes (n, N, d) and (n, N).
    w0 : array_like
        Prior mean, shape (d,).
    U : array_like
        Orthonormal basis of the prior's span, shape (d, r).
    Lambda : array_like
        Prior variances of v, shape (r,).
    sigma : float
        Noise standard deviation (>= 0).

    Returns
    -------
    ndarray
        W_hat, shape (n, d).
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
    """Oracle Bayes estimator: the posterior mean under the true prior, w_hat = :func:`posterior_mean`.

    ``fit`` does nothing; ``predict(X, Y)`` returns W_hat (n, d); :meth:`posterior_covariance` and
    :meth:`conditional_risk` give Sigma_post and its trace given each design.

    Parameters
    ----------
    w0 : array_like
        Prior mean, shape (d,).
    U : array_like
        Orthonormal basis of the prior's span, shape (d, r).
    Lambda : array_like
        Prior variances, shape (r,).
    sigma : float
        Noise standard deviation (>= 0).
    """

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
            return posterior_covariance(X @ self.U, self.Lambda, self.sigma)

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

    Parameters
    ----------
    method : {'gcv', 'lcurve'}
        How lam is chosen per context.
    n_grid : int
        Grid points of N lam (>= 5).
    span : tuple of float
        log10 range of N lam relative to the mean eigenvalue of X X^T.
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

    eigs descending. The noise floor tau is the median absolute eigenvalue (the corrected noise bulk
    sits around 0; assumes r < d/2), at least 1e-4 of the largest eigenvalue (so that rounding-level
    eigenvalues of an exactly low-rank matrix make no gap of their own), and
    r_hat = argmax_k lambda_k / max(lambda_{k+1}, tau) over the eigenvalues above tau.

    Parameters
    ----------
    eigs : ndarray
        Eigenvalues, in descending order.

    Returns
    -------
    int
        r_hat >= 1 (1 when no eigenvalue rises above the floor).
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

    Attributes
    ----------
    w0 : ndarray
        Estimated prior mean, (d,).
    U : ndarray
        Estimated prior basis, (d, r_hat).
    Lambda : ndarray
        Estimated prior variances, (r_hat,).
    sigma : float
        Estimated noise standard deviation.
    Sigma_x : ndarray
        Pooled input covariance, (d, d).
    spectrum : ndarray
        Eigenvalues of the noise-corrected covariance (descending).
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

    Parameters
    ----------
    rank : int, optional
        The task rank to use; default: r_hat from the spectral gap (:func:`spectral_gap_rank`).
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


