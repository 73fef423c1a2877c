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
    res = solve(alpha=p.alpha, tau=p.tau, kappa=p.kappa, rho=p.rho, sigma=p.sigma, lam=p.lam)
    err = res.errors()
    ours_tm, ours_icl = fr.full_rank_ridgeless_errors(alpha, tau, kappa, rho_lu)
    assert ours_tm == pytest.approx(err.tm, rel=1e-12)
    assert ours_icl == pytest.approx(err.odg, rel=1e-12)
    assert err.idg == pytest.approx(err.odg, rel=1e-12)  # rho = 1: IDG = ODG
    if tau < 1:
        assert fr.published_ridgeless_icl_tau_lt_1(alpha, tau, kappa, rho_lu) == pytest.approx(err.odg, rel=1e-10)
    else:
        assert fr.published_ridgeless_idg_tau_gt_1(alpha, tau, kappa, rho_lu) == pytest.approx(err.tm, rel=1e-10)


# sigma is a power of 2 so that rho_Lu = sigma^2 is exact in binary: the 50-digit comparison then
# has no input rounding and 1e-40 is a real bound (measured ~1e-50)
@pytest.mark.parametrize("alpha,tau,kappa,sigma", [(2.0, 0.5, 0.7, 0.25), (10.0, 0.2, 0.5, 0.125), (1.3, 0.9, 4.0, 0.5),
                                                   (2.0, 1.7, 0.5, 0.25), (10.0, 3.0, 4.0, 0.5), (1.3, 1.2, 2.0, 0.125)])
def test_published_icl_at_50_digits(alpha, tau, kappa, sigma):
    res = solve(alpha=alpha, tau=tau, kappa=kappa, rho=1.0, sigma=sigma, lam=0.0, precision=50)
    with mpmath.workdps(50):
        a, t, k, r = (mpmath.mpf(v) for v in (alpha, tau, kappa, sigma**2))
        published = (fr.published_ridgeless_icl_tau_lt_1 if tau < 1 else fr.published_ridgeless_icl_tau_gt_1)
        assert abs(res.errors().odg / published(a, t, k, r) - 1) < mpmath.mpf(10) ** -40
        if tau > 1:
            assert abs(res.errors().tm / fr.published_ridgeless_idg_tau_gt_1(a, t, k, r) - 1) < mpmath.mpf(10) ** -40


def _lu_ridge_icl_error(dim, alpha, tau, kappa, rho_lu, lam_lu, rng):
    """One draw of Lu et al.'s ridge estimator at finite D, in THEIR convention: penalty
    (n/d) lam_Lu ||Gamma||_F^2 with n = M prompts and d = D (noise variance rho_Lu). Returns its exact
    test error for isotropic test tasks at test context L (e(Gamma) of docs/model.md, C = I)."""
    L, M, K = int(round(alpha * dim)), int(round(tau * dim * dim)), int(round(kappa * dim))
    pool = rng.standard_normal((K, dim))
    w = pool[rng.integers(K, size=M)]
    X = rng.standard_normal((M, L + 1, dim)) / np.sqrt(dim)
    y = np.einsum("mld,md->ml", X, w) + np.sqrt(rho_lu) * rng.standard_normal((M, L + 1))
    h = (dim / L) * np.einsum("ml,mld->md", y[:, :L], X[:, :L])
    H = np.einsum("mi,mj->mij", X[:, L], h).reshape(M, dim * dim)
    gram = H.T @ H + (M / dim) * lam_lu * np.eye(dim * dim)
    gamma = np.linalg.solve(gram, H.T @ y[:, L]).reshape(dim, dim)
    mt = (1 + 1 / L + (1 + rho_lu) * dim / L) * np.eye(dim)
    return rho_lu + (dim - 2 * np.trace(gamma) + np.trace(gamma @ mt @ gamma.T)) / dim


def test_lu_ridge_convention_against_their_estimator(rng):
    # ForwardParams.from_full_rank maps lam_Lu to lam = lam_Lu tau/kappa. Check it against Lu et al.'s
    # estimator itself (their ridge normalization (n/d) lam_Lu), simulated at D = 10, 14, 20 and
    # extrapolated in 1/D: the conversion must agree within 3 SE and the two wrong conventions
    # (lam = lam_Lu, lam = lam_Lu kappa/tau; 9% and 27% higher here) must be rejected.
    alpha, tau, kappa, rho_lu, lam_lu = 2.0, 2.0, 0.5, 0.1, 1.0
    dims = np.array([10, 14, 20])
    means, ses = [], []
    for dim in dims:
        v = [_lu_ridge_icl_error(dim, alpha, tau, kappa, rho_lu, lam_lu, rng) for _ in range(16)]
        means.append(np.mean(v))
        ses.append(np.std(v, ddof=1) / np.sqrt(len(v)))
    design = np.column_stack([np.ones(3), 1 / dims])
    weights = 1 / np.array(ses) ** 2
    cov = np.linalg.inv(design.T @ (weights[:, None] * design))
    e_inf = (cov @ design.T @ (weights * np.array(means)))[0]
    se_inf = np.sqrt(cov[0, 0])
    p = ForwardParams.from_full_rank(alpha, tau, kappa, rho_lu, lam_lu=lam_lu)
    theory = float(solve(p).errors().odg)
    assert abs(e_inf - theory) < 3 * se_inf, (e_inf, se_inf, theory)
    for wrong_lam in (lam_lu, lam_lu * kappa / tau):
        wrong = float(solve(alpha=alpha, tau=tau, kappa=kappa, rho=1.0, sigma=np.sqrt(rho_lu),
                            lam=wrong_lam).errors().odg)
        assert abs(e_inf - wrong) > 3 * se_inf, wrong


def test_full_rank_closed_form_accurate_at_large_alpha():
    # the closed form runs through the cancellation-free moments: ~1e-15 relative up to alpha = 1e14,
    # also for kappa < 1 where the symbolic forms lost 3e-5 at alpha = 1e12 (50-digit reference)
    for alpha in (1e4, 1e8, 1e12, 1e14):
        for tau, kappa in ((3.0, 0.5), (3.0, 2.0), (0.3, 0.5), (0.5, 2.0)):
            tm, icl = fr.full_rank_ridgeless_errors(alpha, tau, kappa, 0.01)
            ref = solve(alpha=alpha, tau=tau, kappa=kappa, rho=1.0, sigma=0.1, lam=0.0, precision=40).errors()
            assert abs(float(tm / ref.tm - 1)) < 1e-13 and abs(float(icl / ref.odg - 1)) < 1e-13, (alpha, tau, kappa)


def test_threshold_inf():
    tm, icl = fr.full_rank_ridgeless_errors(2.0, 1.0, 0.5, 0.1)
    assert tm == np.inf and icl == np.inf
