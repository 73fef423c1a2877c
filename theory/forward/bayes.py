r"""Large-D errors of the Gaussian Bayes estimator (GMMSE) of in-context regression.

Premises: tokens x ~ N(0, I_D/D), context of L = alpha D tokens, labels y = <w, x> + sigma_t xi.
The estimator is the posterior mean under the population prior w ~ N(0, (D/r) A A^T) (A: D x r,
orthonormal, r = rho D) with assumed noise std sigma:

    w_hat = A a_hat,   a_hat = (Z^T Z + lam I_r)^{-1} Z^T y,   Z = X A (L x r),   lam = sigma^2 rho,

a ridge regression on the r subspace coordinates whose penalty is sigma^2 over the prior variance D/r.

Decomposition (exact at every D). Write the test task w = A a + B b with B an orthonormal basis of
the complement. X A and X B are independent, so y = Z a + eta with eta = X B b + sigma_t xi, given b a
Gaussian vector of variance s_eta = ||b||^2/D + sigma_t^2 per label, independent of Z. In the
eigenbasis of Q = Z^T Z (eigenvalue q) each coordinate of a - a_hat is (lam a - sqrt(q) eta)/(q + lam),
so with s_a the variance of a coordinate of a,

    e = sigma_t^2 + E||b||^2/D + (1/D) sum_q [ s_a lam^2 + s_eta q ] / (q + lam)^2.

The protocols: IDG (a ~ N(0, (D/r) I), b = 0): s_a = 1/rho, s_eta = sigma_t^2; ODG (w ~ N(0, I)):
s_a = 1, E||b||^2/D = 1 - rho, s_eta = sigma_t^2 + 1 - rho; TM equals IDG in law (pool tasks are
draws from the prior and GMMSE ignores the pool).

Limit (Marchenko-Pastur). Q = alpha W with W = D Z^T Z / L an r x r Wishart of ratio gamma = rho/alpha,
so with mu = lam/alpha = sigma^2 rho/alpha and m(z) = lim (1/r) tr (W - z)^{-1},
:func:`derive_eigen_decomposition` (sympy ``apart``) turns the sum into

    e = sigma_t^2 + E||b||^2/D + rho [ s_a mu^2 m'(-mu) + (s_eta/alpha) (m(-mu) - mu m'(-mu)) ].

m is the pool transform of :mod:`lowrank_icl.theory.forward.stieltjes` with the context playing the
pool (kappa -> alpha): g~(z) = rho m(rho z), so m(-mu) = g~(-sigma^2/alpha)/rho and
m'(-mu) = g~'(-sigma^2/alpha)/rho^2. For IDG at sigma_t = sigma this collapses to

    e_IDG = sigma^2 [1 + g~(-sigma^2/alpha)/alpha]            (tested against the sum above).

sigma = 0 (lam = 0), by the same sum: alpha > rho: the extra term is s_eta rho/(alpha - rho);
alpha < rho: a fraction 1 - alpha/rho of the r directions is unseen (q = 0, contributing s_a each)
and the nonzero eigenvalues of W are gamma times an MP law of ratio 1/gamma, so the extra term is
rho s_a (1 - alpha/rho) + s_eta alpha/(rho - alpha); alpha = rho diverges unless s_eta = 0.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from lowrank_icl.theory.forward.stieltjes import pool_transforms
from lowrank_icl.theory.forward.protocols import PROTOCOLS


@lru_cache(maxsize=None)
def derive_eigen_decomposition():
    """Per-eigenvalue error and its split into the resolvent moments m = 1/(s+mu), m' = 1/(s+mu)^2.

    Per eigen-direction of Q = alpha s: E[(lam a - sqrt(q) eta)^2]/(q + lam)^2 with a, eta independent,
    zero mean, variances s_a, s_eta (the cross term vanishes). Returns (per_eigenvalue, c1, c2) with
    per_eigenvalue = c1/(s + mu) + c2/(s + mu)^2 as sympy expressions in (s, mu, alpha, s_a, s_eta).
    """
    s, mu, alpha, s_a, s_eta = sp.symbols("s mu alpha s_a s_eta", positive=True)
    a, eta = sp.symbols("a eta", real=True)
    q, lam = alpha * s, alpha * mu
    squared = sp.expand((lam * a - sp.sqrt(q) * eta) ** 2)
    # E over a, eta: a^2 -> s_a, eta^2 -> s_eta, a eta -> 0
    expect = squared.subs(a * eta, 0).subs({a**2: s_a, eta**2: s_eta})
    per_eigen = sp.simplify(expect / (q + lam) ** 2)
    parts = sp.apart(sp.together(per_eigen), s)
    c1 = sp.simplify(parts.coeff(1 / (s + mu)))
    c2 = sp.simplify(sp.expand(parts - c1 / (s + mu)) * (s + mu) ** 2)
    assert sp.simplify(per_eigen - c1 / (s + mu) - c2 / (s + mu) ** 2) == 0
    return per_eigen, c1, c2, {"s": s, "mu": mu, "alpha": alpha, "s_a": s_a, "s_eta": s_eta}


@lru_cache(maxsize=None)
def _numeric_coefficients():
    _, c1, c2, sym = derive_eigen_decomposition()
    args = (sym["mu"], sym["alpha"], sym["s_a"], sym["s_eta"])
    return sp.lambdify(args, c1, "numpy"), sp.lambdify(args, c2, "numpy")


def _protocol_variances(rho, sigma_test):
    """(s_a, s_eta, E||b||^2/D) for IDG and ODG."""
    s2 = sigma_test**2
    return {"idg": (1.0 / rho, s2, 0.0), "odg": (1.0, s2 + 1.0 - rho, 1.0 - rho)}


def gmmse_limit_errors(alpha, rho, sigma, sigma_test=None) -> dict:
    r"""D -> oo test errors {"tm", "idg", "odg"} of GMMSE (module docstring), scalars.

    ``alpha`` the context ratio L/D, ``rho`` = r/D, ``sigma`` the noise std the posterior assumes,
    ``sigma_test`` that of the test labels (default sigma). sigma = 0 uses the closed forms of the
    module docstring (infinite at alpha = rho when the noise seen by the estimator is nonzero).
    """
    alpha, rho, sigma = float(alpha), float(rho), float(sigma)
    if not (alpha > 0 and 0 < rho <= 1 and sigma >= 0):
        raise ValueError(f"need alpha > 0, 0 < rho <= 1, sigma >= 0 (got {alpha}, {rho}, {sigma})")
    s_t = sigma if sigma_test is None else float(sigma_test)
    out = {}
    if sigma > 0:
        z = -sigma**2 / alpha
        pt = pool_transforms(z, alpha, rho)
        mu = sigma**2 * rho / alpha
        m, dm = float(pt.g_tilde) / rho, float(pt.dg_tilde) / rho**2
        c1f, c2f = _numeric_coefficients()
        for name, (s_a, s_eta, b2) in _protocol_variances(rho, s_t).items():
            c1, c2 = c1f(mu, alpha, s_a, s_eta), c2f(mu, alpha, s_a, s_eta)
            out[name] = s_t**2 + b2 + rho * (c1 * m + c2 * dm)
    else:
        for name, (s_a, s_eta, b2) in _protocol_variances(rho, s_t).items():
            if alpha > rho:
                extra = s_eta * rho / (alpha - rho)
            elif alpha < rho:
                extra = rho * s_a * (1 - alpha / rho) + s_eta * alpha / (rho - alpha)
            else:
                extra = np.inf if s_eta > 0 else rho * s_a * 0.0
            out[name] = s_t**2 + b2 + extra
    out["tm"] = out["idg"]
    return {k: out[k] for k in PROTOCOLS}


def gmmse_idg_closed_form(alpha, rho, sigma):
    """e_IDG = sigma^2 [1 + g~(-sigma^2/alpha)/alpha] (pool transform at kappa = alpha), sigma > 0."""
    pt = pool_transforms(-np.square(sigma) / alpha, alpha, rho)
    return np.square(sigma) * (1 + pt.g_tilde / alpha)
