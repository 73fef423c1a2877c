"""Bayes baselines: dMMSE and GMMSE estimators, their errors, the GMMSE large-D theory, and the CLI."""
import json
import subprocess
import sys

import mpmath
import numpy as np
import pytest

from lowrank_icl.theory import SecondMoment
from lowrank_icl.theory.forward.bayes import derive_eigen_decomposition, gmmse_idg_closed_form, gmmse_limit_errors
from lowrank_icl.validation.forward import bayes
from lowrank_icl.validation.forward.sampling import haar_subspace, task_pool
from lowrank_icl.validation.stats import extrapolate


def _prompts(rng, tasks, L, sigma):
    return bayes.draw_contexts(tasks, L, sigma, rng)


def test_dmmse_small_noise_picks_the_true_pool_task(rng):
    D, L, M0 = 8, 6, 30
    pool = task_pool(haar_subspace(D, 4, rng), M0, rng)
    idx = rng.integers(M0, size=20)
    for sigma in (1e-3, 1e-8, 0.0):
        X, y = _prompts(rng, pool[idx], L, sigma)
        w_hat = bayes.dmmse_estimate(X, y, pool, sigma)
        assert np.all(np.isfinite(w_hat))
        np.testing.assert_allclose(w_hat, pool[idx], rtol=0, atol=1e-9 * np.abs(pool).max())


def test_dmmse_weights_agree_with_50_digit_bayes_rule(rng):
    # at sigma = 0.05 the unshifted exp(-||r||^2 / 2 sigma^2) underflows float64; mpmath does not
    D, L, M0, sigma = 5, 4, 12, 0.05
    pool = task_pool(haar_subspace(D, D, rng), M0, rng)
    X, y = _prompts(rng, rng.standard_normal((3, D)), L, sigma)
    got = bayes.dmmse_estimate(X, y, pool, sigma)
    with mpmath.workdps(50):
        for n in range(3):
            weights = [mpmath.exp(-mpmath.mpf(float(np.sum((y[n] - X[n] @ w) ** 2))) / (2 * mpmath.mpf(sigma) ** 2))
                       for w in pool]
            total = mpmath.fsum(weights)
            want = [float(mpmath.fsum(wt * mpmath.mpf(float(w[j])) for wt, w in zip(weights, pool)) / total)
                    for j in range(D)]
            np.testing.assert_allclose(got[n], want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("L", [3, 6, 12])
def test_gmmse_woodbury_route_equals_gaussian_conditioning(rng, L):
    D, r, sigma = 7, 5, 0.4
    A = haar_subspace(D, r, rng)
    prior = SecondMoment.subspace(A)
    X, y = _prompts(rng, task_pool(A, 4, rng), L, sigma)
    task_side = bayes.gmmse_estimate(X, y, prior, sigma, route="task")
    # Gaussian conditioning on the joint law of (w, y): E[w|y] = Cov(w, y) Cov(y)^{-1} y, built from C
    C = prior.matrix()
    direct = np.stack([C @ Xn.T @ np.linalg.solve(Xn @ C @ Xn.T + sigma**2 * np.eye(L), yn) for Xn, yn in zip(X, y)])
    np.testing.assert_allclose(task_side, direct, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bayes.gmmse_estimate(X, y, prior, sigma, route="context"), direct, rtol=1e-10, atol=1e-12)
    # a covariance given as a matrix (factored by eigh) gives the same posterior mean
    np.testing.assert_allclose(bayes.gmmse_estimate(X, y, C, sigma), direct, rtol=1e-9, atol=1e-11)


def test_gmmse_noiseless_limits(rng):
    D, r = 8, 4
    A = haar_subspace(D, r, rng)
    prior = SecondMoment.subspace(A)
    w = task_pool(A, 5, rng)
    # L >= r: the subspace task is identified exactly
    X, y = _prompts(rng, w, 6, 0.0)
    np.testing.assert_allclose(bayes.gmmse_estimate(X, y, prior, 0.0), w, atol=1e-10)
    # L < r: the posterior mean interpolates the context and equals the small-noise limit
    X, y = _prompts(rng, w, 3, 0.0)
    w0 = bayes.gmmse_estimate(X, y, prior, 0.0)
    np.testing.assert_allclose(np.einsum("nld,nd->nl", X, w0), y, atol=1e-10)
    np.testing.assert_allclose(w0, bayes.gmmse_estimate(X, y, prior, 1e-7), atol=1e-8)


def test_dmmse_tends_to_gmmse_as_the_pool_grows(rng):
    """Gaussian pool of M0 prior draws: dMMSE -> GMMSE. Paired IDG errors on the same prompts; GMMSE is
    Bayes-optimal for IDG, so the paired excess is >= 0 up to noise and must fall within 3 SE of 0."""
    D, L, sigma, n = 4, 8, 0.5, 1500
    A = haar_subspace(D, D, rng)
    w = task_pool(A, n, rng)
    X, y = _prompts(rng, w, L, sigma)
    g = bayes.gmmse_estimate(X, y, SecondMoment.subspace(A), sigma)
    e_g = np.sum((w - g) ** 2, axis=1) / D
    excess = {}
    for M0 in (20, 40000):
        d = bayes.dmmse_estimate(X, y, task_pool(A, M0, rng), sigma)
        diff = np.sum((w - d) ** 2, axis=1) / D - e_g
        excess[M0] = (diff.mean(), diff.std(ddof=1) / np.sqrt(n))
    small, large = excess[20], excess[40000]
    assert small[0] > 5 * small[1]                 # a small pool is measurably worse than GMMSE
    assert abs(large[0]) < 3 * large[1] + 1e-3 * e_g.mean()


def test_gmmse_exact_per_context_errors_match_sampled_tasks(rng):
    D, L, r, sigma = 10, 12, 5, 0.3
    A = haar_subspace(D, r, rng)
    prior = SecondMoment.subspace(A)
    n = 3000
    for law, tasks in (("idg", task_pool(A, n, rng)), ("odg", rng.standard_normal((n, D)))):
        X, y = _prompts(rng, tasks, L, sigma)
        sampled = sigma**2 + np.sum((tasks - bayes.gmmse_estimate(X, y, prior, sigma)) ** 2, axis=1) / D
        exact = bayes.gmmse_context_errors(X, prior, sigma, prior if law == "idg" else None)
        diff = sampled - exact                       # same contexts: zero-mean given X
        assert abs(diff.mean()) < 4 * diff.std(ddof=1) / np.sqrt(n)


def test_gmmse_large_d_theory_by_extrapolation():
    """Exact per-context IDG/ODG errors at D = 24, 48, 96, extrapolated in 1/D, vs the MP limit (3 SE)."""
    alpha, rho, sigma = 1.5, 0.5, 0.4
    theory = gmmse_limit_errors(alpha, rho, sigma)
    dims, vals = [24, 48, 96], {"idg": [], "odg": []}
    for D in dims:
        rng = np.random.default_rng(D)
        A = haar_subspace(D, int(rho * D), rng)
        X = rng.standard_normal((150, int(alpha * D), D)) / np.sqrt(D)
        prior = SecondMoment.subspace(A)
        vals["idg"].append(bayes.gmmse_context_errors(X, prior, sigma, prior))
        vals["odg"].append(bayes.gmmse_context_errors(X, prior, sigma, None))
    for k in ("idg", "odg"):
        means = [v.mean() for v in vals[k]]
        sems = [v.std(ddof=1) / np.sqrt(v.size) for v in vals[k]]
        ex = extrapolate(dims, means, sems)
        assert abs(ex.e_inf - theory[k]) <= 3 * ex.se, (k, ex, theory[k])


def test_gmmse_theory_routes_and_limits():
    per_eigen, c1, c2, sym = derive_eigen_decomposition()
    s, mu, al, sa, se = (sym[k] for k in ("s", "mu", "alpha", "s_a", "s_eta"))
    assert float(per_eigen.subs({s: 2, mu: 0.3, al: 1.5, sa: 0.7, se: 0.2})) == pytest.approx(
        (0.7 * (1.5 * 0.3) ** 2 + 0.2 * 1.5 * 2) / (1.5 * 2 + 1.5 * 0.3) ** 2, rel=1e-14)
    for a, r, s_ in [(2.0, 0.5, 0.3), (0.4, 0.8, 0.1), (3.0, 1.0, 1.0)]:
        assert gmmse_limit_errors(a, r, s_)["idg"] == pytest.approx(float(gmmse_idg_closed_form(a, r, s_)), rel=1e-12)
    # rho = 1: ODG and IDG are the same law
    e = gmmse_limit_errors(2.0, 1.0, 0.5)
    assert e["odg"] == pytest.approx(e["idg"], rel=1e-12) and e["tm"] == e["idg"]
    # the sigma = 0 closed forms are the sigma -> 0 limit of the general formula (both sides of alpha = rho)
    for a in (0.3, 1.2):
        zero, small = gmmse_limit_errors(a, 0.6, 0.0), gmmse_limit_errors(a, 0.6, 1e-5)
        for k in ("idg", "odg"):
            assert small[k] == pytest.approx(zero[k], abs=1e-6)


def test_bayes_errors_kappa_inf_and_reproducibility():
    kw = dict(alpha=2.0, rho=0.5, sigma=0.3, seeds=[0, 1, 2], prompts=200)
    inf = bayes.bayes_errors(12, kappa=float("inf"), estimator="gmmse", **kw)
    assert inf.parameters["kappa"] == "inf" and inf.sizes["M0"] is None
    assert abs(inf.tm.mean - inf.idg.mean) < 4 * np.hypot(inf.tm.sem, inf.idg.sem)
    a = bayes.bayes_errors(12, kappa=1.0, estimator="dmmse", **kw)
    assert a.to_dict() | {"seconds": 0} == bayes.bayes_errors(12, kappa=1.0, estimator="dmmse", **kw).to_dict() | {"seconds": 0}
    with pytest.raises(ValueError, match="gmmse"):
        bayes.bayes_errors(12, kappa="inf", estimator="dmmse", **kw)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli", "bayes", *args],
                          capture_output=True, text=True)


def test_cli_contract_and_bad_inputs(capsys):
    from lowrank_icl.validation.cli.main import main
    out = _cli("--estimator", "gmmse", "--dim", "8", "--alpha", "2", "--kappa", "inf", "--rho", "0.5",
               "--sigma", "0.3", "--seeds", "0-1", "--prompts", "50", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for k in ("tm", "idg", "odg"):
        assert set(data["errors"][k]) >= {"mean", "sem"} and np.isfinite(data["errors"][k]["mean"])
    assert data["parameters"]["kappa"] == "inf" and data["parameters"]["estimator"] == "gmmse"
    assert "version" in data
    assert main(["bayes", "--estimator", "dmmse", "--dim", "8", "--alpha", "2", "--kappa", "1", "--seeds", "3",
                 "--prompts", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["errors"]["tm"]["sem"] is None     # NaN -> null
    for bad in (["--kappa", "inf"], ["--kappa", "-1"], ["--kappa", "x"], ["--kappa", "1", "--sigma", "-1"],
                ["--kappa", "1", "--prompts", "0"], ["--kappa", "1", "--seeds", "2,2"]):
        assert main(["bayes", "--estimator", "dmmse", "--dim", "8", "--alpha", "2", *bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("lowrank-icl bayes: error:"), (bad, err)


def test_prediction_distances_vanish_for_the_baseline_itself():
    kw = dict(alpha=1.5, kappa=1.0, rho=0.5, sigma=0.4, prompts=60)
    dim, seed = 8, 3
    from lowrank_icl.validation.forward.sampling import Sizes, pretraining_pool
    A, pool = pretraining_pool(Sizes.from_ratios(dim, 1.0, 1.0, 1.0, 0.5), seed)

    def as_predictor(name):
        return lambda X, y, xq: np.einsum("nd,nd->n", xq, bayes.estimate_for(name, X, y, A, pool, 0.4))
    d_d = bayes.prediction_distances(as_predictor("dmmse"), dim, seed, **kw)
    d_g = bayes.prediction_distances(as_predictor("gmmse"), dim, seed, **kw)
    for q in ("tm", "idg"):
        assert d_d[q]["dmmse"] == 0 and d_g[q]["gmmse"] == 0
        assert d_d[q]["gmmse"] == pytest.approx(d_g[q]["dmmse"], rel=1e-12) and d_d[q]["gmmse"] > 0


from hypothesis import given, strategies as st  # noqa: E402


@given(seed=st.integers(0, 10**6), sigma=st.sampled_from([0.0, 1e-6, 0.05, 0.7, 5.0]),
       L=st.integers(1, 9), M0=st.integers(1, 12))
def test_dmmse_is_a_pool_average_invariant_to_the_pool_order(seed, sigma, L, M0):
    rng = np.random.default_rng(seed)
    D = 4
    pool = rng.standard_normal((M0, D)) * rng.uniform(0.1, 10)
    X, y = bayes.draw_contexts(rng.standard_normal((3, D)), L, 0.3, rng)
    w = bayes.dmmse_estimate(X, y, pool, sigma)
    perm = rng.permutation(M0)
    np.testing.assert_allclose(w, bayes.dmmse_estimate(X, y, pool[perm], sigma), rtol=1e-9, atol=1e-9 * np.abs(pool).max())
    # a convex combination of pool tasks: inside the pool's bounding box
    assert np.all(w <= pool.max(axis=0) + 1e-9 * np.abs(pool).max()) and np.all(w >= pool.min(axis=0) - 1e-9 * np.abs(pool).max())


@given(seed=st.integers(0, 10**6), sigma=st.sampled_from([0.0, 0.01, 0.5, 3.0]), L=st.integers(1, 8),
       k=st.integers(1, 6))
def test_gmmse_depends_on_the_prior_only_through_its_covariance(seed, sigma, L, k):
    rng = np.random.default_rng(seed)
    D = 6
    F = rng.standard_normal((D, k))
    Q = np.linalg.qr(rng.standard_normal((k, k)))[0]
    X, y = bayes.draw_contexts(rng.standard_normal((2, D)), L, 0.2, rng)
    a = bayes.gmmse_estimate(X, y, SecondMoment.from_factor(F), sigma)
    b = bayes.gmmse_estimate(X, y, SecondMoment.from_factor(F @ Q), sigma)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * (1 + np.abs(a).max()))
