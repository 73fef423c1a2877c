r"""Derivations of the gradient-flow learning curves (sympy): each step of docs/derivations.md, built here.

Premises: F(Gamma) = (1/M)[||y - Phi vec Gamma||^2 + lam M0 ||Gamma||^2], dGamma/dt = -(D/2) grad F,
Gamma(0) = 0, M = tau D^2, M0 = kappa D; S the pool second moment with spectral law mu (mean 1),
mu_A its law on span(A); c = (1 + sigma^2)/alpha.

1. :func:`derive_flow_solution` -- Gamma(t) = f_t(DK) Db, f_t(x) = (1 - e^{-tx})/x, solves the flow
   (checked on one eigen-mode) and, for a mode x > 0, equals 1/x - (1/2 pi i) oint e^{-tz}/(z (z - x)) dz
   around x only (the residue at z = x; 0 outside the contour).
2. :func:`derive_complex_ridge` -- D K - z = (D/M)(Phi^T Phi + M0 lam'), lam' = lam - z tau/kappa, so
   (z - DK)^{-1} D b = -Gamma_{lam'}; the reduced equation at lam' reads
   tau z = lam kappa - (tau - 1) u - u^2 g(c + u).
3. :func:`derive_pool_divided_difference` -- from the pool quadratic at two arguments,
   (t2 - t1)/(nu1 - nu2) = rho t2 (t2 + kappa)/(rho nu1 (t1 + t2) + kappa rho nu1 + kappa - rho).
4. :func:`derive_two_point_integrals` -- partial fractions: with I_k = int s^k dmu/((s+nu1)(s+nu2)),
   I1 = g(nu2) - nu1 I0, I2 = A1(nu2) - nu1 I1, I3 = Mm(nu2) - nu1 I2 (checked on one atom).
5. :func:`derive_cross_training_error` -- the linear equation for E12 and its solution
   E12 = [s2 - Mm1 - Mm2 + I3 + c I2] / (1 - K12/tau), K12 = I2 + 2 c I1 + c^2 I0; at nu1 = nu2 it is
   the one-point E of the saddle point.
6. :func:`derive_initial_slope` -- the large-nu expansion of g~ from the pool quadratic gives the
   moments int s dmu_A = 1/rho, int s^2 dmu_A = (1 + rho/kappa)/rho^2, so the population gradient
   D b_pop = S gives m_TM'(0) = 1/rho + 1/kappa, m0'(0) = 1/rho, m_bar'(0) = 1.
7. :func:`derive_population_flow` -- tau -> infinity: the root of the reduced equation at lam' tends to
   u = -z, so nu = c - z and Gamma(t) = S (S + c)^{-1} (1 - e^{-t (S + c)}): the flow on the population
   loss. For kappa = inf (S = P_A/rho) all order parameters are closed forms (returned).
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

t, x, z = sp.symbols("t x z", positive=True)
D, M, M0, tau, kappa, lam, rho, c, sigma, alpha = sp.symbols("D M M0 tau kappa lam rho c sigma alpha",
                                                              positive=True)
nu1, nu2, t1, t2, g1, g2, s = sp.symbols("nu1 nu2 t1 t2 g1 g2 s")


@lru_cache(maxsize=None)
def derive_flow_solution() -> dict:
    """One eigen-mode x of D K with source b: gamma' = -(x gamma - b), gamma(0) = 0.

    Returns {"ode_residual": gamma' + x gamma - b (0), "initial": gamma(0) (0),
    "contour": 1/x - Res_{z=x} e^{-tz}/(z (z - x)) minus f_t(x) (0)} for gamma = f_t(x) b.
    """
    b = sp.Symbol("b")
    f = (1 - sp.exp(-t * x)) / x
    gam = f * b
    ode = sp.simplify(sp.diff(gam, t) + x * gam - b)
    contour = sp.simplify(1 / x - sp.residue(sp.exp(-t * z) / (z * (z - x)), z, x) - f)
    return {"ode_residual": ode, "initial": sp.simplify(gam.subs(t, 0)), "contour": contour, "f": f}


@lru_cache(maxsize=None)
def derive_complex_ridge() -> dict:
    """lam' with D K - z = (D/M)(Phi^T Phi + M0 lam'), at M = tau D^2, M0 = kappa D; and z(u).

    Writing Phi^T Phi as a scalar p (it commutes with everything here), solve
    (D/M)(p + lam M0) - z = (D/M)(p + M0 lam') for lam'. The reduced equation
    tau - 1 + u g - lam' kappa/u = 0 is then solved for z.
    """
    p, lp, u, g = sp.symbols("p lam_prime u g")
    eq = sp.Eq((D / M) * (p + lam * M0) - z, (D / M) * (p + M0 * lp))
    lam_prime = sp.simplify(sp.solve(eq, lp)[0].subs({M: tau * D**2, M0: kappa * D}))
    z_of_u = sp.solve(sp.Eq(tau - 1 + u * g - lam_prime * kappa / u, 0), z)[0]
    return {"lam_prime": lam_prime, "z_of_u": sp.expand(z_of_u), "u": u, "g": g}


@lru_cache(maxsize=None)
def derive_pool_divided_difference() -> sp.Expr:
    """(t2 - t1)/(nu1 - nu2) for two roots t_a of the pool quadratic P(t, nu) = 0 at nu_a.

    P(t, nu) = -rho nu t^2 + (rho - kappa - kappa rho nu) t + kappa rho (stieltjes, with z = -nu).
    P(t1, nu1) - P(t2, nu2) = (t1 - t2) A + (nu1 - nu2) B exactly (checked by expansion), with
    A = -rho nu1 (t1 + t2) + rho - kappa - kappa rho nu1 and B = -rho t2 (t2 + kappa); both are 0 at the
    roots, so the quotient is B/A: no subtraction of nearly equal numbers is left.
    """
    def P(tt, nn):
        return -rho * nn * tt**2 + (rho - kappa - kappa * rho * nn) * tt + kappa * rho
    # P(t1, nu1) - P(t2, nu2) = (t1 - t2) A + (nu1 - nu2) B, with
    A = -rho * nu1 * (t1 + t2) + rho - kappa - kappa * rho * nu1
    B = -rho * t2**2 - kappa * rho * t2
    identity = sp.expand(P(t1, nu1) - P(t2, nu2) - (t1 - t2) * A - (nu1 - nu2) * B)
    if identity != 0:
        raise AssertionError("the split of P(t1, nu1) - P(t2, nu2) is wrong")
    # both roots: (t1 - t2) A + (nu1 - nu2) B = 0, so (t2 - t1)/(nu1 - nu2) = B/A
    return sp.simplify(B / A)


def two_point_divided_difference_form() -> sp.Expr:
    """The form used by numerics: rho t2 (t2 + kappa) / (rho nu1 (t1 + t2) + kappa rho nu1 + kappa - rho)."""
    return rho * t2 * (t2 + kappa) / (rho * nu1 * (t1 + t2) + kappa * rho * nu1 + kappa - rho)


@lru_cache(maxsize=None)
def derive_two_point_integrals() -> dict:
    """Partial fractions of I_k = int s^k/((s + nu1)(s + nu2)) for one atom s (linear in the measure).

    Returns {k: recursion - integrand} (all 0) for the recursions of the module docstring, with
    g = 1/(s + nu), A1 = s/(s + nu), Mm = s^2/(s + nu) for the atom.
    """
    den = (s + nu1) * (s + nu2)
    I = {k: s**k / den for k in range(4)}
    g_2, A1_2, Mm_2 = 1 / (s + nu2), s / (s + nu2), s**2 / (s + nu2)
    return {1: sp.simplify(g_2 - nu1 * I[0] - I[1]), 2: sp.simplify(A1_2 - nu1 * I[1] - I[2]),
            3: sp.simplify(Mm_2 - nu1 * I[2] - I[3])}


@lru_cache(maxsize=None)
def derive_cross_training_error() -> dict:
    """Solve E12 = s2 - m1 - m2 + q12 + c q_bar12 with q12 = I3 + f (I2 + c I1),
    q_bar12 = I2 + f (I1 + c I0), f = E12/tau (the noise of the two solutions correlated through E12).

    Returns {"E12": solution, "K12": stiffness, "symbols": (...)}.
    """
    E12, I0, I1, I2, I3, m1, m2 = sp.symbols("E12 I0 I1 I2 I3 m1 m2")
    s2 = 1 + sigma**2
    f = E12 / tau
    q12 = I3 + f * (I2 + c * I1)
    qb12 = I2 + f * (I1 + c * I0)
    sol = sp.solve(sp.Eq(E12, s2 - m1 - m2 + q12 + c * qb12), E12)[0]
    K12 = I2 + 2 * c * I1 + c**2 * I0
    closed = (s2 - m1 - m2 + I3 + c * I2) / (1 - K12 / tau)
    return {"E12": sp.simplify(sol), "closed": closed, "difference": sp.simplify(sol - closed),
            "symbols": (E12, I0, I1, I2, I3, m1, m2)}


@lru_cache(maxsize=None)
def derive_initial_slope() -> dict:
    """Moments of mu_A from the pool quadratic at large nu, and the slopes of m at t = 0.

    g~(nu) = sum_k (-1)^k mu_k / nu^{k+1}: insert the series in the quadratic and match powers of 1/nu.
    Returns mu_1, mu_2 of mu_A and the slopes m_TM'(0) = rho mu_2 (int s^2 dmu), m0'(0) = mu_1, m_bar'(0) = rho mu_1.
    """
    w = sp.Symbol("w", positive=True)   # w = 1/nu
    a1, a2 = sp.symbols("a1 a2")
    series = w - a1 * w**2 + a2 * w**3
    nu = 1 / w
    P = -rho * nu * series**2 + (rho - kappa - kappa * rho * nu) * series + kappa * rho
    coeffs = sp.Poly(sp.expand(P * w**0), w).all_coeffs()[::-1]
    expansion = sp.expand(sp.series(P, w, 0, 3).removeO())
    eqs = [expansion.coeff(w, k) for k in (1, 2)]
    sol = sp.solve(eqs, [a1, a2], dict=True)[0]
    del coeffs
    mu1, mu2 = sp.simplify(sol[a1]), sp.simplify(sol[a2])
    return {"mu1": mu1, "mu2": mu2, "m_tm": sp.simplify(rho * mu2), "m0": mu1, "m_bar": sp.simplify(rho * mu1)}


@lru_cache(maxsize=None)
def derive_population_flow() -> dict:
    """tau -> infinity: the root u of tau - 1 + u g - (lam kappa - z tau)/u = 0 tends to -z
    (divide by tau: 1 + z/u + O(1/tau) = 0), hence nu = c - z, and the contour integral of
    -(S + c - z)^{-1} S e^{-tz}/z... gives Gamma(t) = S (S + c)^{-1} (1 - e^{-t (S + c)}).

    For kappa = inf, S = P_A/rho (one atom 1/rho on span A, weight rho of the full law):
    Gamma(t) = gamma(t) P_A, gamma(t) = (1 - e^{-t (1/rho + c)})/(1 + rho c); returns m0, q0, m_bar,
    q_bar, m (= m0), q (= q0) as closed forms in (t, rho, c).
    """
    u, g = sp.symbols("u g")
    eq = (tau - 1 + u * g - (lam * kappa - z * tau) / u) / tau
    lead = sp.limit(eq, tau, sp.oo)
    u_inf = sp.solve(lead, u)[0]
    gam = (1 - sp.exp(-t * (1 / rho + c))) / (1 + rho * c)
    return {"u_limit": u_inf, "gamma": gam, "m0": gam, "q0": gam**2, "m_bar": rho * gam, "q_bar": rho * gam**2,
            "m": gam, "q": gam**2}


__all__ = ["derive_flow_solution", "derive_complex_ridge", "derive_pool_divided_difference",
           "two_point_divided_difference_form", "derive_two_point_integrals", "derive_cross_training_error",
           "derive_initial_slope", "derive_population_flow"]
