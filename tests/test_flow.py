"""Gradient flow and gradient descent of the reduced model: the exact finite-D curves and the theory."""
import numpy as np
import pytest

from lowrank_icl.theory import SecondMoment, order_summaries
from lowrank_icl.validation.forward.flow import (curve_summaries, descent_gamma, explicit_descent, flow_gamma,
                                                 flow_weights, largest_stable_step, simulate_flow, spectral_basis)
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import sample_pretraining, sizes


@pytest.fixture(scope="module")
def small_data():
    s = sizes(8, 2, 2, 0.8, 0.5)
    return s, sample_pretraining(s, 0.3, 0)


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("method", ["eigh", "lanczos"])
def test_flow_at_infinite_time_is_the_ridge_solution(small_data, method):
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method=method, tol=1e-13)
    ridge = fit_ridge(d.x, d.h, d.y, 0.05, s.n_tasks, method="primal")
    assert basis.converged
    assert _rel(flow_gamma(basis, [np.inf])[0], ridge.gamma) < 1e-10


def test_flow_at_lam_zero_below_interpolation_is_the_minimum_norm_interpolator():
    s = sizes(6, 1.5, 0.6, 1.0, 0.5)
    d = sample_pretraining(s, 0.2, 3)
    basis = spectral_basis(d, 0.0, s.n_tasks, method="eigh")
    ridge = fit_ridge(d.x, d.h, d.y, 0.0, s.n_tasks, method="dual")
    assert _rel(flow_gamma(basis, [np.inf])[0], ridge.gamma) < 1e-9
    # at finite time the flow stays in the row space of the design (no null-space component)
    g = flow_gamma(basis, [3.0])[0].ravel()
    from lowrank_icl.validation.forward.ridge import design_matrix
    Phi = design_matrix(d.x, d.h)
    row_space = Phi.T @ np.linalg.lstsq(Phi.T, g, rcond=None)[0]
    assert np.abs(row_space - g).max() < 1e-10 * np.abs(g).max()


def test_lanczos_equals_eigh_at_every_time(small_data):
    s, d = small_data
    times = [0.01, 0.3, 2.0, 30.0]
    a = flow_gamma(spectral_basis(d, 0.05, s.n_tasks, method="eigh"), times)
    b = flow_gamma(spectral_basis(d, 0.05, s.n_tasks, method="lanczos", tol=1e-13), times)
    for k in range(len(times)):
        assert _rel(b[k], a[k]) < 1e-9


def test_spectral_descent_equals_explicit_descent(small_data):
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method="eigh")
    eta = 0.9 * largest_stable_step(basis)   # near the stability limit: the (1 - eta theta)^k < 0 modes matter
    ex = explicit_descent(d, 0.05, s.n_tasks, eta, 40, record=(1, 7))
    for k in (1, 7, 40):
        assert _rel(descent_gamma(basis, [k], eta)[0], ex[k]) < 1e-11


def test_flow_against_explicit_descent_with_tiny_steps(small_data):
    """GD approaches the flow at rate O(eta): halving eta halves the gap, which is small."""
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method="eigh")
    target = flow_gamma(basis, [1.0])[0]
    gaps = []
    for eta in (4e-3, 2e-3):
        k = int(round(1.0 / eta))
        gaps.append(_rel(explicit_descent(d, 0.05, s.n_tasks, eta, k)[k], target))
    assert gaps[0] < 1e-3
    assert 1.9 < gaps[0] / gaps[1] < 2.1


def test_curve_summaries_equal_order_summaries_of_each_gamma(small_data):
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method="lanczos", tol=1e-12)
    times = np.array([0.1, 1.0, 10.0])
    summ = curve_summaries(basis, flow_weights(basis.theta, times), d.pool, d.subspace)
    for k, G in enumerate(flow_gamma(basis, times)):
        pool = order_summaries(G, SecondMoment.pool(d.pool))
        sub = order_summaries(G, SecondMoment.subspace(d.subspace))
        iso = order_summaries(G, None)
        for mine, ref in ((summ["q"][k], pool["q"]), (summ["m"][k], pool["m"]), (summ["q0"][k], sub["q"]),
                          (summ["m0"][k], sub["m"]), (summ["q_bar"][k], iso["q"]), (summ["m_bar"][k], iso["m"])):
            assert abs(mine - ref) <= 1e-12 * max(1.0, abs(ref))


def test_simulate_flow_descent_refuses_an_unstable_step():
    with pytest.raises(ValueError, match="largest stable step"):
        simulate_flow(dim=6, alpha=2, tau=2, kappa=1, rho=0.5, sigma=0.3, lam=0.1, steps=[10], lr=10.0, seeds=1)
    with pytest.raises(ValueError, match="time"):
        simulate_flow(dim=6, alpha=2, tau=2, kappa=1, rho=0.5, sigma=0.3, lam=0.1, time=[-1.0], seeds=1)


def test_simulate_flow_starts_at_the_null_predictor_and_ends_at_simulate():
    from lowrank_icl.validation.forward.simulate import simulate
    kw = dict(dim=8, alpha=2, tau=2, kappa=0.8, rho=0.5, sigma=0.3, lam=0.05, seeds=range(3))
    fl = simulate_flow(**kw, time=[0.0, np.inf])
    ref = simulate(**kw, tol=1e-12)
    err, err_ref = fl.errors(), ref.errors()
    for name in ("tm", "idg", "odg"):
        e = np.asarray(getattr(err, "get")(name).values)
        # Gamma(0) = 0: e = sigma^2 + t_C exactly
        t0 = np.asarray(fl.t_tm.values) if name == "tm" else 1.0
        assert np.allclose(e[:, 0], 0.3**2 + t0, rtol=1e-14)
        assert np.allclose(e[:, 1], np.asarray(getattr(err_ref, name).values), rtol=1e-8)
