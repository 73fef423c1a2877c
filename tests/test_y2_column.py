"""The label-power (y^2) column of the full-rank paper's model: exact errors, what it learns, the 1/M0 term."""
import numpy as np
import pytest

from lowrank_icl.theory.forward.y2_column import (derive_odg_excess, odg_excess_limit, pool_resolvent_traces,
                                                  population_excess, task_law_moments, y2_column_test_error)
from lowrank_icl.validation.forward.sampling import haar_subspace, pretraining_pool, sizes, task_pool
from lowrank_icl.validation.forward.simulate import simulate
from lowrank_icl.validation.forward.y2_column import simulate_y2_column
from lowrank_icl.validation.stats import extrapolate


@pytest.mark.parametrize("law", ["pool", "isotropic"])
def test_exact_error_with_column_matches_explicit_prompts(rng, law):
    """Moments E[s|w], E[s^2|w], E[s h|w] enter only through the exact formula; explicit contexts check them."""
    D, L, sigma, n = 5, 4, 0.5, 60000
    A = haar_subspace(D, D, rng)
    pool = task_pool(A, 3, rng) + 0.8            # a pool with a large mean: u and b^T Gamma u matter
    G = 0.3 * rng.standard_normal((D, D)) + 0.5 * np.eye(D)
    b = 0.4 * rng.standard_normal(D)
    w = pool[rng.integers(3, size=n)] if law == "pool" else rng.standard_normal((n, D))
    X = rng.standard_normal((n, L + 1, D)) / np.sqrt(D)
    y = np.einsum("nld,nd->nl", X, w) + sigma * rng.standard_normal((n, L + 1))
    h = (D / L) * np.einsum("nld,nl->nd", X[:, :L], y[:, :L])
    s = np.sum(y[:, :L] ** 2, axis=1) / L
    err = (y[:, L] - np.einsum("nd,nd->n", X[:, L], h @ G.T + s[:, None] * b)) ** 2
    moments = (task_law_moments("pool", pool=pool, sigma_test=sigma) if law == "pool"
               else task_law_moments("isotropic", dim=D, sigma_test=sigma))
    exact = y2_column_test_error(G, b, moments, L, sigma)
    assert abs(err.mean() - exact) < 4 * err.std(ddof=1) / np.sqrt(n)


def test_odg_excess_formula_and_its_small_ridge_limit():
    expr, sym = derive_odg_excess()
    # no column change at all when the pool mean vanishes (x = y2 = y3 = 0)
    assert expr.subs({sym["x"]: 0, sym["y2"]: 0, sym["y3"]: 0}) == 0
    # traces from the pool transform vs brute force on one large pool (self-averaging, 1/sqrt(D) noise)
    D, kappa, nu = 400, 0.5, 0.3
    rng = np.random.default_rng(1)
    W = rng.standard_normal((int(kappa * D), D))
    ev = np.linalg.eigvalsh(W.T @ W / W.shape[0])
    brute = [np.mean(ev / (ev + nu) ** k) for k in (1, 2, 3)]
    np.testing.assert_allclose(pool_resolvent_traces(nu, kappa, 1.0), brute, rtol=0.02)
    # nu -> 0 (alpha -> oo) with kappa < 1: the excess is exactly 1/M0 = 1/(kappa D) (module docstring)
    for k in (0.2, 0.5, 0.8):
        assert k * odg_excess_limit(1e7, k, 1.0, 0.1) == pytest.approx(1.0, abs=1e-4)
    # kappa > 1: the pool spans the space and the excess vanishes with nu
    assert odg_excess_limit(1e4, 2.0, 1.0, 0.1) < 1e-3 * odg_excess_limit(1e4, 0.5, 1.0, 0.1)


def test_population_excess_extrapolates_to_the_1_over_m0_theory():
    """Exact infinite-pretraining excess of finite pools, D x excess at D = 24, 48, 96 -> Phi (3 SE)."""
    alpha, kappa, sigma = 10.0, 0.5, 0.1
    dims, means, sems = [24, 48, 96], [], []
    for D in dims:
        s = sizes(D, alpha, 1.0, kappa, 1.0)
        vals = [D * population_excess(*pretraining_pool(s, seed)[::-1], s.context_length, sigma)["excess"]["odg"]
                for seed in range(10)]
        means.append(np.mean(vals))
        sems.append(np.std(vals, ddof=1) / np.sqrt(len(vals)))
    ex = extrapolate(dims, means, sems)
    phi = odg_excess_limit(alpha, kappa, 1.0, sigma)
    assert abs(ex.e_inf - phi) <= 3 * ex.se, (ex, phi)


def test_trained_column_learns_the_pool_mean_and_costs_about_1_over_m0():
    r = simulate_y2_column(dim=16, alpha=10.0, tau=10.0, kappa=0.5, rho=1.0, sigma=0.1, lam=2e-5, seeds=range(6))
    assert r.converged
    assert r.b_cosine.mean > 0.5                           # b points along the pool mean
    # paired excess of the trained models vs the infinite-pretraining excess of the same pools
    diff = np.array(r.excess.odg.values) - np.array(r.population_excess.odg.values)
    assert abs(diff.mean()) < 3 * diff.std(ddof=1) / np.sqrt(diff.size) + 0.1 / (r.sizes.dim * 10.0)
    assert r.excess.odg.mean > 5 * r.excess.odg.sem         # a resolved ODG rise ...
    assert r.excess.tm.mean < 0                             # ... while the column helps on the pool
    # the reduced fit is exactly the one `simulate` trains for these seeds
    sim = simulate(dim=16, alpha=10.0, tau=10.0, kappa=0.5, rho=1.0, sigma=0.1, lam=2e-5, seeds=range(6))
    np.testing.assert_allclose(r.reduced.odg.values, sim.errors().odg.values, rtol=1e-6)


def test_simulate_hook_returns_the_side_by_side_result():
    r = simulate(dim=8, alpha=4.0, tau=4.0, kappa=0.5, rho=1.0, sigma=0.2, lam=1e-3, seeds=range(2), y2_column=True)
    direct = simulate_y2_column(dim=8, alpha=4.0, tau=4.0, kappa=0.5, rho=1.0, sigma=0.2, lam=1e-3, seeds=range(2))
    assert r.excess.odg.values == direct.excess.odg.values and r.converged


def test_balanced_repetitions_use_every_pool_task_equally():
    from lowrank_icl.validation.forward.sampling import sample_pretraining
    s = sizes(6, 2.0, 3.0, 0.9, 1.0)                      # M = 108 prompts, M0 = 5 tasks
    counts = np.bincount(sample_pretraining(s, 0.1, 0, balanced=True).task_index, minlength=s.n_tasks)
    assert counts.sum() == s.n_prompts and counts.max() - counts.min() <= 1
    # the uniform default is unchanged by the option's existence (same stream, same prompts)
    a, b = sample_pretraining(s, 0.1, 1), sample_pretraining(s, 0.1, 1, label_power=True)
    assert np.array_equal(a.h, b.h) and np.array_equal(a.task_index, b.task_index)


def test_label_power_moments_from_wick_contractions():
    import sympy as sp
    from lowrank_icl.theory.forward import finite_size as fs
    from lowrank_icl.theory.forward.y2_column import derive_label_power_moments
    mean, second, cross = derive_label_power_moments()
    v = fs.w2 / fs.D + fs.sigma**2
    assert sp.simplify(mean - v) == 0
    assert sp.simplify(second - (1 + 2 / fs.L) * v**2) == 0
    assert sp.simplify(cross - (1 + 2 / fs.L) * v * fs.w_i) == 0


def test_cli_simulate_y2_column_json(capsys):
    import json
    from lowrank_icl.validation.cli.main import main
    assert main(["simulate", "--dim", "8", "--alpha", "2", "--tau", "2", "--kappa", "0.5", "--sigma", "0.2",
                 "--seeds", "0-1", "--y2-column", "--quiet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"]["y2_column"] is True and "version" in out
    for part in ("reduced", "errors", "excess", "population_excess"):
        assert set(out[part]) == {"tm", "idg", "odg"}
        assert set(out[part]["odg"]) >= {"mean", "sem", "n"} and out[part]["odg"]["n"] == 2
