"""High-dimensional theory of the optimal one-layer LT (theory/inverse/high_dim.py, numerics/inverse/high_dim.py)."""
import numpy as np
import pytest

from lowrank_icl.numerics.inverse import (compressed_stieltjes, haar_orthogonal, input_spectrum, lt1_risk_deterministic,
                                          lt1_risk_isotropic, lt1_risk_limit)
from lowrank_icl.theory.inverse import lt1_optimal, lt1_risk_reduced


def _compressed(s, r, rng):
    U = haar_orthogonal(s.size, r, rng)
    return (U.T * s) @ U


def test_reduction_to_the_compressed_covariance_equals_the_d_by_d_solve(rng):
    """Woodbury route (r x r) against the d x d normal-equation route, non-isotropic Lambda and Sigma_x."""
    d, r, N, sigma = 40, 7, 20, 0.3
    Q = haar_orthogonal(d, d, rng)
    Sigma_x = (Q * input_spectrum(d, 10.0)) @ Q.T
    U = haar_orthogonal(d, r, rng)
    lam = rng.uniform(0.5, 2.0, r)
    exact = lt1_optimal(Sigma_x, (U * lam) @ U.T, np.zeros(d), sigma, N)[2]
    assert lt1_risk_reduced(U.T @ Sigma_x @ U, lam, sigma, N) == pytest.approx(exact, rel=1e-12)


def test_isotropic_inputs_make_the_equivalent_exact():
    """Sigma_x = I: B = I for every U, so the deterministic equivalent is the closed form, and the limit
    is lambda gamma / (1 + gamma) per task dimension (noise per sample -> 0)."""
    for r, N, sigma, lam in ((10, 50, 0.1, 1.0), (3, 7, 1.3, 0.4)):
        assert lt1_risk_deterministic(np.ones(100), r, N, sigma, lam) == pytest.approx(
            float(lt1_risk_isotropic(sigma, r, N, lam)), rel=1e-13)
    assert lt1_risk_limit(np.ones(10), 0.2, 2.0, 0.0, 1.5) == pytest.approx(1.5 * 0.2 / 1.2, rel=1e-14)


def test_free_compression_stieltjes_matches_haar_monte_carlo(rng):
    s = input_spectrum(400, 10.0)
    for t in (0.05, 0.5, 3.0):
        draws = np.array([np.mean(1.0 / (np.linalg.eigvalsh(_compressed(s, 80, rng)) + t)) for _ in range(20)])
        m, residual = compressed_stieltjes(s, 0.2, t)
        assert residual < 1e-12
        assert abs(draws.mean() - m) < 4 * draws.std(ddof=1) / np.sqrt(draws.size) + 1e-3 / 80 ** 2
    assert compressed_stieltjes(s, 1.0, 0.5)[0] == pytest.approx(np.mean(1.0 / (s + 0.5)), rel=1e-14)


def test_deterministic_equivalent_converges_to_the_exact_risk_at_rate_one_over_N(rng):
    """E_U of the exact finite-N risk (400 Haar draws per size) minus the equivalent, at r/N = 0.2,
    d/N = 2, c_x = 10, sigma = 0.3: the difference decays like 1/N (fitted log-log slope in
    [-1.4, -0.6]) and N times it stays below 0.05 per task dimension; the equivalent in turn tends
    to the N -> infinity limit as 1/N: N (DE - limit) settles to a constant, its increments shrinking
    by about half per doubling of N (the next order, 1/N^2)."""
    Ns = np.array([20, 40, 80, 160])
    diffs, gaps = [], []
    limit = lt1_risk_limit(input_spectrum(20000, 10.0), 0.2, 2.0)
    for N in Ns:
        d, r = 2 * N, N // 5
        s = input_spectrum(d, 10.0)
        exact = np.array([lt1_risk_reduced(_compressed(s, r, rng), np.ones(r), 0.3, N) for _ in range(400)]) / r
        de = lt1_risk_deterministic(s, r, N, 0.3) / r
        sem = exact.std(ddof=1) / np.sqrt(exact.size)
        assert exact.mean() - de > 3 * sem           # a real, resolved finite-N difference ...
        diffs.append(exact.mean() - de)
        gaps.append(de - limit)
    diffs, gaps = np.array(diffs), np.array(gaps)
    slope = np.polyfit(np.log(Ns[1:]), np.log(diffs[1:]), 1)[0]
    assert -1.4 < slope < -0.6                        # ... that vanishes like 1/N
    assert np.all(Ns * diffs < 0.05)
    scaled = Ns * gaps
    increments = np.abs(np.diff(scaled))
    assert np.all(gaps > 0) and np.all(increments[1:] < 0.65 * increments[:-1])
