r"""The inverse ICL data model: parameters, random bases and the context sampler.

Inverse in-context learning infers the task vector w of one context from its (X, Y).

Model and conventions (docs/inverse.md)
---------------------------------------

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

The estimators (``estimators.py``: RE, TRE, ORE; ``lt.py``: the trained linear transformer)
share one signature: ``est.fit(train_X, train_Y)`` (training contexts, never the true W) then
``est.predict(X, Y) -> W_hat`` of shape (n, d).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

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
            i.e. norm abs(c)) or a vector of length d
    Lambda  prior variances of v: a scalar (lambda I_r) or a length-r      Lambda > 0
            vector
    ======  =============================================================  ====================

    r >= N is allowed (the experiment over the task rank crosses r = N: there the oracle risk stops
    vanishing with the noise) but raises :class:`InverseRegimeWarning`, since each context then
    cannot pin down v even without noise.

    Parameters
    ----------
    d, N, r : int
        Dimension, context length and task rank (table above).
    sigma : float
        Label-noise standard deviation.
    cond : float
        Condition number c_x of Sigma_x = Q diag(s) Q^T, s_i proportional to c_x^{(i-1)/(d-1)}, sum s = d.
    n_s : int
        Number of training contexts.
    w0 : None, float or array_like
        Prior mean of w (table above).
    Lambda : float or array_like
        Prior variances of v; Sigma_w = U diag(Lambda) U^T.
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

    Parameters
    ----------
    d : int
        Dimension (d >= 1).
    cond : float
        Condition number s_max / s_min (>= 1).

    Returns
    -------
    ndarray
        s, shape (d,), ascending: s_i = d cond^{(i-1)/(d-1)} / sum_j cond^{(j-1)/(d-1)}, i = 1..d
        (all ones when cond = 1).
    """
    d = check_int("d", d, lower=1)
    cond = float(check_real("cond", cond, lower=1.0, lower_inclusive=True))
    if d == 1:
        return np.ones(1)
    s = cond ** (np.arange(d) / (d - 1))
    return s * (d / s.sum())


def haar_orthogonal(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A d x k matrix with orthonormal columns, Haar-distributed on the Stiefel manifold.

    Parameters
    ----------
    d, k : int
        Shape (k <= d).
    rng : numpy.random.Generator
        Source of the Gaussian draw.

    Returns
    -------
    ndarray
        Q of shape (d, k): G = Q R (QR of a standard Gaussian d x k matrix G), with the signs of the
        columns fixed so that diag(R) > 0 (which makes the law exactly Haar).
    """
    g = rng.standard_normal((d, k))
    q, rmat = np.linalg.qr(g)
    return q * np.sign(np.diag(rmat))


@dataclass(frozen=True, eq=False)
class InverseContexts:
    """A batch of n inverse-ICL contexts with their true tasks: y_i = <x_i, w> + eps_i per context.

    Attributes
    ----------
    X : ndarray
        Inputs, shape (n, N, d), rows ~ N(0, Sigma_x).
    Y : ndarray
        Labels, shape (n, N).
    W : ndarray
        The true task vectors w = w0 + U v, shape (n, d).
    """

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

    Attributes
    ----------
    params : InverseParams
        The numbers.
    Q : ndarray
        Haar eigenbasis of Sigma_x, (d, d).
    s : ndarray
        Eigenvalues of Sigma_x, (d,) (:func:`input_spectrum`).
    U : ndarray
        Haar orthonormal basis of the prior's span, (d, r).
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

    def sample(self, n: int, rng: np.random.Generator, N: int | None = None) -> InverseContexts:
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
        return InverseContexts(X, Y, W)


def mse_per_coordinate(W_hat: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Per-context error ||w_hat - w||^2 / d: an MSE, not an RMSE.

    Parameters
    ----------
    W_hat, W : array_like
        Estimated and true task vectors, shape (n, d).

    Returns
    -------
    ndarray
        Shape (n,): sum_i (w_hat_i - w_i)^2 / d for each context.
    """
    W_hat = np.asarray(W_hat, dtype=float)
    return np.sum((W_hat - W) ** 2, axis=-1) / W.shape[-1]


def check_batch(X, Y, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a batch of contexts: X (n, N, d) and Y (n, N) as float arrays (d checked if given)."""
    X = np.asarray(X, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if X.ndim != 3 or Y.ndim != 2 or X.shape[:2] != Y.shape:
        raise ValueError(f"X must have shape (n, N, d) and Y shape (n, N) (got {X.shape} and {Y.shape})")
    if d is not None and X.shape[2] != d:
        raise ValueError(f"X has dimension d={X.shape[2]} but the estimator was built for d={d}")
    return X, Y
