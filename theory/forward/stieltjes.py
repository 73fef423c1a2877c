r"""Stieltjes transforms of the task-pool spectrum (docs/model.md, docs/derivations.md).

The pool second moment is S = (1/M0) sum_i w_i w_i^T with w = sqrt(D/r) A v, v ~ N(0, I_r).
On span(A), S = (1/rho) W with W = (1/M0) sum_i v_i v_i^T an r x r Wishart matrix of aspect
ratio gamma = r/M0 = rho/kappa; on the orthogonal complement S = 0.

Premise (Marchenko-Pastur): the Stieltjes transform m(w) = lim (1/r) tr (W - w)^{-1} of a unit
variance Wishart of ratio gamma is the fixed point of the resolvent identity

    m = 1 / (1 - gamma - w - gamma w m).

From it this module derives

    g~(z) = lim (1/r) tr A^T (S - z)^{-1} A = rho m(rho z),
    g(z)  = lim (1/D) tr (S - z)^{-1}      = rho g~(z) - (1 - rho)/z,

the quadratic P(g~, z) = a g~^2 + b g~ + c = 0 that g~ obeys, and the derivatives by implicit
differentiation. Numerically, on the physical domain z < 0 the quadratic has one positive and one
negative root (c/a < 0); the positive root is the Stieltjes transform (it is int dmu/(s - z) > 0),
and it is evaluated in whichever of the two algebraically equal forms has no cancellation:

    g~ = 2c / (-b + sqrt(b^2 - 4ac))   if b <= 0,     g~ = (-b - sqrt(b^2 - 4ac)) / (2a)   if b > 0.

The textbook single form loses up to ~8 digits near z = 0 for kappa < rho; this one loses none.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

# Symbols shared with the other derivation modules.
z, kappa, rho = sp.symbols("z kappa rho", real=True)
gt = sp.Symbol("g_tilde", positive=True)


@dataclass(frozen=True)
class PoolQuadratic:
    """Coefficients of a g~^2 + b g~ + c = 0 obeyed by g~(z), as sympy expressions in (z, kappa, rho)."""

    a: sp.Expr
    b: sp.Expr
    c: sp.Expr

    @property
    def polynomial(self) -> sp.Expr:
        return sp.expand(self.a * gt**2 + self.b * gt + self.c)


@lru_cache(maxsize=None)
def derive_pool_quadratic() -> PoolQuadratic:
    """Derive the quadratic for g~ from the Marchenko-Pastur resolvent identity.

    With gamma = rho/kappa, m(w) solves m (1 - gamma - w - gamma w m) = 1; substituting
    w = rho z and m = g~/rho and clearing denominators (times kappa rho) gives
    rho z g~^2 + (kappa rho z + rho - kappa) g~ + kappa rho = 0.
    """
    m, w, gamma = sp.symbols("m w gamma")
    resolvent = sp.expand(m * (1 - gamma - w - gamma * w * m) - 1)
    in_pool = resolvent.subs({m: gt / rho, w: rho * z, gamma: rho / kappa})
    poly = sp.Poly(sp.expand(-in_pool * kappa * rho), gt)
    a, b, c = (sp.factor(poly.coeff_monomial(gt**k)) for k in (2, 1, 0))
    return PoolQuadratic(a=a, b=b, c=c)


@lru_cache(maxsize=None)
def derive_pool_derivative() -> sp.Expr:
    """d g~/dz = -P_z / P_g~ by implicit differentiation of the quadratic (a sympy expression in z, g~)."""
    P = derive_pool_quadratic().polynomial
    return sp.simplify(-sp.diff(P, z) / sp.diff(P, gt))


def g_from_g_tilde(g_tilde, z_value, rho_value):
    """g = rho g~ - (1 - rho)/z: the D - r null directions of S each contribute -1/z."""
    return rho_value * g_tilde - (1 - rho_value) / z_value


def published_g(z_value, kappa_value, rho_value):
    """The published closed form of g (textbook root), for cross-checks only."""
    kz = kappa_value * rho_value * z_value
    root = np.sqrt((kz + rho_value - kappa_value) ** 2 - 4 * kappa_value * rho_value**2 * z_value)
    return (kappa_value + rho_value - kz - 2 - root) / (2 * z_value)


def published_g_derivative(z_value, kappa_value, rho_value, g_value):
    """g'(z) given g(z), by implicit differentiation of the quadratic that g obeys (cross-checks).

    g = rho g~ - (1 - rho)/z and g~' = -P_z/P_g~, so g' = rho g~'(g~) + (1 - rho)/z^2.
    """
    (_coeffs, slope) = _numeric_coefficients("numpy")
    g_tilde = (g_value + (1 - rho_value) / z_value) / rho_value
    return rho_value * slope(z_value, kappa_value, rho_value, g_tilde) + (1 - rho_value) / z_value**2


@lru_cache(maxsize=None)
def _numeric_coefficients(module: str):
    q = derive_pool_quadratic()
    args = (z, kappa, rho)
    coeffs = sp.lambdify(args, [q.a, q.b, q.c], modules=module)
    slope = sp.lambdify((z, kappa, rho, gt), derive_pool_derivative(), modules=module)
    return coeffs, slope


@dataclass(frozen=True)
class PoolTransforms:
    """g, g', g~, g~' of the task pool at z < 0 (the values the saddle point needs)."""

    g: np.ndarray
    dg: np.ndarray
    g_tilde: np.ndarray
    dg_tilde: np.ndarray


def pool_transforms(z_value, kappa_value, rho_value) -> PoolTransforms:
    """Vectorized float64 g(z), g'(z), g~(z), g~'(z) for z < 0, kappa > 0, 0 < rho <= 1.

    g(z) = lim (1/D) tr (S - z)^{-1}; g~(z) = lim (1/r) tr A^T (S - z)^{-1} A; primes are d/dz.
    Cancellation-free root (module docstring). Broadcasts over its arguments.
    """
    z_arr, k_arr, r_arr = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (z_value, kappa_value, rho_value)))
    if np.any(z_arr >= 0):
        raise ValueError("z must be < 0 (the transforms are evaluated left of the spectrum)")
    (_coeffs, slope) = _numeric_coefficients("numpy")
    g_tilde = _g_tilde(z_arr, k_arr, r_arr)
    dg_tilde = slope(z_arr, k_arr, r_arr, g_tilde)
    g = g_from_g_tilde(g_tilde, z_arr, r_arr)
    dg = r_arr * dg_tilde + (1.0 - r_arr) / z_arr**2
    return PoolTransforms(g=g[()], dg=dg[()], g_tilde=g_tilde[()], dg_tilde=np.asarray(dg_tilde)[()])


def _g_tilde(z_arr, k_arr, r_arr):
    """g~(z) as the positive root of the pool quadratic, in the cancellation-free form (module docstring)."""
    (coeffs, _slope) = _numeric_coefficients("numpy")
    a, _b, c = (np.broadcast_to(np.asarray(x, dtype=float), z_arr.shape) for x in coeffs(z_arr, k_arr, r_arr))
    # b = kappa rho z + rho - kappa, summed as (rho - kappa) + kappa rho z: rho - kappa is exact when
    # they are close, so b keeps its relative accuracy at kappa = rho (the square-Wishart edge)
    b = (r_arr - k_arr) + k_arr * r_arr * z_arr
    root = np.sqrt(b * b - 4.0 * a * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b <= 0, 2.0 * c / (root - b), (-b - root) / (2.0 * a))


def pool_transforms_mp(z_value, kappa_value, rho_value) -> PoolTransforms:
    """Scalar mpmath version of :func:`pool_transforms` at the current ``mpmath.mp.dps``."""
    z_mp, k_mp, r_mp = (mpmath.mpf(v) for v in (z_value, kappa_value, rho_value))
    if z_mp >= 0:
        raise ValueError("z must be < 0 (the transforms are evaluated left of the spectrum)")
    (coeffs, slope) = _numeric_coefficients("mpmath")
    a, _b, c = (mpmath.mpf(x) for x in coeffs(z_mp, k_mp, r_mp))
    b = (r_mp - k_mp) + k_mp * r_mp * z_mp
    root = mpmath.sqrt(b * b - 4 * a * c)
    g_tilde = 2 * c / (root - b) if b <= 0 else (-b - root) / (2 * a)
    dg_tilde = slope(z_mp, k_mp, r_mp, g_tilde)
    g = g_from_g_tilde(g_tilde, z_mp, r_mp)
    dg = r_mp * dg_tilde + (1 - r_mp) / z_mp**2
    return PoolTransforms(g=g, dg=dg, g_tilde=g_tilde, dg_tilde=dg_tilde)


def pool_transforms_by_quadrature(z_value, kappa_value, rho_value, dps: int = 50) -> PoolTransforms:
    """Independent reference: integrate 1/(s - z)^k against the MP density with mpmath.quad.

    The spectrum of S on span(A) is (1/rho) x MP(gamma = rho/kappa), with an atom of weight
    1 - 1/gamma at 0 when gamma > 1; the null space adds weight (1 - rho) at 0 to g.
    """
    with mpmath.workdps(dps):
        z_mp, k_mp, r_mp = (mpmath.mpf(v) for v in (z_value, kappa_value, rho_value))
        gamma = r_mp / k_mp
        lo, hi = (1 - mpmath.sqrt(gamma)) ** 2, (1 + mpmath.sqrt(gamma)) ** 2

        def density(x):
            return mpmath.sqrt((hi - x) * (x - lo)) / (2 * mpmath.pi * gamma * x)

        atom = max(mpmath.mpf(0), 1 - 1 / gamma)

        def moment(power):
            # g~ = int dmu_W(x) / (x/rho - z)^power ; atom at x = 0 contributes atom / (-z)^power
            cont = mpmath.quad(lambda x: density(x) / (x / r_mp - z_mp) ** power, [lo, hi])
            return cont + atom / (-z_mp) ** power

        g_tilde, dg_tilde = moment(1), moment(2)
        g = r_mp * g_tilde + (1 - r_mp) / (-z_mp)
        dg = r_mp * dg_tilde + (1 - r_mp) / z_mp**2
        return PoolTransforms(g=+g, dg=+dg, g_tilde=+g_tilde, dg_tilde=+dg_tilde)


@dataclass(frozen=True)
class PoolMoments:
    r"""Spectral moments of the pool at z = -nu < 0, each an integral against the law mu of S's eigenvalues.

    ===========  ===============================  ====================================
    field        definition in g, g'             spectral integral
    ===========  ===============================  ====================================
    g, dg        g(z), g'(z)                      int 1/(s+nu), int 1/(s+nu)^2
    g_tilde      g~(z)                            (1/r) tr A^T (S + nu)^{-1} A
    dg_tilde     g~'(z)
    A1           1 + z g                          int s/(s+nu)
    B1           g + z g'                         int s/(s+nu)^2
    A2           1 + 2 z g + z^2 g'               int s^2/(s+nu)^2
    Mm           1 + z (1 + z g)                  int s^2/(s+nu)
    Q3           1 + 2z + 3 z^2 g + z^3 g'        int s^3/(s+nu)^2
    W            nu^2 B1 = 1 - 2 Mm + Q3          int s nu^2/(s+nu)^2
    V            nu^2 g' = 1 - 2 A1 + A2          int nu^2/(s+nu)^2
    V_tilde      nu^2 g~'                         same against the law of S on span(A)
    ===========  ===============================  ====================================

    The middle-column forms cancel catastrophically when nu is large (relative error ~ eps nu^2).
    They are evaluated instead from t = g~: the pool quadratic is linear in nu, so every moment
    is rational in t, and with P = rho nu t (t + kappa) = (rho - kappa) t + kappa rho > 0 and
    sd = sqrt(disc) (disc = (kappa rho nu + kappa - rho)^2 + 4 rho^2 kappa nu) all of them are
    ratios of sums of positive terms (:func:`stable_moments`; identities proved in the tests).
    """

    g: np.ndarray
    dg: np.ndarray
    g_tilde: np.ndarray
    dg_tilde: np.ndarray
    A1: np.ndarray
    B1: np.ndarray
    A2: np.ndarray
    Mm: np.ndarray
    Q3: np.ndarray
    W: np.ndarray
    V: np.ndarray
    V_tilde: np.ndarray


def stable_moments(t, nu, k, r, sd, dgt):
    """Cancellation-free moments from t = g~(-nu) (works for numpy arrays and mpmath numbers)."""
    kt = k + t
    P = r * nu * t * kt
    A1 = k * t / kt
    B1 = r * k * k * t / (kt * sd)
    A2 = k * t * (k * k + P) / (kt * kt * sd)
    Mm = t * (k * k + k * r + r * t) / (r * kt * kt)
    Q3 = t * (P * P + 3 * P * k * k + P * k * t + k**4 + k**3 * t) / (r * kt**3 * sd)
    g = r * t + (1 - r) / nu
    dg = r * dgt + (1 - r) / nu**2
    v_tilde = nu * nu * dgt
    return PoolMoments(g=g, dg=dg, g_tilde=t, dg_tilde=dgt, A1=A1, B1=B1, A2=A2, Mm=Mm, Q3=Q3, W=nu * nu * B1,
                       V=r * v_tilde + (1 - r), V_tilde=v_tilde)


def _population_moments(nu, r):
    """The kappa = inf pool (a fresh task per prompt): S is the population second moment (1/rho) P_A.

    Each moment is the kappa -> infinity limit of :func:`stable_moments` (derived in
    :func:`derive_population_moments`; equal by the tests); with t = rho/(1 + rho nu) they are
    products of nonnegative factors. Works for numpy arrays and mpmath numbers.
    """
    t = r / (1 + r * nu)
    dgt = t * t
    return PoolMoments(g=r * t + (1 - r) / nu, dg=r * dgt + (1 - r) / nu**2, g_tilde=t, dg_tilde=dgt,
                       A1=t, B1=t * t, A2=t * t / r, Mm=t / r, Q3=t * t / (r * r), W=nu * nu * t * t,
                       V=r * nu * nu * dgt + (1 - r), V_tilde=nu * nu * dgt)


@lru_cache(maxsize=None)
def derive_population_moments() -> dict:
    """kappa -> infinity limits of the stable moments, derived with sympy (expressions in nu, rho).

    Divide the pool quadratic by kappa and let kappa -> infinity: (rho z - 1) t + rho = 0, so
    t -> rho/(1 + rho nu) (the root that stays finite; the other one runs to -infinity). Insert it in
    :func:`stable_moments` with kappa = 1/epsilon and take epsilon -> 0. The result is the moments of
    the two-atom law (weight rho at 1/rho, weight 1 - rho at 0): the pool spectrum becomes the
    population one.
    """
    nu_s, eps = sp.symbols("nu epsilon", positive=True)
    r_s = sp.Symbol("rho", positive=True)
    quad = derive_pool_quadratic()
    scaled = sp.expand(quad.polynomial.subs({kappa: 1 / eps, rho: r_s, z: -nu_s}) * eps)
    roots = sp.solve(scaled.subs(eps, 0), gt)
    t_inf = roots[0]
    k = 1 / eps
    sd = sp.sqrt((k * r_s * nu_s + k - r_s) ** 2 + 4 * r_s**2 * k * nu_s)
    mo = stable_moments(gt, nu_s, k, r_s, sd, r_s * gt * (gt + k) / sd)
    out = {"t": t_inf}
    for name in PoolMoments.__dataclass_fields__:
        out[name] = sp.factor(sp.limit(getattr(mo, name).subs(gt, t_inf), eps, 0))
    return {"nu": nu_s, "rho": r_s, **out}


def pool_moments(z_value, kappa_value, rho_value) -> PoolMoments:
    """Vectorized float64 :class:`PoolMoments` at z < 0 (see its docstring for the formulas).

    kappa may be +inf (a fresh task per prompt): those entries use :func:`_population_moments`.
    """
    nu, k, r = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (-np.asarray(z_value), kappa_value, rho_value)))
    if np.any(~(nu > 0)):
        raise ValueError("z must be < 0 (the moments are evaluated left of the spectrum)")
    infinite = np.isinf(k)
    k_fin = np.where(infinite, 1.0, k)
    t = _g_tilde(-nu, k_fin, r)
    sd = np.sqrt(((k_fin - r) + k_fin * r * nu) ** 2 + 4 * r * r * k_fin * nu)
    finite_mo = stable_moments(t, nu, k_fin, r, sd, r * t * (t + k_fin) / sd)
    if not np.any(infinite):
        return finite_mo
    pop = _population_moments(nu, r)
    return PoolMoments(**{name: np.where(infinite, getattr(pop, name), getattr(finite_mo, name))[()]
                          for name in PoolMoments.__dataclass_fields__})


@dataclass(frozen=True)
class RootMoments:
    """The four moments the reduced equation G(u) and its slope need: g, dg, A1, B1 (see :class:`PoolMoments`)."""

    g: np.ndarray
    dg: np.ndarray
    A1: np.ndarray
    B1: np.ndarray


def pool_root_moments(z_value, kappa_value, rho_value) -> RootMoments:
    """float64 g, g', A1, B1 at z < 0: the subset of :func:`pool_moments` (same formulas) that a root
    search evaluates at every iterate, at a third of the cost."""
    nu, k, r = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (-np.asarray(z_value), kappa_value, rho_value)))
    infinite = np.isinf(k)
    k_fin = np.where(infinite, 1.0, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = _g_tilde(-nu, k_fin, r)
        sd = np.sqrt(((k_fin - r) + k_fin * r * nu) ** 2 + 4 * r * r * k_fin * nu)
        kt = k_fin + t
        A1, B1, dgt = k_fin * t / kt, r * k_fin * k_fin * t / (kt * sd), r * t * kt / sd
        if np.any(infinite):  # the population law (kappa = inf), as in _population_moments
            tp = r / (1 + r * nu)
            t, dgt = np.where(infinite, tp, t), np.where(infinite, tp * tp, dgt)
            A1, B1 = np.where(infinite, tp, A1), np.where(infinite, tp * tp, B1)
        return RootMoments(g=r * t + (1 - r) / nu, dg=r * dgt + (1 - r) / nu**2, A1=A1, B1=B1)


def pool_moments_mp(z_value, kappa_value, rho_value) -> PoolMoments:
    """Scalar mpmath :class:`PoolMoments` at the current precision (kappa may be +inf)."""
    if mpmath.isinf(kappa_value):
        return _population_moments(-mpmath.mpf(z_value), mpmath.mpf(rho_value))
    tr = pool_transforms_mp(z_value, kappa_value, rho_value)
    nu, k, r = -mpmath.mpf(z_value), mpmath.mpf(kappa_value), mpmath.mpf(rho_value)
    sd = mpmath.sqrt(((k - r) + k * r * nu) ** 2 + 4 * r * r * k * nu)
    t = tr.g_tilde
    return stable_moments(t, nu, k, r, sd, r * t * (t + k) / sd)
