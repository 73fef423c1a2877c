r"""Population-optimal K-layer LT with Gamma_k in the prior's polynomial class, and its limit in K.

Model: Sigma_x = I, w = w0 + U v, v ~ N(0, lambda I_r), y = <x, w> + eps, eps ~ N(0, sigma^2); the
K-layer LT w_k = w_{k-1} + Gamma_k X^T (Y - X w_{k-1}) / N, w_0 = b, restricted to b = w0 and
Gamma_k = alpha_k U U^T (the polynomials in Sigma_x = I and Sigma_w = lambda U U^T that keep w_k - w0
in span U).

1. Spectral form. With A = X U (N x r) and x_i the eigenvalues of A^T A / N, the error in span U is
       v_K - v = -p(A^T A/N) v + q(A^T A/N) A^T eps / N,   p(x) = prod_k (1 - alpha_k x),  q = (1 - p)/x,
   so the supervised risk per task dimension is
       R_sup(p) = E_x [ lambda p(x)^2 + s (1 - p(x))^2 / x ],   s = sigma^2 / N,
   and the data misfit (the paper's loss) is, per context and up to the constant sigma^2 (N - r) of the
   directions orthogonal to A,  N E_x [ p(x)^2 (lambda x + s) ] r.
   Any polynomial p of degree K with p(0) = 1 factors as prod (1 - alpha_k x) (complex alpha_k in
   conjugate pairs included), so optimizing over the alpha_k is optimizing over p.
2. Optimum. Write p(x) = 1 - x c(x), c of degree K - 1 in a Chebyshev basis on the support. Both
   objectives are quadratic in the coefficients: the supervised optimum solves
   (lambda G2 + s G1) c = lambda h, G_m = E[x^m T_i T_j], h_i = E[x T_i]; the misfit optimum solves
   (lambda G3 + s G2) c = lambda h' + s h, h'_i = E[x^2 T_i] (:func:`optimal_polynomial`).
3. Limit K -> infinity. Pointwise, lambda p^2 + s (1 - p)^2 / x is smallest at p = s / (lambda x + s):
   the supervised optimum tends to the Bayes risk E[lambda s / (lambda x + s)] (the ORE), geometrically in K
   (polynomial approximation of 1/(x + s/lambda) on the support). The misfit's pointwise optimum is p = 0
   (interpolation on span U, least squares without prior shrinkage): its supervised risk tends to
   s E[1/x] (s/(1 - gamma) in the Marchenko-Pastur limit), the small-noise ORE risk: the two losses
   agree as sigma -> 0.

Expectations over x: the Marchenko-Pastur law with ratio gamma = r/N (``law='mp'``, the limit
r, N -> infinity; Gauss-Legendre in the angle x = a_- + (a_+ - a_-)(1 - cos t)/2, which makes the density
smooth) or given nodes and weights (e.g. sampled eigenvalues of finite Wishart matrices).
This module imports nothing from the rest of ``lowrank_icl``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["marchenko_pastur_nodes", "optimal_polynomial", "deep_lt_risk", "deep_lt_limits", "polynomial_lt_risk"]


def marchenko_pastur_nodes(gamma: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the Marchenko-Pastur law (ratio 0 < gamma < 1, mean 1) on [(1 - sqrt g)^2, (1 + sqrt g)^2]."""
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must be in (0, 1) (got {gamma})")
    lo, hi = (1 - np.sqrt(gamma)) ** 2, (1 + np.sqrt(gamma)) ** 2
    t, wt = np.polynomial.legendre.leggauss(n)
    theta = 0.5 * np.pi * (t + 1.0)
    x = lo + 0.5 * (hi - lo) * (1.0 - np.cos(theta))
    # density sqrt((hi - x)(x - lo)) / (2 pi gamma x); dx = (hi - lo)/2 sin(theta) dtheta; sqrt(...) = (hi - lo)/2 sin(theta)
    w = wt * 0.5 * np.pi * ((hi - lo) / 2 * np.sin(theta)) ** 2 / (2 * np.pi * gamma * x)
    return x, w / w.sum()


def _basis(x, K, lo, hi):
    u = (2 * x - (lo + hi)) / (hi - lo)
    return np.polynomial.chebyshev.chebvander(u, K - 1)          # (n, K)


def optimal_polynomial(K: int, lam: float, s: float, nodes, weights, loss: str = "supervised"):
    """The degree-K p with p(0) = 1 minimizing the population loss (item 2); returns p as a callable on x."""
    x = np.asarray(nodes, dtype=float)
    w = np.asarray(weights, dtype=float)
    lo, hi = float(x.min()), float(x.max())
    T = _basis(x, K, lo, hi)
    def gram(m):
        return (T * (w * x ** m)[:, None]).T @ T
    if loss == "supervised":
        M = lam * gram(2) + s * gram(1)
        rhs = lam * (T.T @ (w * x))
    elif loss == "misfit":
        M = lam * gram(3) + s * gram(2)
        rhs = lam * (T.T @ (w * x ** 2)) + s * (T.T @ (w * x))
    else:
        raise ValueError(f"loss must be 'supervised' or 'misfit' (got {loss!r})")
    c = np.linalg.lstsq(M, rhs, rcond=1e-15)[0]

    def p(z):
        z = np.asarray(z, dtype=float)
        return 1.0 - z * (_basis(np.atleast_1d(z), K, lo, hi) @ c).reshape(z.shape)
    return p


def deep_lt_risk(K: int, lam: float, s: float, nodes, weights, loss: str = "supervised") -> float:
    """Supervised risk per task dimension, E[lambda p^2 + s (1 - p)^2 / x], of the K-layer optimum for ``loss``."""
    x = np.asarray(nodes, dtype=float)
    w = np.asarray(weights, dtype=float)
    p = optimal_polynomial(K, lam, s, x, w, loss)(x)
    return float(np.sum(w * (lam * p ** 2 + s * (1.0 - p) ** 2 / x)))


def deep_lt_limits(lam: float, s: float, nodes, weights) -> dict:
    """K -> infinity: 'supervised' -> Bayes E[lambda s/(lambda x + s)]; 'misfit' -> s E[1/x] (item 3)."""
    x = np.asarray(nodes, dtype=float)
    w = np.asarray(weights, dtype=float)
    return {"supervised": float(np.sum(w * lam * s / (lam * x + s))), "misfit": float(s * np.sum(w / x))}


def polynomial_lt_risk(alphas, lam: float, s: float, nodes, weights) -> float:
    """Supervised risk per task dimension of the LT with Gamma_k = alpha_k U U^T, b = w0 (item 1)."""
    x = np.asarray(nodes, dtype=float)
    w = np.asarray(weights, dtype=float)
    p = np.prod([1.0 - a * x for a in np.atleast_1d(alphas)], axis=0)
    return float(np.sum(w * (lam * p ** 2 + s * (1.0 - p) ** 2 / x)))
