r"""Oracle Bayes (ORE) theory of inverse ICL: posterior covariance, exact risk, moments and limits.

Model: a context X (N x d) has i.i.d. rows x ~ N(0, Sigma_x); the task is
w = w0 + U v, U (d x r) orthonormal, v ~ N(0, Lambda); Y = X w + eps, eps ~ N(0, sigma^2 I_N).
Risk means E||w_hat - w||^2, summed over the d coordinates (divide by d for the per-coordinate MSE).

Derivations (each built from premises by a function below, checked by sympy / mpmath in the tests)
---------------------------------------------------------------------------------------------------
1. ORE error covariance. With A = XU, Sigma_post = (Lambda^{-1} + A^T A / sigma^2)^{-1} and
   v_hat = Sigma_post A^T (A v + eps) / sigma^2, the error is
       e = v - v_hat = (I - Sigma_post A^T A / sigma^2) v - Sigma_post A^T eps / sigma^2
                     = Sigma_post Lambda^{-1} v - Sigma_post A^T eps / sigma^2,
   so Cov(e | X) = Sigma_post (Lambda^{-1} + A^T A / sigma^2) Sigma_post = Sigma_post
   (:func:`ore_error_covariance_symbolic`). Hence E[||w_hat - w||^2 | X] = tr Sigma_post (U orthonormal).
   Bound: if A^T A / N >= b I then Sigma_post <= (Lambda^{-1} + N b / sigma^2)^{-1} <= sigma^2/(N b) I, so
   risk <= sum_i 1/(1/lambda_i + N b/sigma^2) <= sigma^2 r / (N b). A^T A (r x r) has rank <= min(N, r),
   so b > 0 is possible only if r <= N.
2. ORE moments. E[v_hat | X] = 0 (v, eps centred), so E w_hat = w0. Orthogonality of the posterior
   mean, Cov(v_hat | X) = Lambda - Sigma_post, and the law of total covariance give
   Cov(w_hat) = Sigma_w - U E_X[Sigma_post] U^T = Sigma_w - sigma^2 C,
   C = U E_X[(sigma^2 Lambda^{-1} + A^T A)^{-1}] U^T.
3. Small noise. sigma -> 0 with N > r + 1: tr Sigma_post -> sigma^2 tr((A^T A)^{-1}), and A^T A ~
   Wishart_r(S, N), S = U^T Sigma_x U, whose inverse has mean S^{-1}/(N - r - 1) (checked at r = 1 by the
   chi-square integral E[1/chi^2_N] = 1/(N - 2), :func:`inverse_chi2_mean_symbolic`, and by the Monte
   Carlo of :func:`lowrank_icl.numerics.inverse.risk.ore_expected_inverse`).
   Risk ~ sigma^2 tr(S^{-1}) / (N - r - 1).
4. High-dimensional limit, r, N -> infinity, r/N = gamma. For S = I and Lambda = lambda I, the
   eigenvalues of A^T A / N follow Marchenko-Pastur(gamma), whose Stieltjes transform
   m(z) = int dMP(x) / (x - z) solves gamma z m^2 - (1 - gamma - z) m + 1 = 0
   (:func:`mp_stieltjes_symbolic`). Risk per task dimension:
       tr Sigma_post / r = (sigma^2 / N) m(-mu),   mu = sigma^2 / (lambda N).
   For general S and Lambda the deterministic equivalent (D = sigma^2 Lambda^{-1})
       E (D + A^T A)^{-1} ~ (D + N S / (1 + delta))^{-1},  delta = tr(S (D + N S/(1 + delta))^{-1})
   reduces to the MP formula when S = I, Lambda = lambda I (solved in
   :func:`lowrank_icl.numerics.inverse.high_dim.ore_deterministic_equivalent`).

This module imports nothing from the rest of ``lowrank_icl``. Sympy work runs only when a
``*_symbolic`` function is called.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ore_error_covariance_symbolic", "inverse_chi2_mean_symbolic", "mp_stieltjes_symbolic",
           "posterior_covariance", "ore_conditional_risk", "ore_risk_bound", "ore_risk_small_noise",
           "mp_stieltjes_negative", "ore_risk_mp_isotropic"]


# ---------------------------------------------------------------------------------------------
# Symbolic derivations (sympy, built lazily)
# ---------------------------------------------------------------------------------------------
def ore_error_covariance_symbolic(r: int = 2, N: int = 2):
    """Return (Cov(e | X), Sigma_post) as explicit sympy matrices for symbolic A (N x r), Lambda, sigma.

    Cov(e|X) is built from the error decomposition e = (I - Sigma_post A^T A/sigma^2) v
    - Sigma_post A^T eps / sigma^2 with Cov(v) = Lambda, Cov(eps) = sigma^2 I, v independent of eps.
    """
    import sympy as sp
    A = sp.Matrix(N, r, lambda i, j: sp.Symbol(f"a{i}{j}", real=True))
    lam = sp.symbols(f"lambda0:{r}", positive=True)
    sigma = sp.Symbol("sigma", positive=True)
    Lam = sp.diag(*lam)
    post = (Lam.inv() + A.T * A / sigma**2).inv()
    G_v = sp.eye(r) - post * A.T * A / sigma**2          # coefficient of v in e
    G_eps = -post * A.T / sigma**2                         # coefficient of eps in e
    cov = G_v * Lam * G_v.T + sigma**2 * G_eps * G_eps.T
    return cov, post


def inverse_chi2_mean_symbolic():
    """E[1/chi^2_N] from the chi-square density (the r = 1 inverse-Wishart mean); returns (value, N)."""
    import sympy as sp
    x = sp.Symbol("x", positive=True)
    N = sp.Symbol("N", positive=True)
    density = x ** (N / 2 - 1) * sp.exp(-x / 2) / (2 ** (N / 2) * sp.gamma(N / 2))
    value = sp.integrate(density / x, (x, 0, sp.oo), conds="none")
    return sp.simplify(sp.gammasimp(value)), N


def mp_stieltjes_symbolic():
    """Solve the MP self-consistency m = 1/(1 - gamma - z - gamma z m) at z = -mu < 0.

    Returns (m(-mu), mu, gamma): the root that is positive for mu > 0 (a Stieltjes transform of a
    measure on [0, inf) is positive on the negative real axis).
    """
    import sympy as sp
    m = sp.Symbol("m")
    mu, gamma = sp.symbols("mu gamma", positive=True)
    z = -mu
    roots = sp.solve(sp.Eq(m * (1 - gamma - z - gamma * z * m), 1), m)
    # pick the root with the + square root (positive): test at mu = 1, gamma = 1/2
    root = max(roots, key=lambda e: float(e.subs({mu: 1, gamma: sp.Rational(1, 2)})))
    return sp.simplify(root), mu, gamma


# ---------------------------------------------------------------------------------------------
# Fast numeric callables
# ---------------------------------------------------------------------------------------------
def posterior_covariance(A: np.ndarray, Lambda: np.ndarray, sigma: float) -> np.ndarray:
    """Sigma_post = (Lambda^{-1} + A^T A / sigma^2)^{-1} for a batch A (n, N, r); shape (n, r, r).

    sigma = 0: Lambda - Lambda A^T (A Lambda A^T)^+ A Lambda (the limit; 0 when A has rank r).
    """
    A = np.asarray(A, dtype=float)
    Lambda = np.asarray(Lambda, dtype=float)
    r = A.shape[-1]
    if sigma > 0:
        gram = np.einsum("nir,nis->nrs", A, A)
        return sigma**2 * np.linalg.inv(sigma**2 * np.diag(1.0 / Lambda) + gram)
    root = np.sqrt(Lambda)
    B = A * root
    P = np.linalg.pinv(B) @ B
    return root[:, None] * (np.eye(r) - P) * root[None, :]


def ore_conditional_risk(A, Lambda, sigma: float) -> np.ndarray:
    """E[||w_hat - w||^2 | X] = tr Sigma_post for each design A = X U (n, N, r); shape (n,)."""
    return np.trace(posterior_covariance(A, Lambda, sigma), axis1=1, axis2=2)


def ore_risk_bound(b, Lambda, sigma, N):
    """Bound when A^T A / N >= b I: sum_i 1/(1/lambda_i + N b/sigma^2) <= sigma^2 r/(N b)."""
    Lambda = np.asarray(Lambda, dtype=float)
    b = np.asarray(b, dtype=float)[..., None]
    sigma = np.asarray(sigma, dtype=float)[..., None]
    return np.sum(1.0 / (1.0 / Lambda + N * b / sigma**2), axis=-1)


def ore_risk_small_noise(S, sigma, N: int):
    """sigma^2 tr(S^{-1}) / (N - r - 1): the sigma -> 0 ORE risk (inverse-Wishart mean), N > r + 1."""
    S = np.asarray(S, dtype=float)
    r = S.shape[0]
    return np.asarray(sigma, dtype=float)**2 * np.trace(np.linalg.inv(S)) / (N - r - 1)


def mp_stieltjes_negative(mu, gamma):
    """Marchenko-Pastur(gamma) Stieltjes transform at z = -mu < 0:
    m(-mu) = [-(1 - gamma + mu) + sqrt((1 - gamma + mu)^2 + 4 gamma mu)] / (2 gamma mu),
    written in a cancellation-free form 2 / [(1 - gamma + mu) + sqrt(...)].
    """
    mu = np.asarray(mu, dtype=float)
    gamma = np.asarray(gamma, dtype=float)
    a = 1.0 - gamma + mu
    root = np.sqrt(a**2 + 4.0 * gamma * mu)
    # rationalized: (root - a)/(2 gamma mu) = 2/(root + a); fine when a >= 0, else use the first form
    with np.errstate(divide="ignore", invalid="ignore"):
        stable = np.where(a >= 0, 2.0 / (root + a), (root - a) / (2.0 * gamma * mu))
    return stable


def ore_risk_mp_isotropic(sigma, gamma, lam, N):
    """High-dimensional ORE risk per task dimension, tr Sigma_post / r, for S = I, Lambda = lam I:
    (sigma^2 / N) m_MP(-mu; gamma), mu = sigma^2 / (lam N). Limits: sigma^2/(N (1 - gamma)) as
    sigma -> 0 (gamma < 1); lam (1 - 1/gamma) as sigma -> 0 (gamma > 1); lam as sigma -> infinity.
    """
    sigma = np.asarray(sigma, dtype=float)
    lam = np.asarray(lam, dtype=float)
    mu = sigma**2 / (lam * N)
    small = mu == 0
    mu_safe = np.where(small, 1.0, mu)
    m = mp_stieltjes_negative(mu_safe, gamma)
    out = sigma**2 / N * m
    gamma = np.asarray(gamma, dtype=float)
    limit = np.where(gamma < 1, 0.0, lam * (1.0 - 1.0 / np.where(gamma > 0, gamma, 1.0)))
    return np.where(small, limit, out)
