"""The exact low-dimensional law of h | w against explicit contexts, and the samplers' contracts."""
import numpy as np
import pytest
from scipy import stats

from lowrank_icl.theory.forward.finite_size import conditional_moments_h
from lowrank_icl.validation.forward import sampling


def _zscores(samples, expected):
    """(mean - expected)/SE for every coordinate of a stack of samples (axis 0 = draws)."""
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    return (samples.mean(axis=0) - expected) / se


@pytest.mark.parametrize("dim,L,sigma", [(6, 5, 0.7), (5, 1, 0.0), (4, 12, 1.3)])
def test_exact_h_law_matches_moments_and_explicit_contexts(dim, L, sigma, rng):
    w = rng.standard_normal(dim) * np.sqrt(1.5)
    n = 40_000
    h_fast = sampling.sample_h(np.tile(w, (n, 1)), L, sigma, rng)
    h_ref = sampling.sample_h_explicit(np.tile(w, (n, 1)), L, sigma, rng)
    mean_exact, second_exact = conditional_moments_h(w, L, sigma)
    iu = np.triu_indices(dim)
    for h in (h_fast, h_ref):
        # first and second moments vs the exact conditional moments (theory.finite_size);
        # 5 SE bound on each of the dim + dim(dim+1)/2 statistics (family-wise p < 1e-4)
        assert np.max(np.abs(_zscores(h, mean_exact))) < 5
        outer = (h[:, :, None] * h[:, None, :])[:, iu[0], iu[1]]
        assert np.max(np.abs(_zscores(outer, second_exact[iu]))) < 5
    # whole distribution of ||h|| and of e.h: the two samplers agree (KS, alpha = 1e-4 per test)
    e = w / np.linalg.norm(w)
    assert stats.ks_2samp(np.linalg.norm(h_fast, axis=1), np.linalg.norm(h_ref, axis=1)).pvalue > 1e-4
    assert stats.ks_2samp(h_fast @ e, h_ref @ e).pvalue > 1e-4


def test_sizes_rounding_and_ratios():
    s = sampling.sizes(10, alpha=2.35, tau=1.2, kappa=0.25, rho=0.04)
    # L = round(23.5) = 24 (half up), M = 120, M0 = round(2.5) = 3, r = max(1, round(0.4)) = 1
    assert (s.context_length, s.n_prompts, s.n_tasks, s.rank) == (24, 120, 3, 1)
    assert s.alpha == 2.4 and s.rho == 0.1
    with pytest.raises(ValueError, match="rho"):
        sampling.sizes(10, 1, 1, 1, rho=1.5)


def test_haar_subspace_orthonormal_and_pool_second_moment(rng):
    A = sampling.haar_subspace(30, 7, rng)
    np.testing.assert_allclose(A.T @ A, np.eye(7), atol=1e-12)
    # E w w^T = (D/r) A A^T: check the projections onto span(A) and its complement
    pool = sampling.task_pool(A, 20_000, rng)
    assert np.allclose(pool - (pool @ A) @ A.T, 0, atol=1e-10)
    norms2 = np.sum(pool**2, axis=1)
    # E||w||^2 = D = 30 with SD of ||w||^2 = (D/r) sqrt(2r); 5 SE tolerance
    assert abs(norms2.mean() - 30) < 5 * (30 / 7) * np.sqrt(2 * 7) / np.sqrt(norms2.size)


def test_seed_reproducible_and_contexts_share_pool():
    s = sampling.sizes(8, alpha=1.5, tau=0.5, kappa=1, rho=0.5)
    a = sampling.sample_pretraining(s, 0.3, seed=4)
    b = sampling.sample_pretraining(s, 0.3, seed=4)
    c = sampling.sample_contexts(s, 0.3, seed=4)
    assert np.array_equal(a.h, b.h) and np.array_equal(a.y, b.y)
    assert np.array_equal(a.pool, c.pool) and np.array_equal(a.subspace, c.subspace)
    assert c.X.shape == (s.n_prompts, s.context_length + 1, 8) and c.y.shape == (s.n_prompts, s.context_length + 1)
    red = c.reduced()
    # the labels of the contexts follow the tasks exactly when sigma = 0
    c0 = sampling.sample_contexts(s, 0.0, seed=1)
    np.testing.assert_allclose(c0.y, np.einsum("nld,nd->nl", c0.X, c0.pool[c0.task_index]), atol=1e-12)
    assert red.h.shape == (s.n_prompts, 8) and red.x.shape == (s.n_prompts, 8)
