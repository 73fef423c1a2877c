r"""High-dimensional theory of the optimal one-layer LT: reduction to U^T Sigma_x U and its deterministic equivalent.

Model: rows x ~ N(0, Sigma_x), w = w0 + U v, U (d x r) orthonormal, v ~ N(0, Lambda),
y = <x, w> + eps, eps ~ N(0, sigma^2); risk = E||w_hat - w||^2 summed over the d coordinates.

1. Reduction. The optimal one-layer LT (``linear_transformer.lt1_optimal``) has
       R* = tr Sigma_w - tr(Sigma_w Sigma_x F^{-1} Sigma_x Sigma_w),
       F = (N+1)/N Sigma_x Sigma_w Sigma_x + (c/N) Sigma_x,   c = tr(Sigma_w Sigma_x) + sigma^2.
   With Sigma_w = U Lambda U^T and B = U^T Sigma_x U (r x r), Woodbury on F = (c/N) Sigma_x +
   Sigma_x U ((N+1)/N Lambda) U^T Sigma_x gives
       Sigma_x F^{-1} Sigma_x = (N/c) Sigma_x - (N/c)^2 Sigma_x U [N/(N+1) Lambda^{-1} + (N/c) B]^{-1} U^T Sigma_x,
   hence R* depends on Sigma_x and U only through B:
       R* = tr Lambda - (N/c) tr(Lambda B Lambda) + (N/c)^2 tr(Lambda B [N/(N+1) Lambda^{-1} + (N/c) B]^{-1} B Lambda),
       c = tr(Lambda B) + sigma^2                                          (:func:`lt1_risk_reduced`).
   For Lambda = lambda I it is a sum over the eigenvalues b_i of B:
       R* = lambda sum_i (c + lambda b_i) / (c + (N+1) lambda b_i)
          = lambda r [1/(N+1) + N c / ((N+1)^2 lambda) m_B(t)],   t = c / ((N+1) lambda),
   with m_B(t) = (1/r) sum_i 1/(b_i + t) (at Sigma_x = I, B = I: the isotropic closed form).
2. Deterministic equivalent. For U Haar on the Stiefel manifold, B is the free compression of
   Sigma_x with ratio q = r/d: its free cumulants are q^{n-1} those of Sigma_x, R_B(w) = R_x(q w).
   Inverting the Cauchy transforms, m = m_B(t) (t > 0) is the root in [1/(s_max + t), 1/(s_min + t)] of
       q m = (1/d) sum_i 1 / (s_i + t + (1/q - 1)/m),   s_i the eigenvalues of Sigma_x
   (:func:`compressed_stieltjes`; q = 1 gives m = mean 1/(s + t); s = 1 gives m = 1/(1 + t)).
   Replacing tr B by its mean r tr(Sigma_x)/d and m_B by m gives the deterministic equivalent of
   R* (:func:`lt1_risk_deterministic`); its error is O(1/N) relative (fluctuations and bias of a
   linear spectral statistic of an r x r matrix, tested).
3. Limit d, N, r -> infinity with r/N = gamma, d/N = delta (q = gamma/delta), sigma^2/N -> s2,
   Lambda = lambda I and the spectral law of Sigma_x fixed (mean 1): per task dimension
       R*/r -> a m_B(a / lambda),   a = gamma lambda + s2                        (:func:`lt1_risk_limit`),
   e.g. lambda gamma/(1 + gamma) at Sigma_x = I, s2 = 0. The per-coordinate MSE is (gamma/delta) R*/r.
   It does not vanish: one preconditioned GD step leaves a finite error even without noise.

This module imports nothing from the rest of ``lowrank_icl``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["lt1_risk_reduced", "compressed_stieltjes", "lt1_risk_deterministic", "lt1_risk_limit"]


def lt1_risk_reduced(B, Lambda, sigma: float, N: int) -> float:
    """R* of the optimal one-layer LT from B = U^T Sigma_x U (r x r) and Lambda (length r): item 1."""
    B = np.asarray(B, dtype=float)
    Lambda = np.asarray(Lambda, dtype=float)
    L = np.diag(Lambda)
    c = float(np.sum(Lambda * np.diag(B))) + sigma ** 2
    inner = N / (N + 1) * np.diag(1.0 / Lambda) + (N / c) * B
    LB = L @ B
    return float(np.sum(Lambda) - (N / c) * np.trace(LB @ L)
                 + (N / c) ** 2 * np.trace(LB @ np.linalg.solve(inner, LB.T)))


def compressed_stieltjes(s, q: float, t, xtol: float = 1e-15):
    r"""m_B(t) = int dmu_B(b) / (b + t), t > 0, for the free compression B of diag(s) with ratio q = r/d.

    Solves q m = mean_i 1/(s_i + t + (1/q - 1)/m) for m in [1/(s_max + t), 1/(s_min + t)] (brentq;
    the bracket holds because mu_B lies inside [s_min, s_max]). Vectorized over t.
    Returns (m, residual) with the residual |q m - mean(...)| / (q m).
    """
    from scipy.optimize import brentq
    s = np.asarray(s, dtype=float)
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1] (got {q})")
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    if np.any(t_arr <= 0):
        raise ValueError("t must be > 0")
    out = np.empty_like(t_arr)
    res = np.empty_like(t_arr)
    for k, tk in enumerate(t_arr):
        if q == 1.0:
            out[k] = np.mean(1.0 / (s + tk))
            res[k] = 0.0
            continue

        def h(m, tk=tk):
            return q * m - np.mean(1.0 / (s + tk + (1.0 / q - 1.0) / m))

        lo, hi = 1.0 / (s.max() + tk), 1.0 / (s.min() + tk)
        if hi - lo <= 1e-15 * hi:          # a flat spectrum: B = s I
            out[k] = hi
        else:
            out[k] = brentq(h, lo, hi, xtol=xtol * lo, rtol=4 * np.finfo(float).eps)
        res[k] = abs(h(out[k])) / (q * out[k])
    if np.ndim(t) == 0:
        return float(out[0]), float(res[0])
    return out, res


def lt1_risk_deterministic(s, r: int, N: int, sigma: float, lam: float = 1.0) -> float:
    """Deterministic equivalent of the optimal one-layer LT risk R* (sum over d), Lambda = lam I_r,
    U Haar, Sigma_x with eigenvalues s (length d): item 2."""
    s = np.asarray(s, dtype=float)
    d = s.size
    c = lam * r * float(np.mean(s)) + sigma ** 2         # E tr(Lambda B) = lam r tr(Sigma_x)/d
    t = c / ((N + 1) * lam)
    m, _ = compressed_stieltjes(s, r / d, t)
    return float(lam * r * (1.0 / (N + 1) + N * c / ((N + 1) ** 2 * lam) * m))


def lt1_risk_limit(s, gamma: float, delta: float, s2: float = 0.0, lam: float = 1.0) -> float:
    """N -> infinity limit of R*/r (per task dimension) at r/N = gamma, d/N = delta, sigma^2/N -> s2,
    Lambda = lam I, for the spectral law of Sigma_x given by the atoms s (mean 1): item 3."""
    s = np.asarray(s, dtype=float)
    a = gamma * lam * float(np.mean(s)) + s2
    m, _ = compressed_stieltjes(s, gamma / delta, a / lam)
    return float(a * m)
