"""rho = 1: the full-rank closed forms of Lu et al. from the general low-rank equations."""
import mpmath
import numpy as np
import pytest
import sympy as sp

from lowrank_icl.numerics import ForwardParams, solve
from lowrank_icl.theory.forward import full_rank as fr
from lowrank_icl.theory.forward.stieltjes import derive_pool_quadratic, gt, rho, z


def test_lu_M_is_the_pool_transform_at_rho_1():
    assert fr.derive_m_is_pool_transform() == 0


def test_lu_idg_tau_gt_1_derived_symbolically():
    m_star, e_tm, _ = fr.derive_ridgeless_tau_gt_1()
    lu = fr.tau * (fr.rho_lu + fr.x * (1 - fr.x * m_star)) / (fr.tau - 1)
    diff_num = sp.together(sp.simplify(e_tm - lu)).as_numer_denom()[0]
    quad = derive_pool_quadratic().polynomial.subs({rho: 1, z: -fr.x, gt: m_star})
    # the difference is a multiple of the quadratic that m* = M_kappa(x*) obeys, hence zero
    assert sp.rem(sp.expand(diff_num), sp.expand(quad), m_star) == 0


def test_ridgeless_root_quadratic_has_one_positive_root():
    a, b, c = fr.derive_ridgeless_root_quadratic().all_coeffs()
    # a = kappa tau > 0 and c = -x (1 - tau)^2 < 0 for tau < 1: roots of opposite sign
    assert sp.simplify(a - fr.kappa * fr.tau) == 0
    assert sp.simplify(c + fr.x * (1 - fr.tau) ** 2) == 0


rng = np.random.default_rng(5)
CASES = [(10 ** rng.uniform(-0.5, 2), t, 10 ** rng.uniform(-1, 1.5), 10 ** rng.uniform(-3, 0))
         for t in np.concatenate([rng.uniform(0.05, 0.95, 8), rng.uniform(1.05, 6, 8)])]


@pytest.mark.parametrize("alpha,tau,kappa,rho_lu", CASES)
def test_published_closed_forms_match_general_solver(alpha, tau, kappa, rho_lu):
    p = ForwardParams.from_full_rank(alpha, tau, kappa, rho_lu, lam_lu=0.0)
    res = solve(p.alpha, p.tau, p.kappa, p.rho, p.sigma, p.lam)
    err = res.errors()
    ours_tm, ours_icl = fr.full_rank_ridgeless_errors(alpha, tau, kappa, rho_lu)
    assert ours_tm == pytest.approx(err.tm, rel=1e-12)
    assert ours_icl == pytest.approx(err.odg, rel=1e-12)
    assert err.idg == pytest.approx(err.odg, rel=1e-12)  # rho = 1: IDG = ODG
    if tau < 1:
        assert fr.published_ridgeless_icl_tau_lt_1(alpha, tau, kappa, rho_lu) == pytest.approx(err.odg, rel=1e-10)
    else:
        assert fr.published_ridgeless_idg_tau_gt_1(alpha, tau, kappa, rho_lu) == pytest.approx(err.tm, rel=1e-10)


@pytest.mark.parametrize("alpha,tau,kappa,rho_lu", [(2.0, 0.5, 0.7, 0.1), (10.0, 0.2, 0.5, 0.01), (1.3, 0.9, 4.0, 0.3)])
def test_published_icl_tau_lt_1_at_50_digits(alpha, tau, kappa, rho_lu):
    # the tau < 1 identity is checked numerically only; at 50 digits agreement to 1e-40 leaves no
    # room for an approximate match
    p = ForwardParams.from_full_rank(alpha, tau, kappa, rho_lu, lam_lu=0.0)
    res = solve(p.alpha, p.tau, p.kappa, p.rho, p.sigma, p.lam, precision=50)
    with mpmath.workdps(50):
        a, t, k, r = (mpmath.mpf(v) for v in (alpha, tau, kappa, rho_lu))
        # sigma^2 = rho_lu exactly in mpmath: re-evaluate the ODG error from the order parameters
        s2 = 1 + r
        odg = r + 1 - 2 * res.m_bar + res.q_bar + s2 * res.q_bar / a
        pub = fr.published_ridgeless_icl_tau_lt_1(a, t, k, r)
        assert abs(odg / pub - 1) < mpmath.mpf(10) ** -14  # sigma passed through float sqrt: 1e-16 input error


def test_lu_conventions_round_trip_and_ridge():
    p = ForwardParams.from_full_rank(alpha=10, tau=2.0, kappa=0.5, rho_lu=0.01, lam_lu=1e-5)
    assert p.lam == pytest.approx(1e-5 * 2.0 / 0.5)
    res = solve(p.alpha, p.tau, p.kappa, p.rho, p.sigma, p.lam)
    ridgeless = fr.full_rank_ridgeless_errors(10, 2.0, 0.5, 0.01)
    # lam_Lu = 1e-5 is a perturbation of relative size O(lam) of the ridgeless solution
    assert res.errors().tm == pytest.approx(ridgeless[0], rel=1e-3)


def test_threshold_inf():
    tm, icl = fr.full_rank_ridgeless_errors(2.0, 1.0, 0.5, 0.1)
    assert tm == np.inf and icl == np.inf
