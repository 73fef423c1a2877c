r"""The linear transformer (LT) of inverse ICL: fourth moment of the design, optimal one-layer LT and its risks.

Model: a context X (N x d) has i.i.d. rows x ~ N(0, Sigma_x); the task is
w = w0 + U v, U (d x r) orthonormal, v ~ N(0, Lambda); Y = X w + eps, eps ~ N(0, sigma^2 I_N).
Risk means E||w_hat - w||^2, summed over the d coordinates (divide by d for the per-coordinate MSE).

1. Fourth moment. For symmetric B, E[X^T X B X^T X] = N(N+1) Sigma_x B Sigma_x + N tr(B Sigma_x) Sigma_x:
   split sum_{i,j} x_i x_i^T B x_j x_j^T into i != j (mean Sigma_x B Sigma_x) and i = j, where Isserlis
   gives E[x x^T B x x^T] = 2 Sigma_x B Sigma_x + tr(B Sigma_x) Sigma_x (:func:`fourth_moment_symbolic`).
2. One-layer LT, w_hat = b + Gamma X^T (Y - X b) / N. With S_hat = X^T X / N, delta = w - b,
   w_hat - w = -(I - Gamma S_hat) delta + Gamma X^T eps / N, and with M = E[delta delta^T]
   = Sigma_w + (w0 - b)(w0 - b)^T (delta independent of X), item 1 gives
       R(b, Gamma) = tr M - 2 tr(Gamma Sigma_x M) + tr(Gamma F Gamma^T),
       F = (N+1)/N Sigma_x M Sigma_x + (tr(M Sigma_x) + sigma^2) / N Sigma_x.
   The cross term between U v and (w0 - b) vanishes (v centred, independent of X), so b = w0 is optimal
   for every Gamma; then M = Sigma_w. The stationarity equation Gamma F = Sigma_w Sigma_x is linear in
   Gamma (vec form (F kron I) vec Gamma = vec(Sigma_w Sigma_x)), solved by one d x d solve:
       Gamma* = Sigma_w Sigma_x F^{-1},   R* = tr Sigma_w - tr(Sigma_w Sigma_x F^{-1} Sigma_x Sigma_w).
   For Sigma_x = I, Lambda = lambda I_r:  R* = r lambda (lambda (r + 1) + sigma^2) / ((N + r + 1) lambda + sigma^2),
   which does NOT vanish as sigma -> 0 (one preconditioned gradient step cannot invert X^T X).

This module imports nothing from the rest of ``lowrank_icl``. Sympy work runs only when a
``*_symbolic`` function is called.
"""
from __future__ import annotations

import numpy as np

__all__ = ["fourth_moment_symbolic", "lt1_risk_symbolic", "fourth_moment", "lt1_risk", "lt1_optimal",
           "lt1_risk_isotropic"]


# ---------------------------------------------------------------------------------------------
# Symbolic derivations (sympy, built lazily)
# ---------------------------------------------------------------------------------------------
def fourth_moment_symbolic(d: int = 2):
    """Return (E[x x^T B x x^T] by Isserlis, 2 S B S + tr(B S) S) for symbolic symmetric S, B (d x d).

    Isserlis: E[x_a x_b x_c x_e] = S_ab S_ce + S_ac S_be + S_ae S_bc for x ~ N(0, S).
    """
    import sympy as sp
    S = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"s{min(i, j)}{max(i, j)}", real=True))
    B = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"b{min(i, j)}{max(i, j)}", real=True))

    def m4(a, b, c, e):
        return S[a, b] * S[c, e] + S[a, c] * S[b, e] + S[a, e] * S[b, c]

    lhs = sp.Matrix(d, d, lambda a, e: sum(B[b, c] * m4(a, b, c, e) for b in range(d) for c in range(d)))
    rhs = 2 * S * B * S + (B * S).trace() * S
    return lhs, rhs, S, B


def lt1_risk_symbolic(r: int = 2):
    """Optimal one-layer LT risk for Sigma_x = I, Lambda = diag(lambda_i) built from R(Gamma).

    In the U basis Gamma is diagonal by symmetry; R(gamma_i) = sum_i [lambda_i - 2 g_i lambda_i
    + g_i^2 ((N+1)/N lambda_i + (tr Lambda + sigma^2)/N)]; minimized coordinate-wise.
    Returns (R*, the closed form sum_i lambda_i (lambda_i + tr Lambda + sigma^2)/((N+1) lambda_i
    + tr Lambda + sigma^2), symbols).
    """
    import sympy as sp
    lam = sp.symbols(f"lambda0:{r}", positive=True)
    N, sigma = sp.symbols("N sigma", positive=True)
    g = sp.symbols(f"g0:{r}", real=True)
    trL = sum(lam)
    R = sum(l - 2 * gi * l + gi**2 * ((N + 1) / N * l + (trL + sigma**2) / N) for l, gi in zip(lam, g))
    sol = sp.solve([sp.diff(R, gi) for gi in g], g, dict=True)[0]
    Rstar = sp.simplify(R.subs(sol))
    closed = sum(l * (l + trL + sigma**2) / ((N + 1) * l + trL + sigma**2) for l in lam)
    return Rstar, closed, (lam, N, sigma)


# ---------------------------------------------------------------------------------------------
# Fast numeric callables
# ---------------------------------------------------------------------------------------------
def fourth_moment(Sigma, B, N: int):
    """E[X^T X B X^T X] = N(N+1) Sigma B Sigma + N tr(B Sigma) Sigma (symmetric B, rows ~ N(0, Sigma))."""
    Sigma = np.asarray(Sigma, dtype=float)
    B = np.asarray(B, dtype=float)
    return N * (N + 1) * Sigma @ B @ Sigma + N * np.trace(B @ Sigma) * Sigma


def _lt1_F(Sigma_x, M, sigma, N):
    return (N + 1) / N * Sigma_x @ M @ Sigma_x + (np.sum(M * Sigma_x) + sigma**2) / N * Sigma_x


def lt1_risk(Gamma, b, Sigma_x, Sigma_w, w0, sigma: float, N: int) -> float:
    """Exact risk E||w_hat - w||^2 of the one-layer LT w_hat = b + Gamma X^T (Y - X b)/N, any (b, Gamma):
    tr M - 2 tr(Gamma Sigma_x M) + tr(Gamma F Gamma^T), M = Sigma_w + (w0 - b)(w0 - b)^T,
    F = (N+1)/N Sigma_x M Sigma_x + (tr(M Sigma_x) + sigma^2)/N Sigma_x.
    """
    m = np.asarray(w0, dtype=float) - np.asarray(b, dtype=float)
    M = np.asarray(Sigma_w, dtype=float) + np.outer(m, m)
    Sigma_x = np.asarray(Sigma_x, dtype=float)
    Gamma = np.asarray(Gamma, dtype=float)
    F = _lt1_F(Sigma_x, M, sigma, N)
    return float(np.trace(M) - 2 * np.sum(Gamma.T * (Sigma_x @ M)) + np.sum((Gamma @ F) * Gamma))


def lt1_optimal(Sigma_x, Sigma_w, w0, sigma: float, N: int):
    """Optimal one-layer LT: b* = w0, Gamma* = Sigma_w Sigma_x F^{-1} (F with M = Sigma_w), and
    R* = tr Sigma_w - tr(Gamma* Sigma_x Sigma_w). Returns (b, Gamma, risk). O(d^3)."""
    Sigma_x = np.asarray(Sigma_x, dtype=float)
    Sigma_w = np.asarray(Sigma_w, dtype=float)
    F = _lt1_F(Sigma_x, Sigma_w, sigma, N)
    G = Sigma_w @ Sigma_x
    Gamma = np.linalg.solve(F.T, G.T).T          # Gamma F = Sigma_w Sigma_x (F symmetric)
    risk = float(np.trace(Sigma_w) - np.sum(Gamma.T * (Sigma_x @ Sigma_w)))   # tr(Gamma Sigma_x Sigma_w)
    return np.array(w0, dtype=float), Gamma, risk


def lt1_risk_isotropic(sigma, r, N, lam=1.0):
    """R* for Sigma_x = I, Lambda = lam I_r: r lam (lam (r+1) + sigma^2) / ((N + r + 1) lam + sigma^2)."""
    sigma = np.asarray(sigma, dtype=float)
    r = np.asarray(r, dtype=float)
    lam = np.asarray(lam, dtype=float)
    return r * lam * (lam * (r + 1) + sigma**2) / ((N + r + 1) * lam + sigma**2)
