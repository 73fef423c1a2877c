r"""Exact finite-D facts of the reduced linear-attention model (docs/model.md).

Premises: tokens x ~ N(0, I_D/D), label noise xi ~ N(0, 1) independent, y = <w, x> + sigma xi,
h = (D/L) sum_{l<=L} y_l x_l over L i.i.d. context tokens, prediction x_{L+1}^T Gamma h.

Derived here (sympy, from Isserlis' theorem; nothing transcribed):

1. :func:`derive_conditional_moments` -- E[h_i | w] = w_i and
   E[h_i h_k | w] = (1 + 1/L) w_i w_k + ((||w||^2 + sigma^2 D)/L) delta_ik,
   by Wick contractions of products of Gaussian linear forms, summing the L same-token terms and
   the L(L-1) distinct-token terms separately.
2. :func:`derive_test_error` -- for any fixed Gamma and a task law with E w w^T = C:
   e(Gamma) = sigma_t^2 + (1/D) [tr C - 2 tr(Gamma C) + tr(Gamma Mt Gamma^T)],
   Mt = (1 + 1/L~) C + ((tr C + sigma_t^2 D)/L~) I. Built component-wise at a symbolic small D
   (fully symbolic Gamma and C) from item 1 and checked against the matrix formula.
3. :func:`derive_optimal_gamma` -- stationarity of e gives Gamma* = C Mt^{-1}; for the rank-r prior
   C = (D/r) A A^T it is gamma A A^T with the exact finite-D scale
   gamma = L / (L + 1 + r (1 + sigma^2)) -> alpha / (alpha + rho (1 + sigma^2)).

Numeric callables (numpy): :func:`conditional_moments_h`, :func:`exact_test_error`,
:func:`error_from_summaries`, :func:`order_summaries`, :func:`optimal_gamma`,
:func:`optimal_gamma_scale`, and :class:`SecondMoment` (C given as identity, matrix or factor F with
C = F F^T, so a rank-k C costs O(D^2 k) instead of O(D^3)).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

D, L, sigma = sp.symbols("D L sigma", positive=True)


# ----------------------------------------------------------------------------------------------
# Wick calculus for Gaussian linear forms

def wick_expectation(forms, covariance):
    """E[prod_k f_k] for zero-mean jointly Gaussian linear forms (Isserlis' theorem).

    ``forms`` is a list of dicts {basis_label: coefficient}; ``covariance(a, b)`` gives the
    covariance of two basis variables. Sums over all perfect pairings (odd count: 0).
    """
    if len(forms) % 2:
        return sp.Integer(0)
    if not forms:
        return sp.Integer(1)
    first, rest = forms[0], forms[1:]
    total = sp.Integer(0)
    for j, partner in enumerate(rest):
        cov = sum(cf * cg * covariance(a, b) for a, cf in first.items() for b, cg in partner.items())
        if cov != 0:
            total += cov * wick_expectation(rest[:j] + rest[j + 1:], covariance)
    return sp.expand(total)


@dataclass(frozen=True)
class ConditionalMoments:
    """E[h_i|w], E[h_i h_k|w] (for i != k and i == k) as sympy expressions.

    Symbols: w_i, w_k components, w2 = ||w||^2, D, L, sigma.
    """

    mean_i: sp.Expr
    second_offdiag: sp.Expr
    second_diag: sp.Expr


w_i, w_k, w2 = sp.symbols("w_i w_k w2", real=True)


@lru_cache(maxsize=None)
def derive_conditional_moments() -> ConditionalMoments:
    """E[h|w] and E[h h^T|w] from Isserlis at symbolic D, L, sigma.

    Basis variables of one token: 'w' = <w, x>, 'i' = x_i, 'k' = x_k (i != k, or 'i' twice for
    the diagonal), 'xi' = label noise. Covariances: <w,w> = ||w||^2/D, <w,i> = w_i/D,
    <i,k> = delta_ik/D, <xi,xi> = 1, noise independent of tokens.
    """
    def covariance_for(diagonal: bool):
        table = {("w", "w"): w2 / D, ("w", "i"): w_i / D, ("w", "k"): (w_i if diagonal else w_k) / D,
                 ("i", "i"): 1 / D, ("k", "k"): 1 / D, ("i", "k"): (1 if diagonal else 0) / D,
                 ("xi", "xi"): sp.Integer(1)}

        def cov(a, b):
            return table.get((a, b), table.get((b, a), sp.Integer(0)))
        return cov

    y = {"w": 1, "xi": sigma}
    xi_, xk_ = {"i": 1}, {"k": 1}
    cov_off = covariance_for(False)
    one_token_mean = wick_expectation([y, xi_], cov_off)                 # E[y x_i]
    mean_i = sp.simplify((D / L) * L * one_token_mean)

    def second(diagonal):
        cov = covariance_for(diagonal)
        partner = xi_ if diagonal else xk_
        same = wick_expectation([y, xi_, y, partner], cov)               # E[y^2 x_i x_k], one token
        cross = wick_expectation([y, xi_], cov) * wick_expectation([y, partner], cov)  # two tokens
        return sp.simplify((D / L) ** 2 * (L * same + L * (L - 1) * cross))

    return ConditionalMoments(mean_i=mean_i, second_offdiag=second(False), second_diag=second(True))


# ----------------------------------------------------------------------------------------------
# exact test error at symbolic small D

def derive_test_error(dim: int = 2):
    """e(Gamma) built component-wise at D = ``dim`` with symbolic Gamma, C, L, sigma_t.

    Steps: E over the query x and its noise gives sigma_t^2 + (1/D) E||w - Gamma h||^2 (x is
    independent of h); expanding with E[h|w], E[h h^T|w] from :func:`derive_conditional_moments`
    and then averaging over w with E[w_a w_b] = C_ab gives a polynomial in the entries.
    Returns (derived, matrix_formula, symbols) with matrix_formula the closed form of the docstring.
    """
    mom = derive_conditional_moments()
    G = sp.Matrix(dim, dim, lambda a, b: sp.Symbol(f"G{a}{b}", real=True))
    C = sp.Matrix(dim, dim, lambda a, b: sp.Symbol(f"C{min(a, b)}{max(a, b)}", real=True))
    w = sp.Matrix(dim, 1, lambda a, _: sp.Symbol(f"w{a}", real=True))
    sig_t = sp.Symbol("sigma_t", nonnegative=True)
    Dn = sp.Integer(dim)
    norm2 = sum(w[a] ** 2 for a in range(dim))
    sub = {D: Dn, sigma: sig_t}

    def Ehh(a, b):
        expr = mom.second_diag if a == b else mom.second_offdiag
        return expr.subs(sub).subs({w_i: w[a], w_k: w[b], w2: norm2})

    def Eh(a):
        return mom.mean_i.subs(sub).subs({w_i: w[a]})

    # E_x[(<w,x> + sigma_t xi - x^T G h)^2 | w, h] = sigma_t^2 + ||w - G h||^2 / D (Wick, cov I/D)
    Gh_sq = sum(G[a, b] * G[a, c] * Ehh(b, c) for a in range(dim) for b in range(dim) for c in range(dim))
    cross = sum(w[a] * G[a, b] * Eh(b) for a in range(dim) for b in range(dim))
    given_w = sig_t**2 + (norm2 - 2 * cross + Gh_sq) / Dn
    # average over w: replace each monomial w_a w_b by C_ab (given_w is quadratic in w)
    poly = sp.Poly(sp.expand(given_w), *w)
    derived = sp.Integer(0)
    for monom, coeff in poly.terms():
        idx = [a for a, p in enumerate(monom) for _ in range(p)]
        if len(idx) == 0:
            derived += coeff
        elif len(idx) == 2:
            derived += coeff * C[idx[0], idx[1]]
        else:  # an odd or higher moment would need more than the second moment of w
            raise AssertionError("e(Gamma | w) must be quadratic in w")
    trC = C.trace()
    Mt = (1 + 1 / L) * C + ((trC + sig_t**2 * Dn) / L) * sp.eye(dim)
    formula = sig_t**2 + (trC - 2 * (G * C).trace() + (G * Mt * G.T).trace()) / Dn
    return sp.expand(derived), sp.expand(formula), {"G": G, "C": C, "L": L, "sigma_t": sig_t}


def derive_optimal_gamma(dim: int = 2):
    """Stationary point of e(Gamma) at D = ``dim``: solve de/dG_ab = 0 and return (solution, C Mt^{-1}).

    The two are matrices of rational functions of (C, L, sigma_t); their difference simplifies to 0.
    """
    _, formula, sym = derive_test_error(dim)
    G, C, sig_t = sym["G"], sym["C"], sym["sigma_t"]
    unknowns = list(G)
    sol = sp.solve([sp.diff(formula, g) for g in unknowns], unknowns, dict=True)[0]
    G_star = G.subs(sol)
    trC = C.trace()
    Mt = (1 + 1 / L) * C + ((trC + sig_t**2 * dim) / L) * sp.eye(dim)
    return G_star, C * Mt.inv()


@lru_cache(maxsize=None)
def derive_optimal_gamma_scale():
    """gamma of Gamma* = gamma A A^T for C = (D/r) A A^T (P = A A^T a projector of rank r).

    Gamma* Mt = C with Gamma = gamma P: P Mt = [(1 + 1/L)(D/r) + (D + sigma^2 D)/L] P (tr C = D),
    so gamma solves gamma [(1 + 1/L)(D/r) + D (1 + sigma^2)/L] = D/r. Returns (gamma(D, L, r, sigma),
    its limit with L = alpha D, r = rho D, D -> oo).
    """
    gam, r, alpha, rho = sp.symbols("gamma r alpha rho", positive=True)
    eigen_on_span = (1 + 1 / L) * (D / r) + (D + sigma**2 * D) / L
    exact = sp.simplify(sp.solve(sp.Eq(gam * eigen_on_span, D / r), gam)[0])
    limit = sp.simplify(sp.limit(exact.subs({L: alpha * D, r: rho * D}), D, sp.oo))
    return exact, limit, {"r": r, "alpha": alpha, "rho": rho}


# ----------------------------------------------------------------------------------------------
# numeric callables

def conditional_moments_h(w, context_length, sigma_value):
    """(E[h|w], E[h h^T|w]) = (w, (1 + 1/L) w w^T + ((||w||^2 + sigma^2 D)/L) I) for a vector w."""
    w = np.asarray(w, dtype=float)
    dim, Lv = w.size, float(context_length)
    second = (1 + 1 / Lv) * np.outer(w, w) + ((w @ w + sigma_value**2 * dim) / Lv) * np.eye(dim)
    return w.copy(), second


@dataclass(frozen=True)
class SecondMoment:
    """A task second moment C = E[w w^T] in the cheapest available form.

    kind "identity" (C = I_D), "factor" (C = F F^T with F of shape D x k), or "matrix" (C itself).
    Use :meth:`identity`, :meth:`from_factor`, :meth:`from_matrix`, :meth:`pool`, :meth:`subspace`.
    """

    kind: str
    dim: int
    data: np.ndarray | None = None

    @classmethod
    def identity(cls, dim: int) -> "SecondMoment":
        return cls("identity", int(dim))

    @classmethod
    def from_factor(cls, factor) -> "SecondMoment":
        f = np.asarray(factor, dtype=float)
        return cls("factor", f.shape[0], f)

    @classmethod
    def from_matrix(cls, matrix) -> "SecondMoment":
        c = np.asarray(matrix, dtype=float)
        if c.ndim != 2 or c.shape[0] != c.shape[1]:
            raise ValueError(f"second_moment must be a square matrix (got shape {c.shape})")
        return cls("matrix", c.shape[0], c)

    @classmethod
    def pool(cls, tasks) -> "SecondMoment":
        """TM: C = (1/M0) W^T W for pool tasks W (M0 x D), as the factor W^T/sqrt(M0)."""
        W = np.asarray(tasks, dtype=float)
        return cls.from_factor(W.T / np.sqrt(W.shape[0]))

    @classmethod
    def subspace(cls, A) -> "SecondMoment":
        """IDG: C = (D/r) A A^T for orthonormal A (D x r), as the factor sqrt(D/r) A."""
        A = np.asarray(A, dtype=float)
        return cls.from_factor(np.sqrt(A.shape[0] / A.shape[1]) * A)

    def matrix(self) -> np.ndarray:
        if self.kind == "identity":
            return np.eye(self.dim)
        if self.kind == "factor":
            return self.data @ self.data.T
        return self.data


def _as_second_moment(second_moment, dim) -> SecondMoment:
    if second_moment is None:
        return SecondMoment.identity(dim)
    if isinstance(second_moment, SecondMoment):
        return second_moment
    return SecondMoment.from_matrix(second_moment)


def order_summaries(gamma, second_moment=None) -> dict:
    """The order parameters of Gamma for one task law: t = tr C/D, m = tr(Gamma C)/D,
    q = tr(Gamma C Gamma^T)/D, q_bar = ||Gamma||_F^2/D. O(D^2 k) for a rank-k factor.

    With C the pool moment these are the (m, q) of docs/model.md; with (D/r) A A^T they are (m0, q0)
    (q0 = tr((Gamma A)^T Gamma A)/r); with I they are (m_bar, q_bar).
    """
    G = np.asarray(gamma, dtype=float)
    dim = G.shape[0]
    C = _as_second_moment(second_moment, dim)
    if C.dim != dim:
        raise ValueError(f"second_moment has dimension {C.dim}, Gamma has {dim}")
    q_bar = float(np.sum(G * G)) / dim
    if C.kind == "identity":
        t, m, q = 1.0, float(np.trace(G)) / dim, q_bar
    elif C.kind == "factor":
        F = C.data
        GF = G @ F
        t, m, q = float(np.sum(F * F)) / dim, float(np.sum(F * GF)) / dim, float(np.sum(GF * GF)) / dim
    else:
        Cm = C.data
        t, m, q = float(np.trace(Cm)) / dim, float(np.sum(G * Cm.T)) / dim, float(np.sum((G @ Cm) * G)) / dim
    return {"t": t, "m": m, "q": q, "q_bar": q_bar, "dim": dim}


def error_from_summaries(t, m, q, q_bar, dim, context_length, sigma_test):
    """e = sigma_t^2 + t - 2 m + (1 + 1/L~) q + (t + sigma_t^2) (D/L~) q_bar  (exact, broadcasts).

    This is e(Gamma) of :func:`exact_test_error` written through :func:`order_summaries`; as
    D -> oo with t -> 1 it becomes sigma_t^2 + 1 - 2m + q + (1 + sigma_t^2) q_bar/alpha_t.
    """
    Lt = np.asarray(context_length, dtype=float)
    s2 = np.square(sigma_test)
    return s2 + t - 2 * m + (1 + 1 / Lt) * q + (t + s2) * (dim / Lt) * q_bar


def exact_test_error(gamma, second_moment=None, context_length=None, sigma_test=0.0):
    r"""Exact finite-D test error of a fixed Gamma (D x D):

    e(Gamma) = sigma_t^2 + (1/D) [tr C - 2 tr(Gamma C) + tr(Gamma Mt Gamma^T)],
    Mt = (1 + 1/L~) C + ((tr C + sigma_t^2 D)/L~) I,

    for test tasks with E w w^T = C (``second_moment``: a :class:`SecondMoment`, a D x D matrix,
    or None for I), integer test context length L~ (``context_length``) and test noise std
    ``sigma_test``. Squared label units. ``context_length`` may be an array (broadcasts).
    """
    if context_length is None:
        raise ValueError("context_length (the test context length L~) is required")
    s = order_summaries(gamma, second_moment)
    return error_from_summaries(s["t"], s["m"], s["q"], s["q_bar"], s["dim"], context_length, sigma_test)


def optimal_gamma(second_moment, context_length, sigma_value=0.0) -> np.ndarray:
    """Infinite-pretraining optimum Gamma* = C [(1 + 1/L) C + ((tr C + sigma^2 D)/L) I]^{-1}.

    Mt commutes with C, so Gamma* is symmetric; solved as Mt^{-1} C (O(D^3))."""
    C = second_moment.matrix() if isinstance(second_moment, SecondMoment) else np.asarray(second_moment, float)
    dim, Lv = C.shape[0], float(context_length)
    Mt = (1 + 1 / Lv) * C + ((np.trace(C) + sigma_value**2 * dim) / Lv) * np.eye(dim)
    return np.linalg.solve(Mt, C)


def optimal_gamma_scale(alpha, rho, sigma_value, dim=None):
    """gamma in Gamma* = gamma A A^T for the rank-r prior C = (D/r) A A^T.

    dim=None: the D -> oo limit alpha / (alpha + rho (1 + sigma^2)); otherwise the exact finite-D
    value L / (L + 1 + r (1 + sigma^2)) with L = alpha D, r = rho D (pass the integer ratios).
    """
    alpha, rho, s2 = np.asarray(alpha, float), np.asarray(rho, float), np.square(sigma_value)
    if dim is None:
        return alpha / (alpha + rho * (1 + s2))
    Lv, r = alpha * dim, rho * dim
    return Lv / (Lv + 1 + r * (1 + s2))
