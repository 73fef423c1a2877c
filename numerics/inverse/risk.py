r"""Closed-form risk predictors of the inverse ICL problem (derivations in ``lowrank_icl.theory.inverse``).

Conventions follow ``numerics/inverse/model.py``: x ~ N(0, Sigma_x), w = w0 + U v, v ~ N(0, diag(Lambda)),
y = <x, w> + eps, eps ~ N(0, sigma^2). Every *risk* here is E||w_hat - w||^2 summed over the d
coordinates; the per-coordinate MSE reported by the CLI is risk / d (:func:`ore_risk_per_coordinate`,
:func:`lt1_risk_per_coordinate` return that directly from an ``InverseModel``).

Public API
----------
ore_risk(Sigma_x, U, Lambda, sigma, N, n_samples=20000, seed=0) -> OreRisk
    exact E tr Sigma_post (Monte Carlo over the r x r design Gram only), with small-noise and
    deterministic-equivalent (Marchenko-Pastur) approximations.
ore_moments(Sigma_x, U, Lambda, w0, sigma, N, n_samples=20000, seed=0) -> OreMoments
    E w_hat = w0, Cov(w_hat) = Sigma_w - sigma^2 C, C and its approximations.
ore_risk_small_noise(Sigma_x, U, sigma, N)      sigma^2 tr((U^T Sigma_x U)^{-1}) / (N - r - 1)
ore_risk_mp(sigma, gamma, N, prior_variance=1.0) per task dimension, S = I, Lambda = lam I
ore_risk_bound(b, Lambda, sigma, N)              risk bound when A^T A/N >= b I
lt1_optimal(Sigma_x, Sigma_w, w0, sigma, N) -> Lt1Optimal(b, Gamma, risk)
lt1_risk(Gamma, b, Sigma_x, Sigma_w, w0, sigma, N)   exact risk of any one-layer LT
lt1_risk_isotropic(sigma, r, N, prior_variance=1.0)  R* for Sigma_x = I, Lambda = lam I
ore_risk_per_coordinate(model), lt1_risk_per_coordinate(model)   per-coordinate risks of an InverseModel

``prior_variance`` is lam in Lambda = lam I_r (the forward solver's ``lam`` is a ridge: a different quantity).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lowrank_icl.numerics._checks import check_int, check_real
from lowrank_icl.numerics.inverse.high_dim import ore_deterministic_equivalent
from lowrank_icl.theory import inverse as theory

__all__ = ["OreRisk", "OreMoments", "Lt1Optimal", "ore_risk", "ore_moments", "ore_risk_small_noise",
           "ore_risk_mp", "ore_risk_bound", "lt1_optimal", "lt1_risk", "lt1_risk_isotropic",
           "fourth_moment", "ore_risk_per_coordinate", "lt1_risk_per_coordinate"]


def _square(name, M, d=None):
    M = np.asarray(M, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or (d is not None and M.shape[0] != d):
        raise ValueError(f"{name} must be a square matrix{'' if d is None else f' of size {d}'} "
                         f"(got shape {M.shape})")
    if not np.all(np.isfinite(M)):
        raise ValueError(f"{name} must be finite")
    if not np.allclose(M, M.T, atol=1e-10 * max(1.0, np.abs(M).max())):
        raise ValueError(f"{name} must be symmetric")
    return 0.5 * (M + M.T)


def _prior(Sigma_x, U, Lambda):
    Sigma_x = _square("Sigma_x", Sigma_x)
    d = Sigma_x.shape[0]
    if np.linalg.eigvalsh(Sigma_x)[0] <= 0:
        raise ValueError("Sigma_x must be positive definite")
    U = np.asarray(U, dtype=float)
    if U.ndim != 2 or U.shape[0] != d or U.shape[1] > d:
        raise ValueError(f"U must have shape ({d}, r) with r <= {d} (got {U.shape})")
    r = U.shape[1]
    if not np.allclose(U.T @ U, np.eye(r), atol=1e-8):
        raise ValueError("U must have orthonormal columns")
    Lambda = np.broadcast_to(check_real("Lambda", Lambda, lower=0.0), (r,)).astype(float)
    return Sigma_x, U, Lambda


def sample_design_gram(S: np.ndarray, N: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of A^T A with A = X U (N x r), rows ~ N(0, S), S = U^T Sigma_x U; shape (n, r, r)."""
    r = S.shape[0]
    L = np.linalg.cholesky(S)
    Z = rng.standard_normal((n, N, r)) @ L.T
    return np.einsum("nir,nis->nrs", Z, Z)


def ore_expected_inverse(S, Lambda, sigma: float, N: int, n: int, rng, chunk: int = 2000):
    """Monte Carlo of E_X[(sigma^2 Lambda^{-1} + A^T A)^{-1}] (r x r) with its per-entry standard error.

    Returns (mean, sem) of shape (r, r) each. Also gives the exact ORE risk:
    E tr Sigma_post = sigma^2 tr(mean).
    """
    S = np.asarray(S, dtype=float)
    D = sigma**2 * np.diag(1.0 / np.asarray(Lambda, dtype=float))
    r = S.shape[0]
    s1 = np.zeros((r, r))
    s2 = np.zeros((r, r))
    done = 0
    while done < n:
        k = min(chunk, n - done)
        inv = np.linalg.inv(D + sample_design_gram(S, N, k, rng))
        s1 += inv.sum(axis=0)
        s2 += (inv**2).sum(axis=0)
        done += k
    mean = s1 / n
    var = np.maximum(s2 / n - mean**2, 0.0) * n / max(n - 1, 1)
    return mean, np.sqrt(var / n)


@dataclass(frozen=True)
class OreRisk:
    """ORE risk E||w_hat - w||^2 = E_X tr Sigma_post (sum over d coordinates).

    Attributes
    ----------
    risk, sem : float
        Monte Carlo mean and standard error over the r x r Gram A^T A ~ Wishart_r(U^T Sigma_x U, N)
        (exact in law: only the Gram is sampled).
    small_noise : float
        sigma^2 tr((U^T Sigma_x U)^{-1}) / (N - r - 1) (nan unless N > r + 1).
    deterministic : float
        Deterministic equivalent sigma^2 tr Q (:func:`ore_deterministic_equivalent`; r, N -> infinity).
    n_samples : int
        Monte Carlo draws.
    converged, residual, iterations : bool, float, int
        Of the deterministic-equivalent fixed point.
    parameters : dict
        The scalar inputs (sigma, N, n_samples, seed) and the sizes d, r.
    """
    risk: float
    sem: float
    small_noise: float
    deterministic: float
    n_samples: int
    converged: bool
    residual: float
    iterations: int
    parameters: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        if self.converged:
            return ""
        return f"the deterministic-equivalent fixed point stopped at residual {self.residual:.2g} after {self.iterations} iterations"

    @property
    def message(self) -> str:
        return "converged" if self.converged else f"not converged: {self.reason}"

    def to_dict(self) -> dict:
        """JSON document: ``parameters``, ``version``, the risks and the convergence words."""
        from lowrank_icl.numerics._json import json_document
        return json_document(self.parameters, {
            "risk": self.risk, "sem": self.sem, "small_noise": self.small_noise, "deterministic": self.deterministic,
            "n_samples": self.n_samples, "converged": self.converged, "residual": self.residual,
            "reason": self.reason, "message": self.message, "iterations": self.iterations})


def ore_risk(Sigma_x, U, Lambda, sigma, N, n_samples: int = 20_000, seed: int = 0) -> OreRisk:
    """Exact ORE risk E_X tr Sigma_post, Sigma_post = (Lambda^{-1} + (XU)^T XU/sigma^2)^{-1}.

    Parameters
    ----------
    Sigma_x : array_like
        Covariance of the rows of X, (d, d), symmetric positive definite.
    U : array_like
        Orthonormal basis of the prior's span, (d, r).
    Lambda : float or array_like
        Prior variances of v (length r, or one value for all).
    sigma : float
        Noise standard deviation (>= 0).
    N : int
        Tokens per context.
    n_samples : int
        Monte Carlo draws of the Gram (>= 2).
    seed : int
        Seed of the draws.

    Returns
    -------
    OreRisk
        The risk (sum over the d coordinates) with its standard error and its approximations.
    """
    Sigma_x, U, Lambda = _prior(Sigma_x, U, Lambda)
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    N = check_int("N", N, lower=1)
    n_samples = check_int("n_samples", n_samples, lower=2)
    r = U.shape[1]
    S = U.T @ Sigma_x @ U
    rng = np.random.default_rng(seed)
    inputs = {"sigma": sigma, "N": N, "n_samples": n_samples, "seed": seed, "d": U.shape[0], "r": r}
    if sigma == 0.0 and r <= N:   # A has rank r almost surely: Sigma_post = 0
        return OreRisk(0.0, 0.0, 0.0, 0.0, n_samples, True, 0.0, 0, parameters=inputs)
    if sigma == 0.0:              # r > N: the unidentified part of the prior, via the pseudo-inverse limit
        vals = np.concatenate([theory.ore_conditional_risk(
            rng.standard_normal((min(2000, n_samples - k), N, r)) @ np.linalg.cholesky(S).T, Lambda, 0.0)
            for k in range(0, n_samples, 2000)])
        return OreRisk(float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(vals.size)), np.nan,
                       float(np.sum(Lambda) * (1 - N / r)) if np.allclose(S, np.eye(r)) else np.nan,
                       n_samples, True, 0.0, 0, parameters=inputs)
    # per-draw traces for an honest standard error of the trace
    s1 = s2 = 0.0
    D = sigma**2 * np.diag(1.0 / Lambda)
    for k in range(0, n_samples, 2000):
        m = min(2000, n_samples - k)
        tr = sigma**2 * np.trace(np.linalg.inv(D + sample_design_gram(S, N, m, rng)), axis1=1, axis2=2)
        s1 += tr.sum()
        s2 += (tr**2).sum()
    mean = s1 / n_samples
    sem = np.sqrt(max(s2 / n_samples - mean**2, 0.0) / (n_samples - 1))
    small = float(theory.ore_risk_small_noise(S, sigma, N)) if N > r + 1 else np.nan
    Q, delta, it, res = ore_deterministic_equivalent(S, Lambda, sigma, N)
    return OreRisk(float(mean), float(sem), small, float(sigma**2 * np.trace(Q)), n_samples,
                   bool(res < 1e-9 * max(1.0, delta)), float(res), int(it), parameters=inputs)


@dataclass(frozen=True)
class OreMoments:
    """Moments of the ORE output: mean = w0, cov = Sigma_w - sigma^2 C.

    Attributes
    ----------
    mean : ndarray
        E w_hat = w0, (d,).
    cov : ndarray
        Cov(w_hat) = Sigma_w - sigma^2 C, (d, d).
    C, C_sem : ndarray
        U E_X[(sigma^2 Lambda^{-1} + A^T A)^{-1}] U^T by Monte Carlo, and its entrywise standard error.
    C_small_noise : ndarray
        U S^{-1} U^T / (N - r - 1), S = U^T Sigma_x U (sigma -> 0, N > r + 1; nan otherwise).
    C_large_N : ndarray
        U (sigma^2 Lambda^{-1} + N S)^{-1} U^T (A^T A replaced by its mean; a Jensen lower bound).
    C_deterministic : ndarray
        U Q U^T (deterministic equivalent, :func:`ore_deterministic_equivalent`).
    """
    mean: np.ndarray
    cov: np.ndarray
    C: np.ndarray
    C_sem: np.ndarray
    C_small_noise: np.ndarray
    C_large_N: np.ndarray
    C_deterministic: np.ndarray


def ore_moments(Sigma_x, U, Lambda, w0, sigma, N, n_samples: int = 20_000, seed: int = 0) -> OreMoments:
    """E w_hat = w0 and Cov(w_hat) = Sigma_w - sigma^2 C of the oracle posterior mean (sigma > 0).

    By orthogonality of the posterior mean, Cov(v_hat | X) = Lambda - Sigma_post; the law of total
    covariance gives Cov(w_hat) = Sigma_w - U E_X[Sigma_post] U^T.

    Parameters
    ----------
    Sigma_x : array_like
        Covariance of the rows of X, (d, d), symmetric positive definite.
    U : array_like
        Orthonormal basis of the prior's span, (d, r).
    Lambda : float or array_like
        Prior variances of v (length r, or one value for all).
    sigma : float
        Noise standard deviation (>= 0).
    N : int
        Tokens per context.
    w0 : array_like
        Prior mean, (d,).
    n_samples, seed : int
        Monte Carlo draws of the Gram and their seed.

    Returns
    -------
    OreMoments
    """
    Sigma_x, U, Lambda = _prior(Sigma_x, U, Lambda)
    sigma = float(check_real("sigma", sigma, lower=0.0))
    N = check_int("N", N, lower=1)
    n_samples = check_int("n_samples", n_samples, lower=2)
    w0 = np.asarray(w0, dtype=float)
    if w0.shape != (U.shape[0],):
        raise ValueError(f"w0 must have shape ({U.shape[0]},) (got {w0.shape})")
    r = U.shape[1]
    S = U.T @ Sigma_x @ U
    inner, inner_sem = ore_expected_inverse(S, Lambda, sigma, N, n_samples, np.random.default_rng(seed))
    C = U @ inner @ U.T
    C_sem = np.sqrt(np.einsum("ia,ab,jb->ij", U**2, inner_sem**2, U**2))   # entrywise, ignores covariances
    small = U @ np.linalg.inv(S) @ U.T / (N - r - 1) if N > r + 1 else np.full_like(C, np.nan)
    large = U @ np.linalg.inv(sigma**2 * np.diag(1.0 / Lambda) + N * S) @ U.T
    Q = ore_deterministic_equivalent(S, Lambda, sigma, N)[0]
    Sigma_w = (U * Lambda) @ U.T
    return OreMoments(w0.copy(), Sigma_w - sigma**2 * C, C, C_sem, small, large, U @ Q @ U.T)


def ore_risk_small_noise(Sigma_x, U, sigma, N):
    """Small-noise ORE risk sigma^2 tr((U^T Sigma_x U)^{-1}) / (N - r - 1) (inverse-Wishart mean).

    Parameters
    ----------
    Sigma_x, U : array_like
        Input covariance (d, d) and orthonormal prior basis (d, r).
    sigma : float or array_like
        Noise standard deviation (vectorized).
    N : int
        Tokens per context, N > r + 1.

    Returns
    -------
    float or ndarray
        The sigma -> 0 risk (sum over d coordinates), one per sigma.
    """
    Sigma_x, U, _ = _prior(Sigma_x, U, 1.0)
    sigma = check_real("sigma", sigma, lower=0.0, lower_inclusive=True)
    r = U.shape[1]
    N = check_int("N", N, lower=r + 2)
    return theory.ore_risk_small_noise(U.T @ Sigma_x @ U, sigma, N)


def ore_risk_mp(sigma, gamma, N, prior_variance=1.0):
    """Marchenko-Pastur ORE risk per task dimension, E tr Sigma_post / r, for U^T Sigma_x U = I,
    Lambda = lam I, r = gamma N: (sigma^2/N) m_MP(-sigma^2/(lam N); gamma). Vectorized.

    m_MP(-mu) = 2 / [(1 - gamma + mu) + sqrt((1 - gamma + mu)^2 + 4 gamma mu)] is the
    Marchenko-Pastur(gamma) Stieltjes transform on the negative axis.

    Parameters
    ----------
    sigma : float or array_like
        Noise standard deviation.
    gamma : float or array_like
        r / N (> 0).
    N : int
        Tokens per context.
    prior_variance : float or array_like
        lam in Lambda = lam I_r (> 0).

    Returns
    -------
    float or ndarray
        The risk per task dimension; limits sigma^2 / (N (1 - gamma)) as sigma -> 0 (gamma < 1),
        lam (1 - 1/gamma) as sigma -> 0 (gamma > 1), lam as sigma -> infinity.
    """
    sigma = check_real("sigma", sigma, lower=0.0, lower_inclusive=True)
    gamma = check_real("gamma", gamma, lower=0.0)
    lam = check_real("prior_variance", prior_variance, lower=0.0)
    N = check_int("N", N, lower=1)
    return theory.ore_risk_mp_isotropic(sigma, gamma, lam, N)


def ore_risk_bound(b, Lambda, sigma, N):
    """ORE risk bound when (1/N) U^T X^T X U >= b I: sum_i 1/(1/lambda_i + N b/sigma^2) <= sigma^2 r/(N b).

    Parameters
    ----------
    b : float or array_like
        Lower bound of the design's eigenvalues on span U (> 0).
    Lambda : float or array_like
        Prior variances lambda_i.
    sigma : float or array_like
        Noise standard deviation.
    N : int
        Tokens per context.

    Returns
    -------
    float or ndarray
        The bound on E[||w_hat - w||^2 | X] (sum over coordinates).
    """
    b = check_real("b", b, lower=0.0)
    Lambda = check_real("Lambda", Lambda, lower=0.0)
    sigma = check_real("sigma", sigma, lower=0.0)
    N = check_int("N", N, lower=1)
    return theory.ore_risk_bound(b, np.atleast_1d(Lambda), sigma, N)


def fourth_moment(Sigma_x, B, N):
    """Fourth moment of a Gaussian design: E[X^T X B X^T X] = N(N+1) Sigma_x B Sigma_x + N tr(B Sigma_x) Sigma_x.

    Parameters
    ----------
    Sigma_x : array_like
        Row covariance of X (N x d), (d, d).
    B : array_like
        Symmetric (d, d) matrix.
    N : int
        Rows of X.

    Returns
    -------
    ndarray
        The (d, d) moment (Isserlis' theorem on each pair of rows).
    """
    Sigma_x = _square("Sigma_x", Sigma_x)
    B = _square("B", B, Sigma_x.shape[0])
    return theory.fourth_moment(Sigma_x, B, check_int("N", N, lower=1))


@dataclass(frozen=True)
class Lt1Optimal:
    """Optimal one-layer LT (supervised loss, infinitely many tasks): b = w0,
    Gamma = Sigma_w Sigma_x F^{-1}, risk = tr Sigma_w - tr(Gamma Sigma_x Sigma_w) (sum over d).

    Output moments: E w_hat = w0 and cov = Cov(w_hat) = Gamma F Gamma^T = Sigma_w Sigma_x Gamma^T
    (rank r: the range of Gamma is span U), with tr cov = tr Sigma_w - risk (the error is orthogonal
    to the features at the optimum).

    Attributes
    ----------
    b : ndarray
        Optimal bias w0, (d,).
    Gamma : ndarray
        Sigma_w Sigma_x F^{-1}, (d, d), F = (N+1)/N Sigma_x Sigma_w Sigma_x + (tr(Sigma_w Sigma_x) + sigma^2)/N Sigma_x.
    risk : float
        R* = tr Sigma_w - tr(Gamma Sigma_x Sigma_w) (sum over d).
    cov : ndarray
        Cov(w_hat), (d, d).
    """
    b: np.ndarray
    Gamma: np.ndarray
    risk: float
    cov: np.ndarray


def _lt1_args(Sigma_x, Sigma_w, w0, sigma, N):
    Sigma_x = _square("Sigma_x", Sigma_x)
    d = Sigma_x.shape[0]
    Sigma_w = _square("Sigma_w", Sigma_w, d)
    w0 = np.asarray(w0, dtype=float)
    if w0.shape != (d,):
        raise ValueError(f"w0 must have shape ({d},) (got {w0.shape})")
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    return Sigma_x, Sigma_w, w0, sigma, check_int("N", N, lower=1)


def lt1_optimal(Sigma_x, Sigma_w, w0, sigma, N) -> Lt1Optimal:
    """Closed-form optimal (b, Gamma) of w_hat = b + Gamma X^T (Y - X b)/N and its minimal risk.

    Parameters
    ----------
    Sigma_x, Sigma_w : array_like
        Input and task covariances, (d, d).
    w0 : array_like
        Prior mean, (d,).
    sigma : float
        Noise standard deviation.
    N : int
        Tokens per context.

    Returns
    -------
    Lt1Optimal
        b = w0, Gamma = Sigma_w Sigma_x F^{-1}, R* and Cov(w_hat).
    """
    args = _lt1_args(Sigma_x, Sigma_w, w0, sigma, N)
    b, G, R = theory.lt1_optimal(*args)
    cov = args[1] @ args[0] @ G.T
    return Lt1Optimal(b, G, R, 0.5 * (cov + cov.T))


def lt1_risk(Gamma, b, Sigma_x, Sigma_w, w0, sigma, N) -> float:
    """Exact risk E||w_hat - w||^2 of the one-layer LT w_hat = b + Gamma X^T (Y - X b) / N with any (b, Gamma).

    R = tr M - 2 tr(Gamma Sigma_x M) + tr(Gamma F Gamma^T), M = Sigma_w + (w0 - b)(w0 - b)^T,
    F = (N+1)/N Sigma_x M Sigma_x + (tr(M Sigma_x) + sigma^2)/N Sigma_x.

    Parameters
    ----------
    Gamma : array_like
        (d, d).
    b : array_like
        (d,).
    Sigma_x, Sigma_w : array_like
        Input and task covariances, (d, d).
    w0 : array_like
        Prior mean, (d,).
    sigma : float
        Noise standard deviation.
    N : int
        Tokens per context.

    Returns
    -------
    float
        R (sum over the d coordinates).
    """
    Sigma_x, Sigma_w, w0, sigma, N = _lt1_args(Sigma_x, Sigma_w, w0, sigma, N)
    Gamma = np.asarray(Gamma, dtype=float)
    if Gamma.shape != Sigma_x.shape:
        raise ValueError(f"Gamma must have shape {Sigma_x.shape} (got {Gamma.shape})")
    b = np.asarray(b, dtype=float)
    if b.shape != w0.shape:
        raise ValueError(f"b must have shape {w0.shape} (got {b.shape})")
    return theory.lt1_risk(Gamma, b, Sigma_x, Sigma_w, w0, sigma, N)


def lt1_risk_isotropic(sigma, r, N, prior_variance=1.0):
    """Optimal one-layer LT risk for Sigma_x = I, Lambda = lam I_r: R* = r lam (lam (r+1) + sigma^2)/((N + r + 1) lam + sigma^2).

    Parameters
    ----------
    sigma : float or array_like
        Noise standard deviation.
    r : float or array_like
        Task rank.
    N : int
        Tokens per context.
    prior_variance : float or array_like
        lam (> 0).

    Returns
    -------
    float or ndarray
        R* (sum over coordinates); it does not vanish as sigma -> 0.
    """
    sigma = check_real("sigma", sigma, lower=0.0, lower_inclusive=True)
    r = check_real("r", r, lower=0.0)
    lam = check_real("prior_variance", prior_variance, lower=0.0)
    N = check_int("N", N, lower=1)
    return theory.lt1_risk_isotropic(sigma, r, N, lam)


def ore_risk_per_coordinate(model, n_samples: int = 20_000, seed: int = 0) -> float:
    """Per-coordinate ORE risk E||w_hat - w||^2 / d of an ``InverseModel`` (the CLI's ``ore_theory``).

    Parameters
    ----------
    model : InverseModel
        The task distribution (Sigma_x, U, Lambda, sigma, N).
    n_samples, seed : int
        Monte Carlo draws of the r x r design Gram and their seed (see :func:`ore_risk`).

    Returns
    -------
    float
        E_X tr Sigma_post / d, Sigma_post = (Lambda^{-1} + (XU)^T XU / sigma^2)^{-1}.
    """
    return ore_risk(model.Sigma_x, model.U, model.Lambda, model.sigma, model.N, n_samples, seed).risk / model.d


def lt1_risk_per_coordinate(model) -> float:
    """Per-coordinate risk of the optimal one-layer LT of an ``InverseModel`` (the CLI's ``lt1_theory``).

    Parameters
    ----------
    model : InverseModel
        The task distribution (Sigma_x, Sigma_w, w0, sigma, N).

    Returns
    -------
    float
        R* / d, R* = tr Sigma_w - tr(Gamma* Sigma_x Sigma_w) (:func:`lt1_optimal`).
    """
    return lt1_optimal(model.Sigma_x, model.Sigma_w, model.w0, model.sigma, model.N).risk / model.d
