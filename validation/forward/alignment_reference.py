r"""Reference: the ridgeless test error of Letey, Zavatone-Veth, Lu, Pehlevan (pretrain-test alignment,
ICLR 2026) and their sampled-resolvent estimator of it, re-implemented from the formulas.

Their setting is ours at lam = 0 with the test context and noise equal to the training ones, and
their noise parameter is the variance (rho_L = sigma^2). With c = (mean(s) + sigma^2)/alpha, an
explicit ridge xi (0 for tau > 1; the root of xi M(c + xi) = 1 - tau for tau < 1), nu = c + xi,
M = (1/d) tr (S + nu)^{-1}, M2 = (1/d) tr (S + nu)^{-2} of the pool S, and

    F  = ((1 - 1/kappa + nu M/kappa) Sigma + nu)^{-1},   F2 = F (((M - nu M2)/kappa) Sigma + I) F,
    f  = (sigma^2 + nu - nu^2 M - xi (1 - 2 nu M + nu^2 M2)) / (tau - (1 - 2 xi M + xi^2 M2)),

the error on a test law Sigma' is

    e = sigma^2 + ((mean(t) + sigma^2)/alpha) (1 + (f - 2nu) M + (nu^2 - xi f) M2)
        + f (1/d) tr Sigma' F - (f xi - nu^2) (1/d) tr Sigma' F2.

:func:`letey_error` evaluates it for given (M, M2, xi); fed with the deterministic equivalent it must
equal our lam = 0 solution. Their published code estimates M and M2 by averaging traces over sampled
pools at finite d (:func:`sampled_resolvent_error` does the same: ``draws`` pools at dimension ``dim``,
the xi root found on the averaged sampled M of those pools).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from lowrank_icl.numerics import TaskSpectrum


def letey_error(alpha, tau, kappa, sigma, spectrum: TaskSpectrum, M, M2, xi):
    """Their closed form at given resolvent traces M, M2 and explicit ridge xi (scalars)."""
    s, t, p = spectrum.train, spectrum.test, spectrum.weights
    m1, mt = spectrum.train_mean, spectrum.test_mean
    nu = (m1 + sigma**2) / alpha + xi
    x_hat = 1 - 1 / kappa + nu * M / kappa
    fr = 1.0 / (x_hat * s + nu)                       # F is diagonal in Sigma's eigenbasis
    fr2 = fr * (((M - nu * M2) / kappa) * s + 1.0) * fr
    f = (sigma**2 + nu - nu**2 * M - xi * (1 - 2 * nu * M + nu**2 * M2)) / (tau - (1 - 2 * xi * M + xi**2 * M2))
    pretraining = sigma**2 + ((mt + sigma**2) / alpha) * (1 + (f - 2 * nu) * M + (nu**2 - xi * f) * M2)
    return pretraining + f * np.dot(p, t * fr) - (f * xi - nu**2) * np.dot(p, t * fr2)


def discretize(spectrum: TaskSpectrum, dim: int) -> np.ndarray:
    """The train variances of ``dim`` directions: the quantile discretization of the atoms' law
    (direction j gets the atom whose cumulative weight, atoms sorted by decreasing s, covers (j + 1/2)/dim)."""
    order = np.argsort(-spectrum.train, kind="stable")
    cum = np.cumsum(spectrum.weights[order])
    idx = np.minimum(np.searchsorted(cum, (np.arange(dim) + 0.5) / dim), order.size - 1)
    return spectrum.train[order][idx]


def sampled_pool_eigenvalues(spectrum: TaskSpectrum, kappa: float, dim: int, draws: int, rng) -> np.ndarray:
    """Eigenvalues of ``draws`` sampled pools S = (1/M0) sum w w^T, w ~ N(0, diag(s_dim)), M0 = kappa dim."""
    s_dim = discretize(spectrum, dim)
    n_tasks = max(int(round(kappa * dim)), 1)
    out = np.empty((draws, dim))
    for i in range(draws):
        w = np.sqrt(s_dim)[:, None] * rng.standard_normal((dim, n_tasks))
        out[i] = np.linalg.eigvalsh(w @ w.T / n_tasks)
    return out


def sampled_resolvent_error(alpha, tau, kappa, sigma, spectrum: TaskSpectrum, dim: int = 100, draws: int = 10,
                            rng=None) -> float:
    """Their estimator: M, M2 averaged over ``draws`` sampled pools at dimension ``dim``, then :func:`letey_error`."""
    rng = np.random.default_rng(rng)
    eig = sampled_pool_eigenvalues(spectrum, kappa, dim, draws, rng)
    c = (spectrum.train_mean + sigma**2) / alpha

    def traces(nu):
        r = 1.0 / (eig + nu)
        return float(np.mean(r)), float(np.mean(r * r))

    xi = 0.0
    if tau < 1:
        hi = 1.0
        while hi * traces(c + hi)[0] < 1 - tau:
            hi *= 2.0
        xi = brentq(lambda v: v * traces(c + v)[0] - (1 - tau), 0.0, hi, xtol=1e-300, rtol=1e-15)
    M, M2 = traces(c + xi)
    return float(letey_error(alpha, tau, kappa, sigma, spectrum, M, M2, xi))


__all__ = ["letey_error", "sampled_resolvent_error", "sampled_pool_eigenvalues", "discretize"]
