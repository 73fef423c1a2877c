"""The kappa = rho transition: phase_boundary properties, scaling, alpha -> infinity limits, prediction law."""
import numpy as np
import pytest

import inspect

from lowrank_icl.numerics import (fit_power_law, optimal_context_length, optimal_token_allocation, phase_boundary,
                                  prediction_law, solve)

RHO, TAU, SIGMA = 0.3, 2.0, 0.1


@pytest.fixture(scope="module")
def boundary():
    return phase_boundary(alpha=[1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8], tau=TAU, rho=RHO, sigma=SIGMA)


def test_kappa_star_tends_to_rho_monotonically(boundary):
    assert boundary.converged.all()
    gap = np.abs(boundary.kappa_star - RHO)
    assert np.all(np.diff(gap) < 0)
    assert gap[-1] < 1e-7  # |kappa* - rho| ~ 1/alpha (next test): 1e-8 scale at alpha = 1e8


def test_width_shrinks_like_inverse_sqrt_alpha(boundary):
    assert np.all(np.diff(boundary.width) < 0)
    # square-Wishart hard edge at kappa = rho: e_IDG(rho) ~ alpha^(1/2), width ~ alpha^(-1/2)
    fit = fit_power_law(boundary.alpha[3:], boundary.width[3:])
    assert fit.ci_low <= 0.5 <= fit.ci_high
    e_fit = fit_power_law(boundary.alpha[3:], 1 / boundary.error_at_star[3:])
    assert e_fit.ci_low <= 0.5 <= e_fit.ci_high


def test_steepest_point_is_an_inflection_of_log_error(boundary):
    # independent check of the root: the slope at kappa* is below the slope at both ends of the width
    for a, k, lo, hi in zip(boundary.alpha, boundary.kappa_star, boundary.kappa_lo, boundary.kappa_hi):
        x = np.log(np.array([lo, k, hi]))
        h = 1e-4 * (x[2] - x[0])
        f = lambda xx: np.log(solve(a, TAU, np.exp(xx), RHO, SIGMA, 0.0).errors().idg)  # noqa: E731
        s = (f(x + h) - f(x - h)) / (2 * h)
        assert s[1] < s[0] and s[1] < s[2]
        assert s[0] == pytest.approx(s[1] / 2, rel=1e-4) and s[2] == pytest.approx(s[1] / 2, rel=1e-4)


@pytest.mark.parametrize("kappa", [0.15, 0.5])
def test_alpha_infinity_limits(kappa):
    # docs/derivations.md (lam = 0, tau > 1): leading behaviour as alpha -> infinity; corrections are
    # O(alpha^-1/2) at worst (the kappa = rho edge is excluded), so at alpha = 1e10 a 1e-4 match
    alpha, tau, sigma, rho = 1e10, 2.6, 0.3, RHO
    res = solve(alpha, tau, kappa, rho, sigma, 0.0)
    mn = min(kappa, rho)
    assert res.m == pytest.approx(1, rel=1e-4)
    assert res.m_bar == pytest.approx(mn, rel=1e-4)
    assert res.m0 == pytest.approx(mn / rho, rel=1e-4)
    # q_hat from its published definition (tau/kappa)/Delta, Delta = 1 + chi + s2 chi_bar/alpha, with the
    # returned chi, chi_bar (an independent route: the solver sets q_hat = (tau - 1)/kappa directly)
    delta = 1 + res.chi + (1 + sigma**2) * res.chi_bar / alpha
    assert (tau / kappa) / delta == pytest.approx((tau - 1) / kappa, rel=1e-12)
    assert res.chi == pytest.approx(mn / (tau - 1), rel=1e-4)
    assert res.q == pytest.approx(1 + sigma**2 * mn / (tau - 1), rel=1e-4)
    assert res.q_bar / alpha == pytest.approx(sigma**2 / (1 + sigma**2) * (1 - mn) / (tau - 1), rel=1e-4)
    if rho < kappa:
        assert res.q0 == pytest.approx(1 + sigma**2 * kappa * rho / ((tau - 1) * (kappa - rho)), rel=1e-4)
    else:
        assert res.q0 / alpha == pytest.approx((rho - kappa) * sigma**2 / (rho * (tau - 1) * (1 + sigma**2)), rel=1e-4)


def test_published_check_point():
    # the published alpha -> infinity check point: alpha = 1.8e6, lam = 0, tau = 2.6, kappa = 0.4, sigma = 0.01 (rho < kappa and rho > kappa)
    for rho in (0.2, 0.6):
        res = solve(1.8e6, 2.6, 0.4, rho, 0.01, 0.0)
        assert res.converged
        assert res.m0 == pytest.approx(min(0.4, rho) / rho, rel=1e-3)


@pytest.mark.parametrize("protocol", ["tm", "idg", "odg"])
def test_prediction_law_reproduces_errors(protocol):
    res = solve(alpha=[4.0, 10.0], tau=1.2, kappa=3.0, rho=0.5, sigma=0.9, lam=0.1)
    law = prediction_law(res, protocol, alpha_test=[2.0, 20.0], sigma_test=0.3)
    err = getattr(res.errors(alpha_test=[2.0, 20.0], sigma_test=0.3), protocol)
    assert np.allclose(law.error, err, rtol=1e-13)
    assert np.all(np.abs(law.correlation) <= 1)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="tau must be > 1 when lam = 0"):
        phase_boundary(alpha=10.0, tau=0.5, rho=RHO, sigma=SIGMA)
    with pytest.raises(ValueError, match="rho must be > 0 and <= 1"):
        phase_boundary(alpha=10.0, tau=2.0, rho=1.5, sigma=SIGMA)
    with pytest.raises(ValueError, match="protocol must be one of"):
        phase_boundary(alpha=10.0, tau=2.0, rho=RHO, sigma=SIGMA, protocol="xyz")
    with pytest.raises(TypeError):
        phase_boundary(10.0, RHO, 2.0)  # keyword-only: a positional order would invite mistakes


def test_prediction_law_matches_simulation_at_small_dim():
    # trained Gamma_hat at D = 12, 24, 48 (6 pretraining draws each), IDG test prompts: second moments
    # and excess kurtosis extrapolated in D agree with the Gaussian theory law by the 3-SE rule
    from lowrank_icl.numerics import ForwardParams
    from lowrank_icl.validation.forward.crossover_checks import check_prediction_law
    p = ForwardParams(alpha=4.0, tau=1.2, kappa=3.0, rho=0.5, sigma=0.9, lam=0.1)
    chk = check_prediction_law((12, 24, 48), p, range(6), "idg", 3000)
    for name, theory, e_inf, se, z, passed in chk.rows:
        assert passed, (name, theory, e_inf, se)
    # at D = 48 the scale-mixture kurtosis (~0.28) is below what KS resolves with 18000 samples
    assert chk.ks_pvalue > 1e-3


def test_optimal_context_interior_below_rho_and_infinite_above():
    below = optimal_context_length(tau=2.0, kappa=0.1, rho=0.3, sigma=0.3)
    assert below.converged and not below.at_boundary
    # an interior minimum: the error rises on both sides (1% steps in alpha)
    e = [solve(below.alpha * f, 2.0, 0.1, 0.3, 0.3, 0.0).errors().idg for f in (0.99, 1.0, 1.01)]
    assert e[1] <= e[0] and e[1] <= e[2]
    assert e[1] == pytest.approx(below.error, rel=1e-12)
    above = optimal_context_length(tau=2.0, kappa=0.5, rho=0.3, sigma=0.3)
    assert above.at_boundary  # kappa > rho: more context always helps


def test_token_allocation_is_a_minimum_on_its_side_of_the_threshold():
    opt = optimal_token_allocation(30.0, kappa=1.0, rho=0.3, sigma=0.3)
    assert opt.converged and opt.tau * opt.alpha == pytest.approx(30.0, rel=1e-12)
    e = [solve(opt.alpha * f, 30.0 / (opt.alpha * f), 1.0, 0.3, 0.3, 0.0).errors().idg for f in (0.99, 1.01)]
    assert opt.error <= min(e)


def test_simulated_crossover_location_agrees_with_theory():
    # D = 32, 5 pretraining draws: the steepest point of log e_IDG vs log kappa on the simulated
    # grid agrees with the theory's (same estimator at the same integer ratios) within 3 bootstrap SE
    from lowrank_icl.validation.forward.crossover_checks import check_crossover
    n_tasks = np.unique(np.round(np.geomspace(6, 40, 9)).astype(int))
    chk = check_crossover(32, 8.0, 2.0, 0.5, 0.3, n_tasks, range(5))
    assert chk.passed, (chk.kappa_star_sim, chk.kappa_star_se, chk.kappa_star_theory_grid)
    assert chk.kappa_star_se < 0.2  # the location is resolved, not just loosely consistent


def test_scalar_alpha_gives_scalar_fields_and_short_repr():
    pb = phase_boundary(alpha=1e3, tau=TAU, rho=RHO, sigma=SIGMA)
    assert np.ndim(pb.kappa_star) == 0 and np.ndim(pb.width) == 0 and isinstance(bool(pb.converged), bool)
    assert pb.reason == "" and repr(pb).count("\n") <= 3
    assert pb.to_dict()["kappa_star"] == float(pb.kappa_star)


def test_sigma_default_agrees_with_the_cli():
    # one default, 0.1 (the CLI's); the phase command reads it from this signature
    from lowrank_icl.validation.cli import phase as phase_cli
    assert inspect.signature(phase_boundary).parameters["sigma"].default == 0.1
    assert phase_cli._api_default("sigma") == 0.1 and phase_cli._api_default("lam") == 0.0


def test_callers_never_consume_unconverged_solutions(monkeypatch):
    # make every solve report converged=False: the tools must say so, not return numbers
    from lowrank_icl.numerics.forward import crossover, results

    real = crossover.solve

    def failing(*args, **kwargs):
        res = real(*args, **kwargs)
        shape = np.shape(res.converged)
        object.__setattr__(res, "converged", np.zeros(shape, bool)[()])
        object.__setattr__(res, "reason", np.full(shape, "forced failure", dtype=object)[()])
        return res

    monkeypatch.setattr(crossover, "solve", failing)
    pb = phase_boundary(alpha=[1e2, 1e3], tau=TAU, rho=RHO, sigma=SIGMA)
    assert not np.any(pb.converged) and np.all(np.isnan(pb.kappa_star)) and "forced failure" in pb.reason[0]
    with pytest.raises(ValueError, match="phase_boundary failed"):
        crossover.crossover_scaling(alpha=[1e2, 1e3, 1e4], tau=TAU, rho=RHO, sigma=SIGMA)
    for opt in (optimal_context_length(tau=2.0, kappa=0.1, rho=0.3, sigma=0.3),
                optimal_token_allocation(30.0, kappa=1.0, rho=0.3, sigma=0.3)):
        assert not opt.converged and np.isnan(opt.error) and "forced failure" in opt.reason
    res = failing(4.0, 1.2, 3.0, 0.5, 0.9, 0.1)
    assert isinstance(res, results.ForwardSolution)
    with pytest.raises(ValueError, match="converged solution"):
        prediction_law(res, "idg")


def test_design_tools_accept_kappa_inf():
    # kappa = inf: every prompt has a fresh task, so kappa > rho and more context always helps
    opt = optimal_context_length(tau=2.0, kappa=np.inf, rho=0.3, sigma=0.3)
    assert opt.converged and opt.at_boundary
    tok = optimal_token_allocation(30.0, kappa=np.inf, rho=0.3, sigma=0.3)
    assert tok.converged and tok.alpha * tok.tau == pytest.approx(30.0, rel=1e-12)
