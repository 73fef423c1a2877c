r"""The replica saddle point of the forward model and its reduction to one scalar equation.

Published equations (forward spec, section 4), with s2 = 1 + sigma^2, c = s2/alpha:

    Delta = 1 + chi + s2 chi_bar/alpha,    q_hat = m_hat = (tau/kappa)/Delta,   q_bar_hat = s2 q_hat/alpha
    E = s2 - 2m + q + s2 q_bar/alpha,      chi_hat = (tau/kappa) E/Delta^2,     chi_bar_hat = s2 chi_hat/alpha
    z = -(lam + q_bar_hat)/q_hat,          g = g(z), g' = g'(z)
    q       = [chi_hat (1 + 2zg + z^2 g')/kappa + m_hat^2 (1 + 2z + 3z^2 g + z^3 g') + chi_bar_hat (g + z g')/kappa] / q_hat^2
    m       = (m_hat/q_hat) (1 + z (1 + z g)),          chi     = (1 + z g)/(kappa q_hat)
    q_bar   = [chi_hat (g + z g')/kappa + m_hat^2 (1 + 2zg + z^2 g') + chi_bar_hat g'/kappa] / q_hat^2
    chi_bar = g/(kappa q_hat)

Reduction (derived below, proved symbolically in the tests). Write the effective ridge as
nu = -z = c + u, u >= 0 its explicit-ridge part. Then the five equations collapse to

    G(u) = tau - 1 + u g(-c - u) - lam kappa / u = 0,

which is strictly increasing in u (:func:`derive_root_slope`), so it has exactly one root; at lam = 0
the root is u = 0 for tau >= 1 and the solution of u g(-c-u) = 1 - tau for tau < 1. Given u,
every order parameter is explicit (:func:`derive_explicit_solution`): q_hat = lam/u, and the q, m,
q_bar equations are linear in the training error E, with

    E = E_signal / (1 - K/tau),   K = int (s + c)^2/(s + nu)^2 dmu(s) = 1 + 2zg + z^2 g' + 2c(g + zg') + c^2 g'.

Everything is built with sympy from the published equations; ``numeric_*`` functions lambdify the
results once (cached) for numpy or mpmath.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from lowrank_icl.theory.stieltjes import rho

alpha, tau, kappa, sigma, lam = sp.symbols("alpha tau kappa sigma lam", positive=True)
u = sp.Symbol("u", positive=True)
# Values of the pool transforms at the current z (treated as independent symbols, then tied by stieltjes).
g, dg, dgt = sp.symbols("g dg dg_tilde", positive=True)
zs = sp.Symbol("z", negative=True)
q, m, chi, q_bar, chi_bar, E = sp.symbols("q m chi q_bar chi_bar E", real=True)

s2 = 1 + sigma**2
c_implicit = s2 / alpha  # implicit ridge from finite contexts, (1 + sigma^2)/alpha

STATE = (q, m, chi, q_bar, chi_bar)
HAT_SYMBOLS = dict(zip(("q_hat", "m_hat", "q_bar_hat", "chi_hat", "chi_bar_hat"),
                       sp.symbols("q_hat m_hat q_bar_hat chi_hat chi_bar_hat", positive=True)))
q_hat = HAT_SYMBOLS["q_hat"]


@dataclass(frozen=True)
class PublishedSaddlePoint:
    """The published equations as sympy expressions.

    ``hats`` gives each conjugate as a function of the state (q, m, chi, q_bar, chi_bar);
    ``z`` is z as a function of the hats; ``rhs`` maps each state variable to its right-hand
    side as a function of the hat symbols (HAT_SYMBOLS), of z and of g, dg (the transforms at z).
    """

    delta: sp.Expr
    hats: dict
    training_error: sp.Expr
    z: sp.Expr
    rhs: dict

    def rhs_of_state(self) -> dict:
        """Right-hand sides with the hats replaced by their state expressions (the literal map)."""
        sub = {HAT_SYMBOLS[k]: v for k, v in self.hats.items()}
        return {k: v.subs(sub) for k, v in self.rhs.items()}

    def z_of_state(self) -> sp.Expr:
        return self.z.subs({HAT_SYMBOLS[k]: v for k, v in self.hats.items()})


@lru_cache(maxsize=None)
def published_saddle_point() -> PublishedSaddlePoint:
    """Build the published saddle-point equations (forward spec, section 4) verbatim."""
    delta = 1 + chi + s2 * chi_bar / alpha
    qh_state = (tau / kappa) / delta
    err = s2 - 2 * m + q + s2 * q_bar / alpha
    chih_state = (tau / kappa) * err / delta**2
    hats = {"q_hat": qh_state, "m_hat": qh_state, "q_bar_hat": s2 * qh_state / alpha,
            "chi_hat": chih_state, "chi_bar_hat": s2 * chih_state / alpha}
    qh, mh, qbh, chih, chibh = (HAT_SYMBOLS[k] for k in ("q_hat", "m_hat", "q_bar_hat", "chi_hat", "chi_bar_hat"))
    rhs = {
        q: (chih * (1 + 2 * zs * g + zs**2 * dg) / kappa + mh**2 * (1 + 2 * zs + 3 * zs**2 * g + zs**3 * dg)
            + chibh * (g + zs * dg) / kappa) / qh**2,
        m: (mh / qh) * (1 + zs * (1 + zs * g)),
        chi: (1 + zs * g) / (kappa * qh),
        q_bar: (chih * (g + zs * dg) / kappa + mh**2 * (1 + 2 * zs * g + zs**2 * dg) + chibh * dg / kappa) / qh**2,
        chi_bar: g / (kappa * qh),
    }
    return PublishedSaddlePoint(delta=delta, hats=hats, training_error=err, z=-(lam + qbh) / qh, rhs=rhs)


def scalar_equation() -> sp.Expr:
    """G(u) = tau - 1 + u g - lam kappa/u, with g = g(-c - u): the reduced saddle point."""
    return tau - 1 + u * g - lam * kappa / u


@lru_cache(maxsize=None)
def derive_scalar_equation() -> sp.Expr:
    """Derive G(u) from the Delta equation.

    Insert the chi and chi_bar right-hand sides into Delta = 1 + chi + s2 chi_bar/alpha with
    q_hat = tau/(kappa Delta); the definition z = -(lam + q_bar_hat)/q_hat = -c - u then fixes
    Delta = tau u/(lam kappa). Returns ``(Delta equation) * lam kappa / u``, simplified; the tests
    check it equals :func:`scalar_equation`.
    """
    pub = published_saddle_point()
    delta_sym = sp.Symbol("Delta", positive=True)
    qh_of_delta = tau / (kappa * delta_sym)
    hats_of_delta = {HAT_SYMBOLS["q_hat"]: qh_of_delta, HAT_SYMBOLS["m_hat"]: qh_of_delta,
                     HAT_SYMBOLS["q_bar_hat"]: s2 * qh_of_delta / alpha}
    chi_rhs = pub.rhs[chi].subs(hats_of_delta)
    chibar_rhs = pub.rhs[chi_bar].subs(hats_of_delta)
    delta_equation = delta_sym - (1 + chi_rhs + s2 * chibar_rhs / alpha)
    z_value = -c_implicit - u
    delta_value = sp.solve(sp.Eq(pub.z.subs(hats_of_delta), z_value), delta_sym)[0]
    reduced = delta_equation.subs(zs, z_value).subs(delta_sym, delta_value)
    return sp.simplify(reduced * lam * kappa / u)


@lru_cache(maxsize=None)
def derive_root_slope() -> sp.Expr:
    """dG/du for one spectral atom s of the pool (g = 1/(s + nu)).

    g(-c-u) = int dmu(s)/(s + c + u) is linear in the measure, so one atom proves it for the
    whole spectrum: dG/du = (s + c)/(s + c + u)^2 + lam kappa/u^2 > 0 (returned simplified).
    """
    s = sp.Symbol("s", nonnegative=True)
    atom = tau - 1 + u / (s + c_implicit + u) - lam * kappa / u
    return sp.simplify(sp.diff(atom, u))


@dataclass(frozen=True)
class ExplicitSolution:
    """Every order parameter as a sympy expression of (z, g, dg, dgt) and the model parameters.

    ``parts`` splits q, q_bar, q0 into the signal (m_hat^2 term), noise_T (chi_hat term) and
    noise_R (chi_bar_hat term) of the published formulas. ``stiffness`` is K of E = E_signal/(1 - K/tau).
    """

    training_error: sp.Expr
    order: dict
    parts: dict
    stiffness: sp.Expr


@lru_cache(maxsize=None)
def derive_explicit_solution() -> ExplicitSolution:
    """Solve the q, m, q_bar equations (linear once z is fixed) for them and the training error E.

    With m_hat = q_hat, chi_hat = (tau/kappa) E/Delta^2 and Delta = tau/(kappa q_hat), the ratios
    chi_hat/q_hat^2 = kappa E/tau and chi_bar_hat/q_hat^2 = c kappa E/tau no longer involve q_hat,
    so the three equations plus the definition of E are a linear system in (q, m, q_bar, E).
    """
    pub = published_saddle_point()
    chih = (tau / kappa) * E * (kappa * q_hat / tau) ** 2
    hats_of_e = {HAT_SYMBOLS["m_hat"]: q_hat, HAT_SYMBOLS["chi_hat"]: chih,
                 HAT_SYMBOLS["chi_bar_hat"]: s2 * chih / alpha}
    system = [sp.Eq(var, sp.expand(pub.rhs[var].subs(hats_of_e))) for var in (q, q_bar, m)]
    system.append(sp.Eq(E, pub.training_error))
    sol = sp.solve(system, [q, q_bar, m, E], dict=True)[0]
    err = sp.simplify(sol[E])
    stiffness = sp.expand(1 + 2 * zs * g + zs**2 * dg + 2 * c_implicit * (g + zs * dg) + c_implicit**2 * dg)

    # the three published terms of q, q_bar and q0 (spec), with chi_hat/q_hat^2 = kappa E/tau
    per_q_hat2 = kappa * err / tau  # chi_hat / q_hat^2
    parts = {
        "q": {"signal": 1 + 2 * zs + 3 * zs**2 * g + zs**3 * dg,
              "noise_T": per_q_hat2 * (1 + 2 * zs * g + zs**2 * dg) / kappa,
              "noise_R": per_q_hat2 * c_implicit * (g + zs * dg) / kappa},
        "q_bar": {"signal": 1 + 2 * zs * g + zs**2 * dg,
                  "noise_T": per_q_hat2 * (g + zs * dg) / kappa,
                  "noise_R": per_q_hat2 * c_implicit * dg / kappa},
        "q0": {"signal": (1 + 2 * zs * g + zs**2 * dg) / rho,
               "noise_T": per_q_hat2 * (g + zs * dg) / (rho * kappa),
               "noise_R": per_q_hat2 * c_implicit * dgt / kappa},
    }
    m_bar = 1 + zs * g
    order = {
        "E": err,
        "q": sp.simplify(sol[q]),
        "q_bar": sp.simplify(sol[q_bar]),
        "q0": sum(parts["q0"].values()),
        "m": sol[m],
        "m_bar": m_bar,
        "m0": m_bar / rho,
        "chi_times_q_hat": (1 + zs * g) / kappa,
        "chi_bar_times_q_hat": g / kappa,
        "chi_hat_over_q_hat2": per_q_hat2,
    }
    return ExplicitSolution(training_error=err, order=order, parts=parts, stiffness=stiffness)


def asymptotic_error(m_x, q_x, q_bar, alpha_test, sigma_test):
    """D -> infinity test error of a protocol X (TM, IDG or ODG):

    e_X = sigma_t^2 + 1 - 2 m_X + q_X + (1 + sigma_t^2) q_bar / alpha_t,

    with (m_X, q_X) = (m, q) for TM, (m0, q0) for IDG, (m_bar, q_bar) for ODG (spec section 2).
    Units: squared label units; the label variance is 1 + sigma_t^2.
    """
    return sigma_test**2 + 1 - 2 * m_x + q_x + (1 + sigma_test**2) * q_bar / alpha_test


@lru_cache(maxsize=None)
def numeric_explicit_solution(module: str = "numpy"):
    """Lambdified (order, parts) of :func:`derive_explicit_solution`.

    Signature of each callable: f(z, g, dg, dgt, alpha, tau, kappa, rho, sigma).
    """
    sol = derive_explicit_solution()
    args = (zs, g, dg, dgt, alpha, tau, kappa, rho, sigma)
    order = {k: sp.lambdify(args, v, modules=module) for k, v in sol.order.items()}
    parts = {k: {p: sp.lambdify(args, e, modules=module) for p, e in d.items()} for k, d in sol.parts.items()}
    stiffness = sp.lambdify(args, sol.stiffness, modules=module)
    return order, parts, stiffness


@lru_cache(maxsize=None)
def numeric_published_map(module: str = "numpy"):
    """Lambdified published equations: (z_of_state, hats, rhs) as functions of the state.

    z_of_state(q, m, chi, q_bar, chi_bar, alpha, tau, kappa, sigma, lam);
    rhs[name](q, m, chi, q_bar, chi_bar, z, g, dg, alpha, tau, kappa, sigma, lam).
    """
    pub = published_saddle_point()
    params = (alpha, tau, kappa, sigma, lam)
    z_fn = sp.lambdify((*STATE, *params), pub.z_of_state(), modules=module)
    hats = {k: sp.lambdify((*STATE, *params), v, modules=module) for k, v in pub.hats.items()}
    rhs = {str(k): sp.lambdify((*STATE, zs, g, dg, *params), v, modules=module)
           for k, v in pub.rhs_of_state().items()}
    return z_fn, hats, rhs
