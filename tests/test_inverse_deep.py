"""Population-optimal K-layer LT in the prior's polynomial class (theory/inverse/deep.py)."""
import numpy as np
import pytest

from lowrank_icl.numerics.inverse import InverseModel, InverseParams, lt1_risk_limit, lt_forward, mse_per_coordinate
from lowrank_icl.theory.inverse import (deep_lt_limits, deep_lt_risk, marchenko_pastur_nodes, ore_risk_mp_isotropic,
                                        polynomial_lt_risk)

GAMMA, N, LAM = 0.2, 50, 1.0


def test_marchenko_pastur_nodes_reproduce_known_moments():
    x, w = marchenko_pastur_nodes(GAMMA)
    assert np.sum(w * x) == pytest.approx(1.0, rel=1e-13)
    assert np.sum(w * x * x) == pytest.approx(1.0 + GAMMA, rel=1e-13)
    assert np.sum(w / x) == pytest.approx(1.0 / (1.0 - GAMMA), rel=1e-12)


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.3])
def test_one_layer_and_infinite_depth_ends(sigma):
    """K = 1 is the optimal one-layer LT (high_dim limit at Sigma_x = I); K = 16 is the Bayes (ORE) risk of the
    Marchenko-Pastur theory; the misfit optimum tends to s/(1 - gamma) (least squares on span U)."""
    x, w = marchenko_pastur_nodes(GAMMA)
    s = sigma ** 2 / N
    assert deep_lt_risk(1, LAM, s, x, w) == pytest.approx(lt1_risk_limit(np.ones(3), GAMMA, 1.0, s, LAM), rel=1e-12)
    ore = float(ore_risk_mp_isotropic(sigma, GAMMA, LAM, N))
    assert deep_lt_limits(LAM, s, x, w)["supervised"] == pytest.approx(ore, rel=1e-12)
    assert deep_lt_risk(16, LAM, s, x, w) == pytest.approx(ore, rel=1e-5)     # geometric in K; 2e-6 at K = 16
    assert deep_lt_risk(16, LAM, s, x, w, "misfit") == pytest.approx(s / (1 - GAMMA), rel=1e-5)


def test_risk_decreases_with_depth_and_the_supervised_optimum_is_optimal():
    x, w = marchenko_pastur_nodes(GAMMA)
    s = 0.1 ** 2 / N
    sup = [deep_lt_risk(K, LAM, s, x, w) for K in (1, 2, 4, 8)]
    mis = [deep_lt_risk(K, LAM, s, x, w, "misfit") for K in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(sup, sup[1:]))
    assert all(a <= b for a, b in zip(sup, mis))


def test_spectral_form_matches_a_simulated_polynomial_lt(rng):
    """Gamma_k = alpha_k U U^T, b = w0, Sigma_x = I: simulated test MSE vs E[lambda p^2 + s (1 - p)^2 / x] over
    sampled eigenvalues of A^T A / N (an independent Monte Carlo of the same law); 5 combined SE."""
    d, r, n_ctx, sigma = 12, 2, 20000, 0.3
    Nc = 10
    model = InverseModel.draw(InverseParams(d=d, N=Nc, r=r, sigma=sigma), rng)
    alphas = np.array([0.6, 0.9])
    Gammas = np.stack([a * model.U @ model.U.T for a in alphas])
    c = model.sample(n_ctx, rng)
    e = mse_per_coordinate(lt_forward(model.w0, Gammas, c.X, c.Y)[0][-1], c.W)
    A = rng.standard_normal((n_ctx, Nc, r))
    eig = np.linalg.eigvalsh(np.einsum("nir,nis->nrs", A, A) / Nc).ravel()
    per = [polynomial_lt_risk(alphas, 1.0, sigma ** 2 / Nc, chunk, np.full(chunk.size, 1.0 / chunk.size))
           for chunk in np.array_split(eig, 20)]
    theory = np.mean(per) * r / d
    se = np.hypot(e.std(ddof=1) / np.sqrt(e.size), np.std(per, ddof=1) / np.sqrt(len(per)) * r / d)
    assert abs(e.mean() - theory) < 5 * se
