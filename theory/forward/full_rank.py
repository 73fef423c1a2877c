r"""The full-rank special case (rho = 1): closed forms of Lu, Letey, Zavatone-Veth, Maiti, Pehlevan.

Their conventions: noise variance rho_Lu = sigma^2, ridge lam_Lu = lam kappa/tau; their e_ICL is our
ODG (= IDG at rho = 1) and their e_IDG is our TM, both at alpha_t = alpha, sigma_t = sigma.
With x* = (1 + rho_Lu)/alpha (our implicit ridge c) they publish

    M_k(x) = 2 / ((x + 1 - 1/k) + sqrt((x + 1 - 1/k)^2 + 4x/k)),  m* = M_kappa(x*),  mu* = x* M_{kappa/tau}(x*),
    ridgeless e_ICL (tau < 1) = tau (1+x*)/(1-tau) [1 - tau(1-mu*)^2 - ((x*-rho_Lu)/x*) mu*] - 2tau(1-mu*) + rho_Lu + 1,
    ridgeless e_IDG (tau > 1) = tau (rho_Lu + x*(1 - x* m*)) / (tau - 1).

This module derives closed forms from the general (low-rank) equations of
:mod:`lowrank_icl.theory.forward.saddle_point` at rho = 1, lam = 0:

* tau > 1: the root is u = 0, so z = -x*, g = M_kappa(x*) (:func:`derive_m_is_pool_transform`), and
  g' follows from the quadratic; every error is then explicit in m*.
* tau < 1: the root solves u g(-x* - u) = 1 - tau, so g = (1 - tau)/u; inserting that into the pool
  quadratic at z = -(x* + u) leaves a quadratic in u with exactly one positive root
  (:func:`derive_ridgeless_root_quadratic`); every error is explicit in it.

The numeric :func:`full_rank_ridgeless_errors` takes only the root from these derivations and
evaluates the errors through the cancellation-free moments (the symbolic closed forms cancel at
large alpha); the tests compare it with the published forms (Lu et al.'s Result 1, tau < 1 and
tau > 1, to 1e-40 at 50 digits through the solver) and with 50-digit references up to alpha = 1e14.
"""
from __future__ import annotations

from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from lowrank_icl.theory.forward import saddle_point as spm
from lowrank_icl.theory.forward.stieltjes import derive_pool_derivative, derive_pool_quadratic, gt, kappa, rho, z

x, rho_lu, k = sp.symbols("x rho_Lu k", positive=True)
u = spm.u
tau = spm.tau


def published_M(k_value, x_value):
    """Lu et al.'s M_k(x) (numpy or sympy arguments)."""
    if isinstance(x_value, sp.Basic) or isinstance(k_value, sp.Basic):
        sqrt = sp.sqrt
    elif isinstance(x_value, mpmath.mpf) or isinstance(k_value, mpmath.mpf):
        sqrt = mpmath.sqrt
    else:
        sqrt = np.sqrt
    b = x_value + 1 - 1 / k_value
    return 2 / (b + sqrt(b**2 + 4 * x_value / k_value))


def published_ridgeless_icl_tau_lt_1(alpha, tau_value, kappa_value, rho_lu_value):
    """Lu et al.'s ridgeless e_ICL for tau < 1 (our ODG = IDG at rho = 1), as published."""
    xs = (1 + rho_lu_value) / alpha
    mu = xs * published_M(kappa_value / tau_value, xs)
    return (tau_value * (1 + xs) / (1 - tau_value) * (1 - tau_value * (1 - mu) ** 2 - ((xs - rho_lu_value) / xs) * mu)
            - 2 * tau_value * (1 - mu) + rho_lu_value + 1)


def published_ridgeless_icl_tau_gt_1(alpha, tau_value, kappa_value, rho_lu_value):
    """Lu et al.'s ridgeless e_ICL for tau > 1 (our ODG at rho = 1), as published (their Result 1).

    With m* = M_kappa(x*) and k* = 1/(1 - kappa (m*/(kappa + m*))^2):
    e_ICL = (k* - 1/(tau-1)) (1 + x*) (x* m*)^2 + (3 - 2 tau)/(tau - 1) m* x*^2
            + ((1 + rho_Lu)/(tau - 1) m* + 1) x* + rho_Lu m*/(tau - 1) + rho_Lu.
    """
    xs = (1 + rho_lu_value) / alpha
    ms = published_M(kappa_value, xs)
    ks = 1 / (1 - kappa_value * (ms / (kappa_value + ms)) ** 2)
    t1 = tau_value - 1
    return ((ks - 1 / t1) * (1 + xs) * (xs * ms) ** 2 + (3 - 2 * tau_value) / t1 * ms * xs**2
            + ((1 + rho_lu_value) / t1 * ms + 1) * xs + rho_lu_value * ms / t1 + rho_lu_value)


def published_ridgeless_idg_tau_gt_1(alpha, tau_value, kappa_value, rho_lu_value):
    """Lu et al.'s ridgeless e_IDG for tau > 1 (our TM at rho = 1), as published."""
    xs = (1 + rho_lu_value) / alpha
    return tau_value * (rho_lu_value + xs * (1 - xs * published_M(kappa_value, xs))) / (tau_value - 1)


def derive_m_is_pool_transform() -> sp.Expr:
    """The pool quadratic at rho = 1, z = -x evaluated at g = M_kappa(x); simplifies to 0."""
    poly = derive_pool_quadratic().polynomial.subs(rho, 1)
    return sp.simplify(poly.subs({gt: published_M(kappa, x), z: -x}))


def _rho1_errors(z_value, g_value):
    """TM and ODG errors at rho = 1, lam = 0, test values = training values, as sympy expressions."""
    sol = spm.derive_explicit_solution()
    dg_value = derive_pool_derivative().subs({rho: 1, gt: g_value, z: z_value})
    subs = {spm.zs: z_value, spm.g: g_value, spm.dg: dg_value, spm.dgt: dg_value, rho: 1,
            spm.sigma: sp.sqrt(rho_lu), spm.alpha: (1 + rho_lu) / x}
    order = {name: sol.order[name].subs(spm.MOMENT_DEFINITIONS).subs(subs) for name in ("E", "m_bar", "q_bar")}
    e_tm = order["E"]  # E is the TM error at alpha_t = alpha, sigma_t = sigma by definition
    e_odg = spm.asymptotic_error(order["m_bar"], order["q_bar"], order["q_bar"], (1 + rho_lu) / x, sp.sqrt(rho_lu))
    return e_tm, e_odg


@lru_cache(maxsize=None)
def derive_ridgeless_tau_gt_1():
    """(e_TM, e_ODG) at rho = 1, lam = 0, tau > 1 in terms of x and m* = M_kappa(x) (symbol ``g``)."""
    m_star = sp.Symbol("m_star", positive=True)
    e_tm, e_odg = _rho1_errors(-x, m_star)
    # the pool quadratic lets us eliminate m*^2: reduce both to degree 1 in m*
    quad = sp.Poly(derive_pool_quadratic().polynomial.subs({rho: 1, z: -x, gt: m_star}), m_star)
    e_tm = sp.simplify(sp.rem(sp.together(e_tm).as_numer_denom()[0], quad.as_expr(), m_star)
                       / sp.rem(sp.together(e_tm).as_numer_denom()[1], quad.as_expr(), m_star))
    e_odg = sp.simplify(e_odg)
    return m_star, e_tm, e_odg


@lru_cache(maxsize=None)
def derive_ridgeless_root_quadratic() -> sp.Poly:
    """The quadratic in u obeyed by the ridgeless root at rho = 1, tau < 1.

    The root equation gives g(-x-u) = (1 - tau)/u; inserting it into the pool quadratic at
    z = -(x + u) and clearing u^2 leaves a polynomial of degree 2 in u.
    """
    poly = derive_pool_quadratic().polynomial.subs({rho: 1, z: -(x + u), gt: (1 - tau) / u})
    return sp.Poly(sp.factor(sp.expand(poly * u**2)), u)


@lru_cache(maxsize=None)
def _root_coefficients():
    return [sp.lambdify((x, tau, kappa), cf, modules="numpy") for cf in derive_ridgeless_root_quadratic().all_coeffs()]


def ridgeless_root(x_value, tau_value, kappa_value):
    """The positive root u of :func:`derive_ridgeless_root_quadratic` (cancellation-free form).

    The product of the roots is negative (c/a < 0 for tau < 1), so exactly one root is positive.
    """
    a, b, c = (np.asarray(f(x_value, tau_value, kappa_value), dtype=float) for f in _root_coefficients())
    root = np.sqrt(b * b - 4 * a * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b < 0, (-b + root) / (2 * a), 2 * c / (-b - root))


def full_rank_ridgeless_errors(alpha, tau_value, kappa_value, rho_lu_value):
    """Closed-form ridgeless (lam = 0) errors at rho = 1: returns (e_IDG_Lu, e_ICL_Lu) = (our TM, our ODG).

    Lu et al.'s conventions: rho_lu is the noise variance. Test context and noise equal the
    training ones. tau = 1 gives +inf. Vectorized; no root finding: the root is u = 0 (tau > 1) or the
    positive root of :func:`derive_ridgeless_root_quadratic` (tau < 1), and the errors are evaluated
    through the cancellation-free pool moments and the nonnegative error parts
    (saddle_point.evaluate_explicit, saddle_point.error_from_parts), so they keep ~1e-13 relative
    accuracy at any alpha (the symbolic closed forms of this module lose up to ~eps alpha^(1/2)).
    """
    from lowrank_icl.theory.forward.stieltjes import pool_moments

    a, t, kv, rl = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (alpha, tau_value, kappa_value,
                                                                            rho_lu_value)))
    xs = (1 + rl) / a
    u = np.zeros(xs.shape)
    lt1 = t < 1
    if np.any(lt1):
        u[lt1] = ridgeless_root(xs[lt1], t[lt1], kv[lt1])
    sigma = np.sqrt(rl)
    mo = pool_moments(-(xs + u), kv, np.ones_like(xs))
    order, parts = spm.evaluate_explicit(u, mo, a, t, kv, np.ones_like(xs), sigma, np.zeros_like(xs))
    with np.errstate(invalid="ignore"):
        tm = spm.error_from_parts(parts["q"], order["q_bar"], a, sigma)
        odg = spm.error_from_parts(parts["q_bar"], order["q_bar"], a, sigma)
    tm = np.where(t == 1, np.inf, tm)
    odg = np.where(t == 1, np.inf, odg)
    return tm[()], odg[()]
