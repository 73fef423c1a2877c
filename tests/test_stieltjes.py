"""Pool Stieltjes transforms: derived quadratic vs published forms, 50-digit references, sampled pools."""
import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from lowrank_icl.theory.forward.stieltjes import (derive_pool_derivative, derive_pool_quadratic, gt, kappa,
                                          pool_transforms, pool_transforms_by_quadrature,
                                          pool_transforms_mp, published_g, rho, z)

log_z = st.floats(-10, 1)          # z = -10**log_z in [-10, -1e-10]
log_kappa = st.floats(-1.5, 1.5)
rhos = st.floats(0.01, 1.0)


def test_derived_quadratic_has_published_g_tilde_as_root():
    # the published root: g~ = [-(k r z + r - k) - sqrt((k r z + r - k)^2 - 4 r^2 k z)] / (2 r z)
    b = kappa * rho * z + rho - kappa
    published = (-b - sp.sqrt(b**2 - 4 * rho**2 * kappa * z)) / (2 * rho * z)
    poly = derive_pool_quadratic().polynomial
    assert sp.simplify(sp.expand(poly.subs(gt, published))) == 0


def test_g_relation_reproduces_published_g_symbolically():
    # g = rho g~ - (1 - rho)/z with g~ the published root equals the published g
    b = kappa * rho * z + rho - kappa
    disc = b**2 - 4 * rho**2 * kappa * z
    g_tilde = (-b - sp.sqrt(disc)) / (2 * rho * z)
    g_pub = (kappa + rho - kappa * rho * z - 2 - sp.sqrt(disc)) / (2 * z)
    assert sp.simplify(rho * g_tilde - (1 - rho) / z - g_pub) == 0


@given(log_z, log_kappa, rhos)
def test_float64_matches_50_digit_reference(lz, lk, r):
    zz, kk = -10.0**lz, 10.0**lk
    with mpmath.workdps(50):
        ref = pool_transforms_mp(zz, kk, r)
    ours = pool_transforms(zz, kk, r)
    for name in ("g", "dg", "g_tilde", "dg_tilde"):
        exact = getattr(ref, name)
        # cancellation-free: a handful of roundings, nothing amplified
        assert abs(float((getattr(ours, name) - exact) / exact)) < 1e-14, name


@given(st.floats(-6, 0.5), log_kappa, rhos)
def test_mp_agrees_with_published_g_at_50_digits(lz, lk, r):
    with mpmath.workdps(50):
        zz, kk, rr = -mpmath.mpf(10) ** lz, mpmath.mpf(10) ** lk, mpmath.mpf(r)
        ours = pool_transforms_mp(zz, kk, rr).g
        b = kk * rr * zz + rr - kk
        pub = (kk + rr - kk * rr * zz - 2 - mpmath.sqrt(b**2 - 4 * kk * rr**2 * zz)) / (2 * zz)
        assert abs((ours - pub) / pub) < mpmath.mpf(10) ** -40


def test_textbook_root_loses_digits_where_ours_does_not():
    # near z = 0 with kappa > rho the textbook numerator cancels; documents why the stable form exists
    zz, kk, r = -1e-10, 1.5, 1.0
    with mpmath.workdps(50):
        exact = pool_transforms_mp(zz, kk, r).g
    assert abs(float((pool_transforms(zz, kk, r).g - exact) / exact)) < 1e-14
    assert abs(float((published_g(zz, kk, r) - exact) / exact)) > 1e-9


@pytest.mark.parametrize("zz,kk,r", [(-0.3, 0.4, 0.3), (-1e-3, 0.2, 0.5), (-2.0, 3.0, 1.0), (-0.05, 0.9, 0.7)])
def test_quadrature_of_marchenko_pastur_density(zz, kk, r):
    # independent route: integrate the MP density (with its atoms) at 50 digits
    ref = pool_transforms_by_quadrature(zz, kk, r, dps=50)
    with mpmath.workdps(50):
        ours = pool_transforms_mp(zz, kk, r)
        for name in ("g", "dg", "g_tilde", "dg_tilde"):
            assert abs((getattr(ours, name) - getattr(ref, name)) / getattr(ref, name)) < mpmath.mpf(10) ** -25


@given(st.floats(-4, 0.5), log_kappa, rhos)
def test_derivative_is_d_by_dz(lz, lk, r):
    with mpmath.workdps(40):
        zz, kk, rr = -mpmath.mpf(10) ** lz, mpmath.mpf(10) ** lk, mpmath.mpf(r)
        tr = pool_transforms_mp(zz, kk, rr)
        numeric_dg = mpmath.diff(lambda t: pool_transforms_mp(t, kk, rr).g, zz)
        numeric_dgt = mpmath.diff(lambda t: pool_transforms_mp(t, kk, rr).g_tilde, zz)
        assert abs(tr.dg / numeric_dg - 1) < mpmath.mpf(10) ** -25
        assert abs(tr.dg_tilde / numeric_dgt - 1) < mpmath.mpf(10) ** -25


def test_implicit_derivative_formula_is_symbolically_consistent():
    P = derive_pool_quadratic().polynomial
    slope = derive_pool_derivative()
    assert sp.simplify(sp.diff(P, z) + sp.diff(P, gt) * slope) == 0


def test_large_negative_z_asymptotics():
    zz = -1e8
    tr = pool_transforms(zz, 0.7, 0.4)
    # g ~ -1/z - (mean eigenvalue = 1)/z^2: the branch with total mass 1
    assert tr.g == pytest.approx(-1 / zz - 1 / zz**2, rel=1e-14)
    assert tr.g_tilde == pytest.approx(-1 / zz, rel=1e-7)


def test_rejects_nonnegative_z():
    with pytest.raises(ValueError, match="z must be < 0"):
        pool_transforms(0.0, 1.0, 1.0)


@pytest.mark.parametrize("kk,r", [(0.8, 0.4), (0.2, 0.5)])
def test_sampled_pool_eigenvalues(kk, r):
    # Resolvent traces of sampled pools at D = 200, 400, 800 (8 pools each), extrapolated by weighted
    # least squares e(D) = e_inf + c/D (O(1/D) bias of linear spectral statistics); the pass rule
    # of the toolkit: |e_inf - theory| <= 3 standard errors of e_inf.
    rng = np.random.default_rng(11)
    zz = -0.3
    dims = np.array([200, 400, 800])
    means, sems = {"g": [], "g_tilde": []}, {"g": [], "g_tilde": []}
    for D in dims:
        rk, m0 = int(r * D), int(kk * D)
        vals = {"g": [], "g_tilde": []}
        for _ in range(8):
            V = rng.standard_normal((m0, rk))
            # nonzero eigenvalues of S = (D/r)(1/M0) A V^T V A^T are those of (D/r)(1/M0) V^T V
            eig = np.linalg.eigvalsh((D / rk) * (V.T @ V) / m0)
            tr_a = np.sum(1 / (eig - zz))
            vals["g"].append((tr_a + (D - rk) / (-zz)) / D)
            vals["g_tilde"].append(tr_a / rk)
        for name, v in vals.items():
            means[name].append(np.mean(v))
            sems[name].append(np.std(v, ddof=1) / np.sqrt(len(v)))
    theory = pool_transforms(zz, kk, r)
    for name in ("g", "g_tilde"):
        y, s = np.array(means[name]), np.array(sems[name])
        X = np.column_stack([np.ones_like(dims, dtype=float), 1.0 / dims])
        W = np.diag(1 / s**2)
        cov = np.linalg.inv(X.T @ W @ X)
        e_inf = (cov @ X.T @ W @ y)[0]
        assert abs(e_inf - getattr(theory, name)) <= 3 * np.sqrt(cov[0, 0]), name


@pytest.mark.parametrize("nu", [1e-10, 1e-4, 1.0, 1e3, 1e8])
@pytest.mark.parametrize("kk,r", [(0.05, 0.1), (0.3, 0.5), (3.0, 1.0), (100.0, 0.3)])
def test_stable_moments_match_published_forms_at_120_digits(nu, kk, r):
    # the textbook combinations (1 + 2zg + z^2 g', ...) evaluated with 120 digits are the reference;
    # in float64 they would lose ~eps nu^2, the stable forms lose nothing
    from lowrank_icl.theory.forward.stieltjes import pool_moments, pool_moments_mp
    ours = pool_moments(-nu, kk, r)
    with mpmath.workdps(120):
        ref = pool_moments_mp(-nu, kk, r)
        z_, g_, dg_ = -mpmath.mpf(nu), ref.g, ref.dg
        published = {"A1": 1 + z_ * g_, "B1": g_ + z_ * dg_, "A2": 1 + 2 * z_ * g_ + z_**2 * dg_,
                     "Mm": 1 + z_ * (1 + z_ * g_), "Q3": 1 + 2 * z_ + 3 * z_**2 * g_ + z_**3 * dg_,
                     "W": z_**2 * (g_ + z_ * dg_)}
        for name, exact in published.items():
            assert abs(getattr(ref, name) / exact - 1) < mpmath.mpf(10) ** -80, name
            assert abs(float(getattr(ours, name) / exact) - 1) < 4e-15, name  # a few roundings


def test_population_moments_are_the_kappa_limit():
    # kappa = inf: the numeric moments (products of nonnegative factors) equal the sympy limit of the
    # finite-kappa stable moments, and the finite-kappa moments approach them like 1/kappa
    from lowrank_icl.theory.forward.stieltjes import (PoolMoments, _population_moments, derive_population_moments,
                                                      pool_moments)

    lim = derive_population_moments()
    nu_s, r_s = lim["nu"], lim["rho"]
    sym = _population_moments(nu_s, r_s)
    for name in PoolMoments.__dataclass_fields__:
        assert sp.simplify(getattr(sym, name) - lim[name]) == 0, name
    assert sp.simplify(lim["t"] - r_s / (1 + r_s * nu_s)) == 0  # the two-atom law: weight rho at 1/rho
    nu_v, r_v = np.array([1e-3, 0.4, 30.0]), 0.35
    inf = pool_moments(-nu_v, np.inf, r_v)
    gaps = [np.abs(pool_moments(-nu_v, k, r_v).A2 - inf.A2) * k for k in (1e5, 1e7)]
    assert np.allclose(gaps[0], gaps[1], rtol=1e-3) and np.all(gaps[0] > 0)


@pytest.mark.parametrize("nu,kk,r", [(1e-12, 1.0, 1.0), (1e-14, 0.3, 0.3), (1e-8, 0.5, 0.5000001), (1e-3, 2.0, 2.0 / 3)])
def test_moments_keep_accuracy_at_the_square_wishart_edge(nu, kk, r):
    # kappa = rho: b = kappa rho z + rho - kappa is O(nu); summing it as (rho - kappa) + kappa rho z keeps
    # its relative accuracy (the other order lost 4e-11 at nu = 1e-12)
    from lowrank_icl.theory.forward.stieltjes import PoolMoments, pool_moments, pool_moments_mp
    ours = pool_moments(-nu, kk, r)
    with mpmath.workdps(50):
        ref = pool_moments_mp(-nu, kk, r)
        for name in PoolMoments.__dataclass_fields__:
            assert abs(float(getattr(ours, name) / getattr(ref, name) - 1)) < 1e-14, name
