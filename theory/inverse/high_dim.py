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
   (:func:`lowrank_icl.numerics.inverse.high_dim.compressed_stieltjes`; q = 1 gives m = mean 1/(s + t); s = 1 gives m = 1/(1 + t)).
   Replacing tr B by its mean r tr(Sigma_x)/d and m_B by m gives the deterministic equivalent of
   R* (:func:`lowrank_icl.numerics.inverse.high_dim.lt1_risk_deterministic`); its error is O(1/N) relative (fluctuations and bias of a
   linear spectral statistic of an r x r matrix, tested).
3. Limit d, N, r -> infinity with r/N = gamma, d/N = delta (q = gamma/delta), sigma^2/N -> s2,
   Lambda = lambda I and the spectral law of Sigma_x fixed (mean 1): per task dimension
       R*/r -> a m_B(a / lambda),   a = gamma lambda + s2                        (:func:`~lowrank_icl.numerics.inverse.high_dim.lt1_risk_limit`),
   e.g. lambda gamma/(1 + gamma) at Sigma_x = I, s2 = 0. The per-coordinate MSE is (gamma/delta) R*/r.
   It does not vanish: one preconditioned GD step leaves a finite error even without noise.

This module holds the algebra (item 1); the root searches of items 2 and 3 live in
:mod:`lowrank_icl.numerics.inverse.high_dim`. It imports nothing from the rest of ``lowrank_icl``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["lt1_risk_reduced"]


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
