r"""Deterministic equivalents of the inverse ICL risks: the root searches behind the high-dimensional
limits derived in :mod:`lowrank_icl.theory.inverse.high_dim` (one-layer LT) and
:mod:`lowrank_icl.theory.inverse.bayes` (item 4, the ORE).

Conventions as in :mod:`lowrank_icl.numerics.inverse.model`: rows x ~ N(0, Sigma_x), w = w0 + U v,
v ~ N(0, Lambda), noise std sigma, N tokens per context; ``prior_variance`` is lambda in Lambda = lambda I_r.
"""
from __future__ import annotations

import numpy as np

__all__ = ["compressed_stieltjes", "lt1_risk_deterministic", "lt1_risk_limit", "ore_deterministic_equivalent"]


def compressed_stieltjes(s, q: float, t, xtol: float = 1e-15):
    r"""m_B(t) = int dmu_B(b) / (b + t), t > 0, for the free compression B of diag(s) with ratio q = r/d.

    Solves q m = mean_i 1/(s_i + t + (1/q - 1)/m) for m in [1/(s_max + t), 1/(s_min + t)] (brentq;
    the bracket holds because mu_B lies inside [s_min, s_max]). Vectorized over t.

    Parameters
    ----------
    s : array_like
        Eigenvalues of Sigma_x.
    q : float
        Compression ratio r/d, 0 < q <= 1.
    t : float or array_like
        Points t > 0.
    xtol : float
        Absolute tolerance of the root, relative to the bracket's lower end.

    Returns
    -------
    m : float or ndarray
        m_B(t).
    residual : float or ndarray
        abs(q m - mean_i 1/(s_i + t + (1/q - 1)/m)) / (q m) at the root.
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


def lt1_risk_deterministic(s, r: int, N: int, sigma: float, prior_variance: float = 1.0) -> float:
    """Deterministic equivalent of the optimal one-layer LT risk R* (sum over d), Lambda = lam I_r,
    U Haar, Sigma_x with eigenvalues s (length d): item 2 of :mod:`lowrank_icl.theory.inverse.high_dim`.

    Parameters
    ----------
    s : array_like
        Eigenvalues of Sigma_x (length d).
    r : int
        Task rank.
    N : int
        Tokens per context.
    sigma : float
        Label noise std.
    prior_variance : float
        lam in Lambda = lam I_r.

    Returns
    -------
    float
        R* ~ lam r [1/(N+1) + N c m_B(t) / ((N+1)^2 lam)], c = lam r mean(s) + sigma^2,
        t = c / ((N+1) lam), m_B from :func:`compressed_stieltjes` with q = r/d.
    """
    lam = prior_variance
    s = np.asarray(s, dtype=float)
    d = s.size
    c = lam * r * float(np.mean(s)) + sigma ** 2         # E tr(Lambda B) = lam r tr(Sigma_x)/d
    t = c / ((N + 1) * lam)
    m, _ = compressed_stieltjes(s, r / d, t)
    return float(lam * r * (1.0 / (N + 1) + N * c / ((N + 1) ** 2 * lam) * m))


def lt1_risk_limit(s, gamma: float, delta: float, s2: float = 0.0, prior_variance: float = 1.0) -> float:
    """N -> infinity limit of R*/r (per task dimension) at r/N = gamma, d/N = delta, sigma^2/N -> s2,
    Lambda = lam I, for the spectral law of Sigma_x given by the atoms s (mean 1): item 3 of
    :mod:`lowrank_icl.theory.inverse.high_dim`.

    Parameters
    ----------
    s : array_like
        Atoms of the spectral law of Sigma_x (mean 1).
    gamma, delta : float
        r/N and d/N.
    s2 : float
        Limit of sigma^2 / N.
    prior_variance : float
        lam in Lambda = lam I_r.

    Returns
    -------
    float
        R*/r -> a m_B(a / lam), a = gamma lam + s2 (lam gamma / (1 + gamma) at Sigma_x = I, s2 = 0).
    """
    lam = prior_variance
    s = np.asarray(s, dtype=float)
    a = gamma * lam * float(np.mean(s)) + s2
    m, _ = compressed_stieltjes(s, gamma / delta, a / lam)
    return float(a * m)


def ore_deterministic_equivalent(S, Lambda, sigma: float, N: int, xtol: float = 1e-14):
    """Deterministic equivalent of E[(D + A^T A)^{-1}], D = sigma^2 Lambda^{-1} (sigma > 0), rows of A ~ N(0, S):
    Q = (D + N S/(1 + delta))^{-1}, delta = tr(S Q). Returns (Q, delta, iterations, residual).

    In the basis D^{-1/2} S D^{-1/2} = V diag(t) V^T the fixed point is the scalar equation
    delta = sum_i t_i (1 + delta)/(1 + delta + N t_i), solved by brentq on [0, sum_i t_i]
    (the right side is increasing in delta and bounded by sum_i t_i). Exact ORE risk ~ sigma^2 tr Q.

    Parameters
    ----------
    S : array_like
        U^T Sigma_x U, (r, r).
    Lambda : array_like
        Prior variances, (r,).
    sigma : float
        Noise standard deviation (> 0).
    N : int
        Tokens per context.
    xtol : float
        Absolute tolerance of brentq on delta.

    Returns
    -------
    Q : ndarray
        (r, r).
    delta : float
        The fixed point.
    iterations : int
        brentq iterations.
    residual : float
        abs(right side - delta) at the returned delta.
    """
    from scipy.optimize import brentq
    S = np.asarray(S, dtype=float)
    d_inv_half = np.sqrt(np.asarray(Lambda, dtype=float)) / sigma     # D^{-1/2} (diagonal)
    t, V = np.linalg.eigh(d_inv_half[:, None] * S * d_inv_half[None, :])
    t = np.maximum(t, 0.0)

    def excess(delta):
        return float(np.sum(t * (1 + delta) / (1 + delta + N * t))) - delta

    hi = float(np.sum(t))
    if excess(hi) >= 0.0:          # only when all t = 0
        delta, iters = hi, 0
    else:
        delta, info = brentq(excess, 0.0, hi, xtol=xtol, rtol=4 * np.finfo(float).eps, full_output=True)
        iters = info.iterations
    inner = V @ np.diag(1.0 / (1.0 + N * t / (1.0 + delta))) @ V.T
    Q = d_inv_half[:, None] * inner * d_inv_half[None, :]
    return Q, float(delta), int(iters), abs(excess(delta))
