r"""Deterministic equivalent of the task pool for a general task covariance, and the test-law traces.

Pool: S = (1/M0) sum_{i <= M0} w_i w_i^T, w_i ~ N(0, Sigma), Sigma = O diag(s) O^T, M0 = kappa D.
Effective ridge nu > 0, resolvent R = (S + nu)^{-1}.

Premise (Silverstein; Marchenko-Pastur with population spectrum s): for any deterministic C of
bounded norm, (1/D) tr C R - (1/D) tr C Rbar -> 0 almost surely, where

    Rbar = (x Sigma + nu)^{-1},     x = 1/(1 + delta),     delta = (1/M0) tr Sigma Rbar
                                                            = (1/kappa) mean_i s_i/(x s_i + nu).

(The second form of delta uses the eigenbasis O; "mean_i" is the average over the D directions.)
Since tr C Rbar = sum_i (O^T C O)_ii / (x s_i + nu), every first-order trace depends on C only
through its diagonal t_i = o_i^T C o_i in Sigma's eigenbasis: the *spectral-pair reduction*. The
second-order traces follow by differentiating in nu (the equivalence holds for analytic functions
uniformly on compacts of nu > 0, so derivatives converge too):

    (1/D) tr C R^2 = -d/dnu (1/D) tr C R  ->  mean t (1 + x' s)/(x s + nu)^2,     x' = dx/dnu.

and the remaining ones from the exact identities S R = I - nu R, S^2 R^2 = (I - nu R)^2.

This module derives, with sympy, for ONE atom (s, t) (every formula is linear in the measure of
atoms, so one atom proves the sum):

* the monotone scalar equation for delta and the implicit derivative x' (:func:`derive_inner_equation`);
* the cancellation-free ("positive") forms of the traces the saddle point needs
  (:func:`derive_positive_forms`), with the identities that prove them.

Notation of the positive forms, with y = 1 + delta = 1/x and d_i = s_i + nu y (so 1/(x s + nu) = y/d):

    Dn = 1 + (1/kappa) nu y^2 mean s/d^2,      x' = (y/kappa) mean(s/d^2) / Dn,
    J  = (1/kappa) mean s^2/d^2.
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

nu, kappa = sp.symbols("nu kappa", positive=True)
s, t = sp.symbols("s t", nonnegative=True)
delta = sp.Symbol("delta", nonnegative=True)
x = sp.Symbol("x", positive=True)


def stieltjes_trace(x_value, nu_value, s_value, t_value):
    """The summand of (1/D) tr C Rbar for one atom: t/(x s + nu)."""
    return t_value / (x_value * s_value + nu_value)


@lru_cache(maxsize=None)
def derive_inner_equation() -> dict:
    r"""The inner equation and its derivative, for one atom (the mean over atoms is linear).

    Phi(x, nu) = 1 - x - (1/kappa) x s/(x s + nu) = 0 (from delta = (1/kappa) s/(x s + nu), x = 1/(1+delta)):
    strictly decreasing in x on (0, 1], Phi(0) = 1 > 0 and Phi(1) < 0, so the root is unique.
    Returns ``phi``, ``dphi_dx`` (< 0), ``dx_dnu`` = -Phi_nu/Phi_x (> 0), all sympy expressions.
    """
    phi = 1 - x - x * s / (kappa * (x * s + nu))
    dphi_dx = sp.simplify(sp.diff(phi, x))
    dx_dnu = sp.simplify(-sp.diff(phi, nu) / sp.diff(phi, x))
    return {"phi": phi, "dphi_dx": dphi_dx, "dx_dnu": dx_dnu}


@lru_cache(maxsize=None)
def derive_positive_forms() -> dict:
    r"""Deterministic equivalents of the traces of the saddle point, in textbook and positive forms.

    For one atom of weight 1 (s, t) with x, x' given, the textbook forms are, with C the test law:

    ======  ===========================  ==========================================
    name    trace                        textbook form (from tr C R and tr C R^2)
    ======  ===========================  ==========================================
    e1      (1/D) tr C R                 t/(x s + nu)
    e2      (1/D) tr C R^2               t (1 + x' s)/(x s + nu)^2
    m       (1/D) tr C S R               t - nu e1
    sr2     (1/D) tr C S R^2             e1 - nu e2
    s2r2    (1/D) tr C S^2 R^2           t - 2 nu e1 + nu^2 e2
    ======  ===========================  ==========================================

    and the positive forms (y = 1/x, d = s + nu y) are

        m = t s/d,   sr2 = (y/Dn) t s/d^2 (needs the full mean, see below),   s2r2 = t (s^2 + nu^2 x' y^2 s)/d^2.

    ``sr2`` uses x - nu x' = x/Dn, which needs x' of the *whole* spectrum; it is returned as an
    identity in (x, x', Dn) to be checked against the one-atom spectrum in the tests.
    Returns {name: (textbook, positive)}.
    """
    xp = sp.Symbol("xp", positive=True)  # x' (its value is fixed by the whole spectrum)
    y = 1 / x
    d = s + nu * y
    e1 = stieltjes_trace(x, nu, s, t)
    e2 = t * (1 + xp * s) / (x * s + nu) ** 2
    textbook = {"e1": e1, "e2": e2, "m": t - nu * e1, "sr2": e1 - nu * e2,
                "s2r2": t - 2 * nu * e1 + nu**2 * e2}
    positive = {"e1": t * y / d, "e2": t * (1 + xp * s) * y**2 / d**2, "m": t * s / d,
                "sr2": (x - nu * xp) * t * s * y**2 / d**2,  # = (y/Dn) t s/d^2 once x - nu x' = x/Dn
                "s2r2": t * (s**2 + nu**2 * xp * y**2 * s) / d**2}
    return {k: (textbook[k], positive[k]) for k in textbook}


@lru_cache(maxsize=None)
def derive_one_atom_slope() -> dict:
    r"""x' and x - nu x' for a one-atom spectrum, to check x - nu x' = x/Dn, Dn = 1 + (1/kappa) s nu/(x s + nu)^2."""
    dx = derive_inner_equation()["dx_dnu"]
    dn = 1 + s * nu / (kappa * (x * s + nu) ** 2)
    return {"x_minus_nu_xp": sp.simplify(x - nu * dx), "x_over_Dn": x / dn, "xp": dx,
            "xp_positive_form": (x / kappa) * s / (x * s + nu) ** 2 / dn}


__all__ = ["derive_inner_equation", "derive_positive_forms", "derive_one_atom_slope", "stieltjes_trace"]
