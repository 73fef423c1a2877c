"""The ridge solvers (dense primal, dense dual, matrix-free CG, dual CG) agree and solve the
right problem, including lam = 0 on both sides of the interpolation threshold."""
import numpy as np
import pytest

from lowrank_icl.theory.forward.finite_size import SecondMoment, exact_test_error
from lowrank_icl.validation.forward import ridge, sampling


def _data(dim, tau, seed=0, sigma=0.3):
    s = sampling.sizes(dim, alpha=2, tau=tau, kappa=1, rho=0.5)
    return s, sampling.sample_pretraining(s, sigma, seed)


@pytest.mark.parametrize("dim,tau,lam,methods", [
    (8, 2.0, 0.1, ("primal", "dual", "cg", "dual-cg")),
    (8, 0.5, 0.1, ("primal", "dual", "cg", "dual-cg")),
    (8, 0.5, 0.0, ("primal", "dual", "dual-cg")),      # min-norm interpolator
    (8, 2.0, 0.0, ("primal", "dual", "cg")),           # least squares, M > D^2
    (11, 1.3, 1e-3, ("primal", "dual", "cg", "dual-cg")),
])
def test_solvers_agree_in_test_error(dim, tau, lam, methods):
    s, d = _data(dim, tau)
    errs, gammas = {}, {}
    for m in methods:
        fit = ridge.fit_ridge(d.x, d.h, d.y, lam, s.n_tasks, method=m, tol=1e-13)
        assert fit.converged and fit.residual < 1e-9, (m, fit)
        gammas[m] = fit.gamma
        errs[m] = [exact_test_error(fit.gamma, C, s.context_length, 0.3)
                   for C in (SecondMoment.pool(d.pool), SecondMoment.subspace(d.subspace), None)]
    ref = errs[methods[0]]
    for m in methods[1:]:
        np.testing.assert_allclose(errs[m], ref, rtol=0, atol=1e-8)
        np.testing.assert_allclose(gammas[m], gammas[methods[0]], atol=1e-6 * np.abs(gammas[methods[0]]).max())


def test_ridgeless_underdetermined_is_min_norm_interpolator():
    s, d = _data(7, 0.6, seed=3)
    fit = ridge.fit_ridge(d.x, d.h, d.y, 0.0, s.n_tasks)
    assert fit.method == "dual"
    Phi = ridge.design_matrix(d.x, d.h)
    np.testing.assert_allclose(Phi @ fit.gamma.ravel(), d.y, atol=1e-9)          # interpolates
    np.testing.assert_allclose(fit.gamma.ravel(), np.linalg.pinv(Phi) @ d.y, atol=1e-9)  # minimum norm


def test_ridge_optimality_condition_by_direct_gradient(rng):
    # the gradient of sum (y - <G, H>)^2 + lam M0 ||G||^2 vanishes at the CG solution
    s, d = _data(10, 2.0, seed=1)
    lam = 0.05
    fit = ridge.fit_ridge(d.x, d.h, d.y, lam, s.n_tasks, method="cg", tol=1e-12)
    pred = np.einsum("ij,jk,ik->i", d.x, fit.gamma, d.h)
    grad = -2 * d.x.T @ ((d.y - pred)[:, None] * d.h) + 2 * lam * s.n_tasks * fit.gamma
    assert np.linalg.norm(grad) < 1e-9 * np.linalg.norm(2 * d.x.T @ (d.y[:, None] * d.h))


def test_auto_choice_and_input_errors():
    assert ridge.choose_method(100, 16) == "dual"
    assert ridge.choose_method(10_000, 128) == "dual-cg"
    assert ridge.choose_method(1_000, 16) == "primal"
    assert ridge.choose_method(20_000, 64) == "cg"
    s, d = _data(6, 0.5)
    with pytest.raises(ValueError, match="cg"):
        ridge.fit_ridge(d.x, d.h, d.y, 0.0, s.n_tasks, method="cg")
    with pytest.raises(ValueError, match="lam must be >= 0"):
        ridge.fit_ridge(d.x, d.h, d.y, -1.0, s.n_tasks)
    with pytest.raises(ValueError, match="method"):
        ridge.fit_ridge(d.x, d.h, d.y, 0.1, s.n_tasks, method="lu")


@pytest.mark.parametrize("dim,tau,lam", [(8, 2.0, 0.1), (10, 2.0, 0.0), (12, 1.3, 1e-3)])
def test_mixed_precision_cg_reaches_float64_accuracy(dim, tau, lam):
    # float32 applies inside float64 iterative refinement: same answer as the dense primal solve
    s, d = _data(dim, tau)
    ref = ridge.fit_ridge(d.x, d.h, d.y, lam, s.n_tasks, method="primal")
    fit = ridge.fit_ridge(d.x, d.h, d.y, lam, s.n_tasks, method="cg", mixed=True, tol=1e-13)
    assert fit.method == "cg-mixed" and fit.converged and fit.residual < 1e-12
    C = SecondMoment.subspace(d.subspace)
    assert abs(exact_test_error(fit.gamma, C, s.context_length, 0.3)
               - exact_test_error(ref.gamma, C, s.context_length, 0.3)) < 1e-8
