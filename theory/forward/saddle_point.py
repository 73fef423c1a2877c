r"""The replica saddle point of the forward model and its reduction to one scalar equation.

Published equations (docs/model.md), with s2 = 1 + sigma^2, c = s2/alpha:

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

Everything is built with sympy from the published equations. The published right-hand sides are
written in the spectral moments A1 = 1 + zg, B1 = g + zg', A2 = 1 + 2zg + z^2 g', Mm = 1 + z(1 + zg),
Q3 = 1 + 2z + 3z^2 g + z^3 g' so that numerics can evaluate them without cancellation
(stieltjes.PoolMoments); :func:`evaluate_explicit` is the numeric form of the solution.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from lowrank_icl.theory.forward.stieltjes import rho

alpha, tau, kappa, sigma, lam = sp.symbols("alpha tau kappa sigma lam", positive=True)
u = sp.Symbol("u", positive=True)
# Values of the pool transforms at the current z (treated as independent symbols, then tied by stieltjes).
g, dg, dgt = sp.symbols("g dg dg_tilde", positive=True)
zs = sp.Symbol("z", negative=True)
q, m, chi, q_bar, chi_bar, E = sp.symbols("q m chi q_bar chi_bar E", real=True)

s2 = 1 + sigma**2
c_implicit = s2 / alpha  # implicit ridge from finite contexts, (1 + sigma^2)/alpha

STATE = (q, m, chi, q_bar, chi_bar)
# Spectral moments of the pool at z (see stieltjes.PoolMoments); the published equations are
# written in them so that numerics can evaluate each one in a cancellation-free form.
A1, B1, A2, Mm, Q3 = sp.symbols("A1 B1 A2 Mm Q3", positive=True)
MOMENTS = (A1, B1, A2, Mm, Q3)
MOMENT_DEFINITIONS = {A1: 1 + zs * g, B1: g + zs * dg, A2: 1 + 2 * zs * g + zs**2 * dg,
                      Mm: 1 + zs * (1 + zs * g), Q3: 1 + 2 * zs + 3 * zs**2 * g + zs**3 * dg}
HAT_SYMBOLS = dict(zip(("q_hat", "m_hat", "q_bar_hat", "chi_hat", "chi_bar_hat"),
                       sp.symbols("q_hat m_hat q_bar_hat chi_hat chi_bar_hat", positive=True)))
q_hat = HAT_SYMBOLS["q_hat"]


@dataclass(frozen=True)
class PublishedSaddlePoint:
    """The published equations as sympy expressions.

    ``hats`` gives each conjugate as a function of the state (q, m, chi, q_bar, chi_bar);
    ``z`` is z as a function of the hats; ``rhs`` maps each state variable to its right-hand
    side as a function of the hat symbols (HAT_SYMBOLS), of g, dg and of the moment symbols
    A1, B1, A2, Mm, Q3 (MOMENT_DEFINITIONS gives each in g, dg, z: the published forms).
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
    """Build the published saddle-point equations (docs/model.md) verbatim."""
    delta = 1 + chi + s2 * chi_bar / alpha
    qh_state = (tau / kappa) / delta
    err = s2 - 2 * m + q + s2 * q_bar / alpha
    chih_state = (tau / kappa) * err / delta**2
    hats = {"q_hat": qh_state, "m_hat": qh_state, "q_bar_hat": s2 * qh_state / alpha,
            "chi_hat": chih_state, "chi_bar_hat": s2 * chih_state / alpha}
    qh, mh, qbh, chih, chibh = (HAT_SYMBOLS[k] for k in ("q_hat", "m_hat", "q_bar_hat", "chi_hat", "chi_bar_hat"))
    rhs = {
        q: (chih * A2 / kappa + mh**2 * Q3 + chibh * B1 / kappa) / qh**2,
        m: (mh / qh) * Mm,
        chi: A1 / (kappa * qh),
        q_bar: (chih * B1 / kappa + mh**2 * A2 + chibh * dg / kappa) / qh**2,
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
    chi_rhs = pub.rhs[chi].subs(hats_of_delta).subs(MOMENT_DEFINITIONS)
    chibar_rhs = pub.rhs[chi_bar].subs(hats_of_delta).subs(MOMENT_DEFINITIONS)
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
    Expressions are in the moment symbols; ``.subs(MOMENT_DEFINITIONS)`` gives them in g, g', z.
    """
    pub = published_saddle_point()
    chih = (tau / kappa) * E * (kappa * q_hat / tau) ** 2
    hats_of_e = {HAT_SYMBOLS["m_hat"]: q_hat, HAT_SYMBOLS["chi_hat"]: chih,
                 HAT_SYMBOLS["chi_bar_hat"]: s2 * chih / alpha}
    system = [sp.Eq(var, sp.expand(pub.rhs[var].subs(hats_of_e))) for var in (q, q_bar, m)]
    system.append(sp.Eq(E, pub.training_error))
    sol = sp.solve(system, [q, q_bar, m, E], dict=True)[0]
    err = sp.simplify(sol[E])
    c = c_implicit
    stiffness = A2 + 2 * c * B1 + c**2 * dg

    # the three published terms of q, q_bar and q0 (docs/model.md), with chi_hat/q_hat^2 = kappa E/tau
    per_q_hat2 = kappa * err / tau
    parts = {
        "q": {"signal": Q3, "noise_T": per_q_hat2 * A2 / kappa, "noise_R": per_q_hat2 * c * B1 / kappa},
        "q_bar": {"signal": A2, "noise_T": per_q_hat2 * B1 / kappa, "noise_R": per_q_hat2 * c * dg / kappa},
        "q0": {"signal": A2 / rho, "noise_T": per_q_hat2 * B1 / (rho * kappa),
               "noise_R": per_q_hat2 * c * dgt / kappa},
    }
    order = {
        "E": err,
        "q": sp.simplify(sol[q]),
        "q_bar": sp.simplify(sol[q_bar]),
        "q0": sum(parts["q0"].values()),
        "m": sol[m],
        "m_bar": A1,
        "m0": A1 / rho,
        "chi_times_q_hat": A1 / kappa,
        "chi_bar_times_q_hat": g / kappa,
        "chi_hat_over_q_hat2": per_q_hat2,
    }
    return ExplicitSolution(training_error=err, order=order, parts=parts, stiffness=stiffness)


def protocol_parts(moments, f, c, rho_value):
    r"""The one home of the signal/noise split and of the misfit of each test protocol.

    With f = E/tau (the noise parts of the published q, q_bar, q0 are all proportional to E) and
    the moments of :class:`stieltjes.PoolMoments` at nu = c + u, returns ``{"q": ..., "q0": ...,
    "q_bar": ...}`` (TM, IDG, ODG), each a dict of

    * ``signal``, ``noise_T``, ``noise_R``: the m_hat^2, chi_hat and chi_bar_hat terms of q_X;
    * ``misfit`` = 1 - 2 m_X + signal_X, written without subtraction: it is
      int (1 - s/(s + nu))^2 against the test task law, i.e.
      W = nu^2 B1 (TM, pool tasks), nu^2 g~' (IDG, fresh task in span A), nu^2 g' (ODG).

    (The q0 and q_bar misfits are None for moment objects without V, V_tilde, e.g. general spectra,
    whose own error form supplies them.) Every entry is a product of nonnegative factors, so float64 keeps its relative accuracy even
    where the error vanishes (sigma = 0, alpha -> infinity). Proof of the misfit identities:
    ``tests/test_saddle_point.py::test_misfit_identities`` (sympy).
    """
    mo = moments
    return {
        "q": {"signal": mo.Q3, "noise_T": f * mo.A2, "noise_R": f * c * mo.B1, "misfit": mo.W},
        "q_bar": {"signal": mo.A2, "noise_T": f * mo.B1, "noise_R": f * c * mo.dg, "misfit": getattr(mo, "V", None)},
        "q0": {"signal": mo.A2 / rho_value, "noise_T": f * mo.B1 / rho_value, "noise_R": f * c * mo.dg_tilde,
               "misfit": getattr(mo, "V_tilde", None)},
    }


def evaluate_explicit(u, moments, alpha_value, tau_value, kappa_value, rho_value, sigma_value, lam_value):
    """Numeric order parameters at the root u, in cancellation-free form (numpy, mpmath or sympy).

    ``moments`` is a stieltjes.PoolMoments at z = -(c + u). Equal to :func:`derive_explicit_solution`
    (tests) but rearranged so that every subtraction is gone:

    * E = tau (sigma^2 + W + c A2) / (tau - K), because s2 - 2 Mm + Q3 = sigma^2 + W (W = nu^2 B1);
    * tau - K = u (B1 + c g') + lam kappa/u at the root (u > 0), and tau - 1 at u = 0, because
      1 - K = u (2 B1 + (2c + u) g') and G(u) = 0 gives tau - 1 = lam kappa/u - u g.

    kappa enters only through lam kappa (0 when lam = 0, so kappa = inf is allowed there).
    Returns (order, parts): dicts of E, q, q_bar, q0, m, m_bar, m0, f = E/tau, and the
    :func:`protocol_parts` split. At lam = 0, tau = 1 (u = 0, tau - K = 0) E and the noise parts are +inf.
    """
    mo = moments
    c = (1 + sigma_value**2) / alpha_value
    if isinstance(u, np.ndarray) or isinstance(tau_value, np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore"):
            lk = np.where(lam_value > 0, lam_value * kappa_value, 0.0)
            gap = np.where(u > 0, u * (mo.B1 + c * mo.dg) + lk / np.where(u > 0, u, 1.0), tau_value - 1)
            err = np.where(gap > 0, tau_value * (sigma_value**2 + mo.W + c * mo.A2) / np.where(gap > 0, gap, 1.0),
                           np.inf)
    else:
        lk = 0 if lam_value == 0 else lam_value * kappa_value
        gap = u * (mo.B1 + c * mo.dg) + lk / u if u > 0 else tau_value - 1
        err = tau_value * (sigma_value**2 + mo.W + c * mo.A2) / gap if gap > 0 else mpmath.inf
    f = err / tau_value
    parts = protocol_parts(mo, f, c, rho_value)
    order = {"E": err, "f": f, "m": mo.Mm, "m_bar": mo.A1, "m0": mo.A1 / rho_value}
    if kappa_value is not None and not _is_infinite(kappa_value):  # the conjugate-scaled forms (finite kappa)
        order.update(chi_times_q_hat=mo.A1 / kappa_value, chi_bar_times_q_hat=mo.g / kappa_value,
                     chi_hat_over_q_hat2=kappa_value * f)
    for name, d in parts.items():
        order[name] = d["signal"] + d["noise_T"] + d["noise_R"]
    return order, parts


def _is_infinite(x) -> bool:
    """True if any entry of x is +inf (numpy, mpmath or sympy values)."""
    try:
        return bool(np.any(np.isinf(np.asarray(x, dtype=float))))
    except (TypeError, ValueError):
        return False


def error_from_parts(part, q_bar, alpha_test, sigma_test):
    """Test error of one protocol as a sum of nonnegative terms (cancellation-free form of
    :func:`asymptotic_error`): sigma_t^2 + misfit + noise_T + noise_R + (mean + sigma_t^2) q_bar/alpha_t.

    ``part`` holds misfit, noise_T, noise_R and optionally ``mean`` = E|w|^2/D of the protocol's
    tasks (default 1, the rank-r model; a general spectrum's law has its own mean)."""
    mean = part.get("mean", 1)
    return (sigma_test**2 + part["misfit"] + part["noise_T"] + part["noise_R"]
            + (mean + sigma_test**2) * q_bar / alpha_test)


def asymptotic_error(m_x, q_x, q_bar, alpha_test, sigma_test):
    """D -> infinity test error of a protocol X (TM, IDG or ODG), in its defining form:

    e_X = sigma_t^2 + 1 - 2 m_X + q_X + (1 + sigma_t^2) q_bar / alpha_t,

    with (m_X, q_X) = (m, q) for TM, (m0, q0) for IDG, (m_bar, q_bar) for ODG (docs/model.md).
    Units: squared label units; the label variance is 1 + sigma_t^2. This form cancels when the
    error is small; numerics use :func:`error_from_parts`, and this one is the independent check.
    """
    return sigma_test**2 + 1 - 2 * m_x + q_x + (1 + sigma_test**2) * q_bar / alpha_test


@lru_cache(maxsize=None)
def numeric_published_map(module: str = "numpy"):
    """Lambdified published equations: (z_of_state, hats, rhs) as functions of the state.

    z_of_state(q, m, chi, q_bar, chi_bar, alpha, tau, kappa, sigma, lam);
    rhs[name](q, m, chi, q_bar, chi_bar, g, dg, A1, B1, A2, Mm, Q3, alpha, tau, kappa, sigma, lam).
    """
    pub = published_saddle_point()
    params = (alpha, tau, kappa, sigma, lam)
    z_fn = sp.lambdify((*STATE, *params), pub.z_of_state(), modules=module)
    hats = {k: sp.lambdify((*STATE, *params), v, modules=module) for k, v in pub.hats.items()}
    rhs = {str(k): sp.lambdify((*STATE, g, dg, *MOMENTS, *params), v, modules=module)
           for k, v in pub.rhs_of_state().items()}
    return z_fn, hats, rhs


lam_kappa = sp.Symbol("lam_kappa", nonnegative=True)  # lam * kappa: the only way lam and kappa enter


@dataclass(frozen=True)
class StateEquations:
    """The published equations with the training error E as a sixth unknown.

    ``z`` and ``rhs`` (keyed q, m, chi, q_bar, chi_bar) are functions of the state
    (q, m, chi, q_bar, chi_bar, E), of g, dg and the moment symbols, and of alpha, tau, sigma and
    lam_kappa = lam kappa: kappa cancels exactly once lam = lam_kappa/kappa (so kappa = inf is
    a regular point). ``training_error`` is the published definition E = s2 - 2m + q + s2 q_bar/alpha,
    whose terms ``training_error_terms`` bound its rounding.
    """

    z: sp.Expr
    rhs: dict
    training_error: sp.Expr
    training_error_terms: tuple


@lru_cache(maxsize=None)
def derive_state_equations() -> StateEquations:
    """Insert the published conjugates (with E kept as a symbol) into the published right-hand sides."""
    pub = published_saddle_point()
    qh = (tau / kappa) / pub.delta
    chih = (tau / kappa) * E / pub.delta**2
    hats = {HAT_SYMBOLS["q_hat"]: qh, HAT_SYMBOLS["m_hat"]: qh, HAT_SYMBOLS["q_bar_hat"]: s2 * qh / alpha,
            HAT_SYMBOLS["chi_hat"]: chih, HAT_SYMBOLS["chi_bar_hat"]: s2 * chih / alpha}
    z_expr = sp.simplify(pub.z.subs(hats).subs(lam, lam_kappa / kappa))
    rhs = {str(k): sp.simplify(v.subs(hats)) for k, v in pub.rhs.items()}
    for expr in (z_expr, *rhs.values()):
        if kappa in expr.free_symbols:
            raise AssertionError("kappa did not cancel from the published equations")
    terms = (s2, -2 * m, q, s2 * q_bar / alpha)
    return StateEquations(z=z_expr, rhs=rhs, training_error=sum(terms), training_error_terms=terms)


@lru_cache(maxsize=None)
def numeric_state_equations(module: str = "numpy"):
    """Lambdified :func:`derive_state_equations`: (z_fn, rhs_fns).

    z_fn(q, m, chi, q_bar, chi_bar, E, alpha, tau, sigma, lam_kappa);
    rhs_fns[name](q, m, chi, q_bar, chi_bar, E, g, dg, A1, B1, A2, Mm, Q3, alpha, tau, sigma, lam_kappa).
    """
    eqs = derive_state_equations()
    params = (alpha, tau, sigma, lam_kappa)
    # common subexpressions are evaluated once (the right-hand sides share Delta and its powers)
    z_fn = sp.lambdify((*STATE, E, *params), eqs.z, modules=module, cse=True)
    rhs = {k: sp.lambdify((*STATE, E, g, dg, *MOMENTS, *params), v, modules=module, cse=True)
           for k, v in eqs.rhs.items()}
    return z_fn, rhs
