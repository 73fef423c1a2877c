"""Exact finite-D theory of the reduced model: symbolic identities, exact vs sampled test error,
optimality of Gamma*, and the limit of its scale."""
import numpy as np
import pytest
import sympy as sp

from lowrank_icl.theory.forward import finite_size as fs
from lowrank_icl.validation.forward import sampling


def test_conditional_moments_of_h_from_isserlis():
    mom = fs.derive_conditional_moments()
    D, L, sigma = fs.D, fs.L, fs.sigma
    assert sp.simplify(mom.mean_i - fs.w_i) == 0
    assert sp.simplify(mom.second_offdiag - (1 + 1 / L) * fs.w_i * fs.w_k) == 0
    assert sp.simplify(mom.second_diag - ((1 + 1 / L) * fs.w_i**2 + (fs.w2 + sigma**2 * D) / L)) == 0


@pytest.mark.parametrize("dim", [2, 3])
def test_exact_error_matrix_formula_matches_componentwise_derivation(dim):
    derived, formula, _ = fs.derive_test_error(dim)
    assert sp.expand(derived - formula) == 0


def test_optimal_gamma_is_stationary_point_symbolically():
    G_star, closed = fs.derive_optimal_gamma(2)
    assert all(sp.simplify(e) == 0 for e in (G_star - closed))


def test_optimal_gamma_scale_exact_and_limit(rng):
    exact, limit, sym = fs.derive_optimal_gamma_scale()
    L, r, s = fs.L, sym["r"], fs.sigma
    assert sp.simplify(exact - L / (L + 1 + r * (1 + s**2))) == 0
    assert sp.simplify(limit - sym["alpha"] / (sym["alpha"] + sym["rho"] * (1 + s**2))) == 0
    # numeric callable vs the sympy expressions at random physical points
    for _ in range(5):
        a, rho, sg, D = rng.uniform(0.1, 5), rng.uniform(0.05, 1), rng.uniform(0, 2), int(rng.integers(5, 500))
        val = float(exact.subs({fs.D: D, L: a * D, r: rho * D, s: sg}))
        assert fs.optimal_gamma_scale(a, rho, sg, dim=D) == pytest.approx(val, rel=1e-13)
        lim = float(limit.subs({sym["alpha"]: a, sym["rho"]: rho, s: sg}))
        assert fs.optimal_gamma_scale(a, rho, sg) == pytest.approx(lim, rel=1e-13)
        # gamma_D = alpha/(alpha + rho s2 + 1/D), so lim - gamma_D = (alpha/D)/((a+rho s2)(a+rho s2+1/D))
        c = a + rho * (1 + sg**2)
        assert lim - fs.optimal_gamma_scale(a, rho, sg, dim=D) == pytest.approx(a / D / (c * (c + 1 / D)), rel=1e-9)


def test_optimal_gamma_rank_r_form_and_zero_gradient(rng):
    D, r, L, sg = 12, 5, 17, 0.4
    A = sampling.haar_subspace(D, r, rng)
    C = fs.SecondMoment.subspace(A)
    G_star = fs.optimal_gamma(C, L, sg)
    gamma = fs.optimal_gamma_scale(L / D, r / D, sg, dim=D)
    np.testing.assert_allclose(G_star, gamma * A @ A.T, atol=1e-13)
    e0 = fs.exact_test_error(G_star, C, L, sg)
    for _ in range(5):
        delta = rng.standard_normal((D, D))
        eps = 1e-4
        ep, em = fs.exact_test_error(G_star + eps * delta, C, L, sg), fs.exact_test_error(G_star - eps * delta, C, L, sg)
        # e is quadratic: central difference is exact up to rounding; slope must vanish at the optimum
        assert abs(ep - em) / (2 * eps) < 1e-9
        assert ep > e0 and em > e0


def test_factor_identity_and_matrix_forms_agree(rng):
    D = 9
    G = rng.standard_normal((D, D)) / np.sqrt(D)
    W = rng.standard_normal((4, D))
    for L in (3, 40):
        by_factor = fs.exact_test_error(G, fs.SecondMoment.pool(W), L, 0.7)
        by_matrix = fs.exact_test_error(G, W.T @ W / 4, L, 0.7)
        assert by_factor == pytest.approx(by_matrix, rel=1e-13)
    assert fs.exact_test_error(G, None, 5, 0.2) == pytest.approx(fs.exact_test_error(G, np.eye(D), 5, 0.2), rel=1e-13)


@pytest.mark.parametrize("protocol", ["tm", "idg", "odg"])
def test_exact_error_equals_sampled_test_prompts(protocol, rng):
    """The same quantity two ways: e(Gamma) from the formula vs the mean squared error of explicit
    test prompts (contexts built token by token), at D = 6, L~ = 5, sigma_t = 0.5."""
    D, r, L, sg, n = 6, 3, 5, 0.5, 60_000
    A = sampling.haar_subspace(D, r, rng)
    pool = sampling.task_pool(A, 4, rng)
    G = 0.6 * A @ A.T + 0.2 * rng.standard_normal((D, D)) / np.sqrt(D)
    if protocol == "tm":
        w, C = pool[rng.integers(4, size=n)], fs.SecondMoment.pool(pool)
    elif protocol == "idg":
        w, C = sampling.task_pool(A, n, rng), fs.SecondMoment.subspace(A)
    else:
        w, C = rng.standard_normal((n, D)), None
    h = sampling.sample_h_explicit(w, L, sg, rng)
    x = rng.standard_normal((n, D)) / np.sqrt(D)
    y = np.einsum("ij,ij->i", x, w) + sg * rng.standard_normal(n)
    sq = (y - np.einsum("ij,jk,ik->i", x, G, h)) ** 2
    se = sq.std(ddof=1) / np.sqrt(n)
    # 5 SE: a false failure has probability < 1e-6
    assert abs(sq.mean() - fs.exact_test_error(G, C, L, sg)) < 5 * se
