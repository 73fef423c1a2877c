"""Independent checks of the inverse-ICL risk predictors through the model objects (lowrank_icl.numerics.inverse).

The formulas live in lowrank_icl.theory.inverse and numerics/inverse/risk.py (tested in test_inverse_theory.py).
Here they are re-derived along a second route and checked end to end on contexts drawn by
InverseModel.sample with an anisotropic Sigma_x (cond = 10, Haar eigenbasis), which exercises the
general-Sigma_x code paths:

* b = w0 is optimal for EVERY Gamma: with A = X^T X / N and e = w - b,
  w_hat - w = -(I - Gamma A) e + Gamma X^T eps / N, and since v is independent of X with mean 0,
  R(Gamma, b) = R(Gamma, w0) + (w0 - b)^T E[(I - Gamma A)^T (I - Gamma A)] (w0 - b), with
  E[(I - Gamma A)^T (I - Gamma A)] = I - Gamma Sigma_x - Sigma_x Gamma^T + E[A Gamma^T Gamma A]
  (the last term by the fourth-moment identity) -- a positive semi-definite form, so b = w0.
* the normal equation written with the raw fourth moment:
  Gamma (E[X^T X Sigma_w X^T X]/N^2 + sigma^2 Sigma_x / N) = Sigma_w Sigma_x.
* per-coordinate predictors vs Monte Carlo of the actual estimators (ORE.predict, lt_forward).
"""
import numpy as np
import pytest

from lowrank_icl.numerics.inverse import InverseModel, InverseParams, ORE, lt_forward, mse_per_coordinate
from lowrank_icl.numerics.inverse.risk import (fourth_moment, lt1_optimal, lt1_risk, lt1_risk_per_coordinate,
                                                ore_risk_per_coordinate)


def _model(seed, **kw):
    p = dict(d=12, N=10, r=3, sigma=0.3, cond=10.0, n_s=1, Lambda=[1.5, 1.0, 0.5])
    p.update(kw)
    return InverseModel.draw(InverseParams(**p), np.random.default_rng(seed))


def test_prior_mean_is_the_optimal_bias_for_every_gamma(rng):
    """Exact identity (no sampling): equality to 1e-9 relative is float rounding of O(d^3) sums."""
    m = _model(3)
    d, N = m.d, m.N
    Sx = m.Sigma_x
    for _ in range(5):
        G = rng.standard_normal((d, d)) / d
        b = m.w0 + rng.standard_normal(d)
        dev = m.w0 - b
        E = np.eye(d) - G @ Sx - Sx @ G.T + fourth_moment(Sx, G.T @ G, N) / N**2
        lhs = lt1_risk(G, b, Sx, m.Sigma_w, m.w0, m.sigma, N)
        rhs = lt1_risk(G, m.w0, Sx, m.Sigma_w, m.w0, m.sigma, N) + dev @ E @ dev
        assert lhs == pytest.approx(rhs, rel=1e-9)
        assert np.linalg.eigvalsh(0.5 * (E + E.T))[0] > -1e-10          # PSD: b = w0 never loses


def test_optimal_gamma_solves_normal_equation_with_raw_fourth_moment():
    """Gamma* from lt1_optimal against the normal equation built from E[X^T X Sigma_w X^T X] directly,
    and R* = tr Sigma_w - tr(Gamma* Sigma_x Sigma_w) = lt1_risk(Gamma*, w0); exact, rounding tolerance."""
    m = _model(4)
    Sx, Sw, N, s2 = m.Sigma_x, m.Sigma_w, m.N, m.sigma**2
    opt = lt1_optimal(Sx, Sw, m.w0, m.sigma, N)
    lhs = opt.Gamma @ (fourth_moment(Sx, Sw, N) / N**2 + s2 * Sx / N)
    np.testing.assert_allclose(lhs, Sw @ Sx, atol=1e-10)
    R = np.trace(Sw) - np.trace(opt.Gamma @ Sx @ Sw)
    assert opt.risk == pytest.approx(R, rel=1e-10)
    assert opt.risk == pytest.approx(lt1_risk(opt.Gamma, opt.b, Sx, Sw, m.w0, m.sigma, N), rel=1e-10)
    # perturbing Gamma can only increase the (quadratic, convex) risk
    G2 = opt.Gamma + 1e-3 * np.random.default_rng(0).standard_normal(opt.Gamma.shape)
    assert lt1_risk(G2, opt.b, Sx, Sw, m.w0, m.sigma, N) > opt.risk


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_per_coordinate_risks_match_sampled_estimators(sigma):
    """Monte Carlo of the actual ORE and optimal K = 1 LT on InverseModel.sample contexts (cond = 10).

    The LT theory is exact, so |MC - theory| < 5 SE of the MC mean (false-alarm rate ~ 6e-7).
    The ORE theory is itself a Monte Carlo over X (its own SE, reported in OreRisk.sem), so the
    tolerance is 5 combined SE, sqrt(se_mc^2 + se_th^2).
    """
    from lowrank_icl.numerics.inverse.risk import ore_risk
    m = _model(6, d=16, N=12, r=4, Lambda=1.0, sigma=sigma)
    rng = np.random.default_rng(7)
    t = m.sample(20_000, rng)
    e_o = mse_per_coordinate(ORE.from_model(m).predict(t.X, t.Y), t.W)
    th = ore_risk(m.Sigma_x, m.U, m.Lambda, m.sigma, m.N, n_samples=20_000, seed=2)
    se = np.hypot(e_o.std(ddof=1) / np.sqrt(e_o.size), th.sem / m.d)
    assert abs(e_o.mean() - th.risk / m.d) < 5 * se

    opt = lt1_optimal(m.Sigma_x, m.Sigma_w, m.w0, m.sigma, m.N)
    w, _ = lt_forward(opt.b, opt.Gamma[None], t.X, t.Y)
    e_l = mse_per_coordinate(w[-1], t.W)
    assert abs(e_l.mean() - lt1_risk_per_coordinate(m)) < 5 * e_l.std(ddof=1) / np.sqrt(e_l.size)
    # the Bayes-optimal ORE beats the best linear one-layer map
    assert th.risk / m.d < lt1_risk_per_coordinate(m)


@pytest.mark.parametrize("sigma, N", [(0.3, 6), (1.0, 3)])
def test_ore_risk_per_coordinate_matches_the_rank_one_integral(sigma, N):
    """At r = 1 the ORE risk is a one-dimensional integral: A = X u has N i.i.d. N(0, s) entries,
    s = u^T Sigma_x u, so A^T A = s chi^2_N and E tr Sigma_post = E[1 / (1/lambda + s chi^2_N / sigma^2)].
    Quadrature of that integral against the chi-square density is a route independent of the Monte
    Carlo over the Gram matrix behind ore_risk_per_coordinate (5 of its standard errors)."""
    from scipy import integrate, stats

    from lowrank_icl.numerics.inverse.risk import ore_risk
    m = _model(11, r=1, Lambda=[1.7], sigma=sigma, N=N)
    s = float(m.U[:, 0] @ m.Sigma_x @ m.U[:, 0])
    lam = float(m.Lambda[0])
    exact, err = integrate.quad(lambda x: stats.chi2.pdf(x, N) / (1 / lam + s * x / sigma**2), 0, np.inf,
                                epsabs=0, epsrel=1e-12)
    sem = ore_risk(m.Sigma_x, m.U, m.Lambda, m.sigma, m.N, n_samples=20_000, seed=4).sem
    assert abs(ore_risk_per_coordinate(m, n_samples=20_000, seed=4) - exact / m.d) < 5 * sem / m.d
