r"""The full-rank paper's exact finite-d model: linear attention with the label-power column.

Model. Besides the reduced feature h = (D/L) sum_l y_l x_l, the prompt carries the label power
s = (1/L) sum_l y_l^2, and the prediction is yhat = x_q^T (Gamma h + b s): Gamma is the D x (D+1)
matrix [Gamma, b] acting on [h, s]. Tokens x ~ N(0, I/D), y = <w, x> + sigma xi.

Exact moments given w (y_l ~ N(0, v) i.i.d. given w, v = ||w||^2/D + sigma^2; derived by Wick
contractions in :func:`derive_label_power_moments`):

    E[s | w] = v,   E[s^2 | w] = (1 + 2/L) v^2,   E[s h | w] = (1 + 2/L) v w,

plus E[h | w] = w, E[h h^T | w] of :mod:`lowrank_icl.theory.forward.finite_size`. Hence for a test
law with E w w^T = C, u = E[v w] and c = E[v^2] (at the test noise sigma_t, context L~),

    e(Gamma, b) = e(Gamma) + (1/D) [ -2 b^T u + 2 (1 + 2/L~) b^T Gamma u + (1 + 2/L~) c ||b||^2 ],

e(Gamma) the exact error of the reduced model. Laws: a pool (TM): C = S, u = mean_i v_i w_i,
c = mean_i v_i^2; the subspace prior (IDG): u = 0, c = (1 + sigma_t^2)^2 + 2/r; isotropic (ODG):
u = 0, c = (1 + sigma_t^2)^2 + 2/D.

What the column learns (infinite pretraining on a pool: minimise the TM error over Gamma and b).
With a = 1 + 2/L and Mt = (1 + 1/L) S + ((tr S + sigma^2 D)/L) I the normal equations are
Gamma Mt + a b u^T = S and a Gamma u + a c b = u, so

    Gamma_ext = (S - u u^T/c) (Mt - a u u^T/c)^{-1},   b = (u - a Gamma_ext u)/(a c),

against Gamma_red = S Mt^{-1} without the column. For tasks of equal norm (v_i = v0) u u^T/c is
w_bar w_bar^T, w_bar the pool mean: the column carries the mean task (b ~ w_bar/v0 times a shrinkage)
and Gamma_ext fits the pool covariance S - w_bar w_bar^T instead of its second moment. A finite pool
has E||w_bar||^2 = tr C/M0 = D/M0, so on zero-mean test tasks the column adds an O(1/M0) error.

The 1/M0 term (leading order in 1/D). Put a = 1 + 1/L = 1, v_i = v0 = 1 + sigma^2 and
nu = (1 + sigma^2)/alpha, so Mt = S + nu I, R = (S + nu)^{-1}, and with x = w_bar^T R w_bar,
y_k = w_bar^T R^k w_bar, Sherman-Morrison gives (f(S) = S R; test at sigma_t, alpha_t):

    D [e_ODG(ext) - e_ODG(red)] = 2 nu Delta1 + k_t (nu^2 Delta2 - 2 nu Delta1) + (v_t/v0)^2 nu^2 y_2/(1 - x)^2,
    Delta1 = y_2/(1 - x),   Delta2 = 2 y_3/(1 - x) + y_2^2/(1 - x)^2,   k_t = 1 + (1 + sigma_t^2)/alpha_t,

v_t = 1 + sigma_t^2 (:func:`derive_odg_excess` builds this with sympy from the three traces and checks
it). The pool law is invariant under W -> O W (O orthogonal, M0 x M0), so
E[w_bar^T F(S) w_bar] = (1/M0) E tr(S F(S)) exactly; to leading order y_k = t_k/kappa with
t_k = (1/D) tr S R^k = (1 - nu g, g - nu g', g' - nu g''/2) at z = -nu (g the pool transform).
:func:`odg_excess_limit` returns Phi = D x the excess; Phi/D = kappa Phi / M0.
For kappa < min(1, ...) and nu -> 0: x -> 1, Phi -> 1/kappa, i.e. the excess is exactly 1/M0.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from lowrank_icl.theory.forward import finite_size as fs
from lowrank_icl.theory.forward.finite_size import SecondMoment, exact_test_error
from lowrank_icl.theory.forward.stieltjes import derive_pool_quadratic, gt, kappa, pool_transforms, rho, z


# ----------------------------------------------------------------------------------------------
# moments of the label power (Isserlis)

@lru_cache(maxsize=None)
def derive_label_power_moments():
    """E[s|w], E[s^2|w], E[s h_i|w] by Wick contractions at symbolic D, L, sigma (returns expressions in
    w_i, w2 = ||w||^2, D, L, sigma; same basis variables as finite_size.derive_conditional_moments).

    s = (1/L) sum_l y_l^2: one-token terms (L of them) and two-token terms (L(L-1), independent tokens).
    """
    D, L, sigma, w_i, w2 = fs.D, fs.L, fs.sigma, fs.w_i, fs.w2
    table = {("w", "w"): w2 / D, ("w", "i"): w_i / D, ("i", "i"): 1 / D, ("xi", "xi"): sp.Integer(1)}

    def cov(a, b):
        return table.get((a, b), table.get((b, a), sp.Integer(0)))
    y, xi_ = {"w": 1, "xi": sigma}, {"i": 1}
    Ey2 = fs.wick_expectation([y, y], cov)
    mean = sp.simplify(Ey2)
    second = sp.simplify((L * fs.wick_expectation([y, y, y, y], cov) + L * (L - 1) * Ey2**2) / L**2)
    cross = sp.simplify((D / L**2) * (L * fs.wick_expectation([y, y, y, xi_], cov)
                                     + L * (L - 1) * Ey2 * fs.wick_expectation([y, xi_], cov)))
    return mean, second, cross


# ----------------------------------------------------------------------------------------------
# exact finite-D errors and population optimum

def task_law_moments(kind: str, *, pool=None, subspace=None, dim=None, sigma_test=0.0):
    """(C, u, c) of a test law: C = E w w^T (SecondMoment), u = E[v w], c = E[v^2], v = ||w||^2/D + sigma_t^2.

    kind "pool" (rows of ``pool``), "subspace" (w = sqrt(D/r) A v, v ~ N(0, I_r); A = ``subspace``),
    "isotropic" (w ~ N(0, I_D); ``dim``).
    """
    s2 = float(sigma_test) ** 2
    if kind == "pool":
        W = np.atleast_2d(np.asarray(pool, dtype=float))
        D = W.shape[1]
        v = np.sum(W * W, axis=1) / D + s2
        return SecondMoment.pool(W), (v[:, None] * W).mean(axis=0), float(np.mean(v * v))
    if kind == "subspace":
        A = np.asarray(subspace, dtype=float)
        D, r = A.shape
        return SecondMoment.subspace(A), np.zeros(D), (1 + s2) ** 2 + 2.0 / r
    if kind == "isotropic":
        D = int(dim)
        return SecondMoment.identity(D), np.zeros(D), (1 + s2) ** 2 + 2.0 / D
    raise ValueError(f"kind must be 'pool', 'subspace' or 'isotropic' (got {kind!r})")


def y2_column_test_error(gamma, b, law, context_length, sigma_test=0.0) -> float:
    """Exact e(Gamma, b) (module docstring) for ``law`` = (C, u, c) of :func:`task_law_moments`."""
    C, u, c = law
    G = np.asarray(gamma, dtype=float)
    b = np.asarray(b, dtype=float)
    D = G.shape[0]
    a_t = 1.0 + 2.0 / float(context_length)
    base = float(exact_test_error(G, C, context_length, sigma_test))
    return base + (-2.0 * b @ u + 2.0 * a_t * b @ (G @ u) + a_t * c * (b @ b)) / D


def population_fits(pool, context_length, sigma):
    """Infinite-pretraining minimisers of the pool (TM) error: (Gamma_red, Gamma_ext, b_ext)."""
    W = np.atleast_2d(np.asarray(pool, dtype=float))
    M0, D = W.shape
    L = float(context_length)
    S = W.T @ W / M0
    Mt = (1 + 1 / L) * S + ((np.trace(S) + sigma**2 * D) / L) * np.eye(D)
    _, u, c = task_law_moments("pool", pool=W, sigma_test=sigma)
    a = 1 + 2 / L
    g_red = np.linalg.solve(Mt, S).T              # S Mt^{-1} (both symmetric)
    P = np.outer(u, u) / c
    g_ext = np.linalg.solve((Mt - a * P).T, (S - P).T).T
    b = (u - a * g_ext @ u) / (a * c)
    return g_red, g_ext, b


def population_excess(pool, subspace, context_length, sigma, test_context_length=None, sigma_test=None) -> dict:
    """Exact finite-D errors of the two infinite-pretraining optima of one pool, and their difference.

    Returns {"reduced": {tm, idg, odg}, "y2_column": {...}, "excess": {...}}.
    """
    W = np.atleast_2d(np.asarray(pool, dtype=float))
    D = W.shape[1]
    Lt = context_length if test_context_length is None else test_context_length
    s_t = sigma if sigma_test is None else sigma_test
    g_red, g_ext, b = population_fits(W, context_length, sigma)
    laws = {"tm": task_law_moments("pool", pool=W, sigma_test=s_t),
            "idg": task_law_moments("subspace", subspace=subspace, sigma_test=s_t),
            "odg": task_law_moments("isotropic", dim=D, sigma_test=s_t)}
    red = {k: y2_column_test_error(g_red, np.zeros(D), law, Lt, s_t) for k, law in laws.items()}
    ext = {k: y2_column_test_error(g_ext, b, law, Lt, s_t) for k, law in laws.items()}
    return {"reduced": red, "y2_column": ext, "excess": {k: ext[k] - red[k] for k in laws}}


# ----------------------------------------------------------------------------------------------
# the 1/M0 term in the large-D limit

@lru_cache(maxsize=None)
def derive_odg_excess():
    r"""D x (ODG excess) from Sherman-Morrison, in (nu, x, y2, y3, k_t, ratio = (v_t/v0)^2).

    Built from the three traces that change: tr f(Sc) - tr f(S) = -nu Delta1,
    tr f(Sc)^2 - tr f(S)^2 = -2 nu Delta1 + nu^2 Delta2, and ||b||^2 v0^2 = nu^2 y2/(1-x)^2, with
    Delta1(nu) = y2/(1 - x) and Delta2 = -dDelta1/dnu using dx/dnu = -y2, dy2/dnu = -2 y3.
    Returns (expression, symbols).
    """
    nu, x, y2, y3, k_t, ratio = sp.symbols("nu x y2 y3 k_t ratio", positive=True)
    t = sp.Symbol("t")
    xf, y2f, y3f = sp.Function("x")(t), sp.Function("y2")(t), sp.Function("y3")(t)
    delta1 = y2f / (1 - xf)
    d_delta1 = sp.diff(delta1, t).subs({sp.Derivative(xf, t): -y2f, sp.Derivative(y2f, t): -2 * y3f})
    delta2 = sp.simplify(-d_delta1).subs({xf: x, y2f: y2, y3f: y3})
    delta1 = delta1.subs({xf: x, y2f: y2})
    d_tr_f = -nu * delta1
    d_tr_f2 = -2 * nu * delta1 + nu**2 * delta2
    expr = -2 * d_tr_f + k_t * d_tr_f2 + ratio * nu**2 * y2 / (1 - x) ** 2
    return sp.simplify(expr), {"nu": nu, "x": x, "y2": y2, "y3": y3, "k_t": k_t, "ratio": ratio}


@lru_cache(maxsize=None)
def derive_pool_second_derivative() -> sp.Expr:
    """d^2 g~/dz^2 by implicit differentiation of the pool quadratic P(g~, z) = 0 (in z, g~, kappa, rho)."""
    P = derive_pool_quadratic().polynomial
    g1 = -sp.diff(P, z) / sp.diff(P, gt)
    second = -(sp.diff(P, z, 2) + 2 * sp.diff(P, z, gt) * g1 + sp.diff(P, gt, 2) * g1**2) / sp.diff(P, gt)
    return sp.simplify(second)


@lru_cache(maxsize=None)
def _numeric():
    expr, sym = derive_odg_excess()
    f = sp.lambdify([sym[k] for k in ("nu", "x", "y2", "y3", "k_t", "ratio")], expr, "numpy")
    g2 = sp.lambdify((z, kappa, rho, gt), derive_pool_second_derivative(), "numpy")
    return f, g2


def pool_resolvent_traces(nu, kappa_value, rho_value):
    """t_k = lim (1/D) tr S (S + nu)^{-k}, k = 1, 2, 3, from the pool transform g at z = -nu."""
    pt = pool_transforms(-nu, kappa_value, rho_value)
    _, g2t = _numeric()
    d2g_tilde = g2t(-nu, kappa_value, rho_value, pt.g_tilde)
    d2g = rho_value * d2g_tilde - 2 * (1 - rho_value) / (-nu) ** 3
    return 1 - nu * pt.g, pt.g - nu * pt.dg, pt.dg - nu * d2g / 2


def odg_excess_limit(alpha, kappa_value, rho_value, sigma, alpha_test=None, sigma_test=None) -> float:
    r"""Phi = lim D [e_ODG(with column) - e_ODG(reduced)] at infinite pretraining (module docstring).

    The excess at dimension D is Phi/D = kappa Phi/M0. Scalars; sigma >= 0 with nu = (1+sigma^2)/alpha.
    """
    a_t = alpha if alpha_test is None else alpha_test
    s_t = sigma if sigma_test is None else sigma_test
    nu = (1 + sigma**2) / alpha
    t1, t2, t3 = pool_resolvent_traces(nu, kappa_value, rho_value)
    f, _ = _numeric()
    k_t = 1 + (1 + s_t**2) / a_t
    ratio = ((1 + s_t**2) / (1 + sigma**2)) ** 2
    return float(f(nu, t1 / kappa_value, t2 / kappa_value, t3 / kappa_value, k_t, ratio))
