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

Both are exported as vectorized numpy callables; the tests compare them with the published forms
(to 1e-10 in float64 and to 40 digits in mpmath) and with the general solver.
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


def published_ridgeless_idg_tau_gt_1(alpha, tau_value, kappa_value, rho_lu_value):
    """Lu et al.'s ridgeless e_IDG for tau > 1 (our TM at rho = 1), as published."""
    xs = (1 + rho_lu_value) / alpha
    return tau_value * (rho_lu_value + xs * (1 - xs * published_M(kappa_value, xs))) / (tau_value - 1)


def derive_m_is_pool_transform() -> sp.Expr:
    """The pool quadratic at rho = 1, z = -x evaluated at g = M_kappa(x); simplifies to 0."""
    poly = derive_pool_quadratic().polynomial.subs(rho, 1)
    return sp.simplify(poly.subs({gt: published_M(kappa, x), z: -x}))


def _rho1_errors(z_value, g_value, extra_subs=None):
    """TM and ODG errors at rho = 1, lam = 0, test values = training values, as sympy expressions."""
    sol = spm.derive_explicit_solution()
    dg_value = derive_pool_derivative().subs({rho: 1, gt: g_value, z: z_value})
    subs = {spm.zs: z_value, spm.g: g_value, spm.dg: dg_value, spm.dgt: dg_value, rho: 1,
            spm.sigma: sp.sqrt(rho_lu), spm.alpha: (1 + rho_lu) / x}
    if extra_subs:
        subs.update(extra_subs)
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
def derive_ridgeless_tau_lt_1():
    """(e_TM, e_ODG) at rho = 1, lam = 0, tau < 1 as expressions in x, tau, kappa, rho_Lu and the root u."""
    e_tm, e_odg = _rho1_errors(-(x + u), (1 - tau) / u, extra_subs={spm.tau: tau})
    return sp.simplify(e_tm), sp.simplify(e_odg)


@lru_cache(maxsize=None)
def _numeric(module: str):
    m_star, tm_gt, odg_gt = derive_ridgeless_tau_gt_1()
    tm_lt, odg_lt = derive_ridgeless_tau_lt_1()
    coeffs = [sp.lambdify((x, tau, kappa), cf, modules=module)
              for cf in derive_ridgeless_root_quadratic().all_coeffs()]
    args_gt = (x, tau, kappa, rho_lu, m_star)
    args_lt = (x, tau, kappa, rho_lu, u)
    return (coeffs, sp.lambdify(args_gt, tm_gt, modules=module), sp.lambdify(args_gt, odg_gt, modules=module),
            sp.lambdify(args_lt, tm_lt, modules=module), sp.lambdify(args_lt, odg_lt, modules=module))


def ridgeless_root(x_value, tau_value, kappa_value):
    """The positive root u of :func:`derive_ridgeless_root_quadratic` (cancellation-free form).

    The product of the roots is negative (c/a < 0 for tau < 1), so exactly one root is positive.
    """
    coeffs, *_ = _numeric("numpy")
    a, b, c = (np.asarray(f(x_value, tau_value, kappa_value), dtype=float) for f in coeffs)
    root = np.sqrt(b * b - 4 * a * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b < 0, (-b + root) / (2 * a), 2 * c / (-b - root))


def full_rank_ridgeless_errors(alpha, tau_value, kappa_value, rho_lu_value):
    """Closed-form ridgeless (lam = 0) errors at rho = 1: returns (e_IDG_Lu, e_ICL_Lu) = (our TM, our ODG).

    Lu et al.'s conventions: rho_lu is the noise variance. Test context and noise equal the
    training ones. tau = 1 gives +inf. Vectorized; no root finding.
    """
    xs = (1 + np.asarray(rho_lu_value, dtype=float)) / np.asarray(alpha, dtype=float)
    t, kv, rl = (np.asarray(v, dtype=float) for v in (tau_value, kappa_value, rho_lu_value))
    xs, t, kv, rl = np.broadcast_arrays(xs, t, kv, rl)
    _c, tm_gt, odg_gt, tm_lt, odg_lt = _numeric("numpy")
    tm = np.full(xs.shape, np.inf)
    odg = np.full(xs.shape, np.inf)
    gt1, lt1 = t > 1, t < 1
    if np.any(gt1):
        ms = published_M(kv[gt1], xs[gt1])
        tm[gt1] = tm_gt(xs[gt1], t[gt1], kv[gt1], rl[gt1], ms)
        odg[gt1] = odg_gt(xs[gt1], t[gt1], kv[gt1], rl[gt1], ms)
    if np.any(lt1):
        uu = ridgeless_root(xs[lt1], t[lt1], kv[lt1])
        tm[lt1] = tm_lt(xs[lt1], t[lt1], kv[lt1], rl[lt1], uu)
        odg[lt1] = odg_lt(xs[lt1], t[lt1], kv[lt1], rl[lt1], uu)
    return tm[()], odg[()]
