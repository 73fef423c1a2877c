"""The fast LT kernel (LTObjective) against the reference kernel, finite differences and the training contract."""
import numpy as np
import pytest

from lowrank_icl.numerics.inverse import (LT, LT_LOSSES, InverseModel, InverseParams, LTObjective, lt1_optimal,
                                          lt1_risk, warm_start_lt1)
from lowrank_icl.numerics.inverse.lt import lt_loss_and_grad_reference


def _problem(rng, n=23, N=6, d=9, n_val=3):
    X = rng.standard_normal((n, N, d))
    W = rng.standard_normal((n, d))
    Y = np.einsum("nij,nj->ni", X, W) + 0.3 * rng.standard_normal((n, N))
    Xv = rng.standard_normal((n, n_val, d))
    Yv = np.einsum("nij,nj->ni", Xv, W) + 0.3 * rng.standard_normal((n, n_val))
    return X, Y, dict(W=W, X_val=Xv, Y_val=Yv)


def _kwargs(loss, kw):
    return {"supervised": dict(W=kw["W"]), "unsupervised": {},
            "heldout": dict(X_val=kw["X_val"], Y_val=kw["Y_val"])}[loss]


@pytest.mark.parametrize("loss", LT_LOSSES)
@pytest.mark.parametrize("K, block, workers", [(1, 4, 1), (3, 5, 1), (4, 64, 1), (3, 2, 2)])
def test_fast_kernel_equals_reference_kernel_float64(rng, loss, K, block, workers):
    """Blocks that do not divide n, one block holding everything, and two threads: value and gradient to 1e-12."""
    X, Y, kw = _problem(rng)
    d = X.shape[2]
    theta = np.concatenate([rng.standard_normal(d), 0.2 * rng.standard_normal(K * d * d)])
    v0, g0 = lt_loss_and_grad_reference(theta, d, K, loss, X, Y, **_kwargs(loss, kw))
    obj = LTObjective(X, Y, K=K, loss=loss, block=block, workers=workers, **_kwargs(loss, kw))
    v, g = obj(theta)
    assert abs(v - v0) <= 1e-12 * abs(v0)
    assert np.max(np.abs(g - g0)) <= 1e-12 * np.max(np.abs(g0))


@pytest.mark.parametrize("loss", LT_LOSSES)
def test_fast_kernel_gradient_matches_finite_differences(rng, loss):
    X, Y, kw = _problem(rng, n=7, N=4, d=5, n_val=2)
    d, K = 5, 3
    theta = np.concatenate([rng.standard_normal(d), 0.3 * rng.standard_normal(K * d * d)])
    obj = LTObjective(X, Y, K=K, loss=loss, block=3, **_kwargs(loss, kw))
    _, grad = obj(theta)
    h = 1e-6
    fd = np.array([(obj(theta + h * e)[0] - obj(theta - h * e)[0]) / (2 * h) for e in np.eye(theta.size)])
    # central differences: truncation O(h^2) ~ 1e-12 relative, rounding ~ eps/h ~ 1e-10
    assert np.max(np.abs(fd - grad)) < 1e-7 * max(1.0, np.max(np.abs(grad)))


@pytest.mark.parametrize("loss", LT_LOSSES)
def test_float32_mode_is_float64_to_single_precision(rng, loss):
    X, Y, kw = _problem(rng)
    d, K = X.shape[2], 4
    theta = np.concatenate([rng.standard_normal(d), 0.2 * rng.standard_normal(K * d * d)])
    v0, g0 = LTObjective(X, Y, K=K, loss=loss, **_kwargs(loss, kw))(theta)
    v, g = LTObjective(X, Y, K=K, loss=loss, dtype=np.float32, block=4, **_kwargs(loss, kw))(theta)
    assert abs(v - v0) < 1e-5 * abs(v0)
    assert np.max(np.abs(g - g0)) < 1e-5 * np.max(np.abs(g0))
    assert abs(v - v0) > 0          # it really ran in single precision


def test_objective_rejects_bad_input(rng):
    X, Y, kw = _problem(rng)
    with pytest.raises(ValueError, match="dtype must be float64 or float32"):
        LTObjective(X, Y, K=1, loss="unsupervised", dtype=np.float16)
    with pytest.raises(ValueError, match="needs W"):
        LTObjective(X, Y, K=1, loss="supervised")
    obj = LTObjective(X, Y, K=2, loss="unsupervised")
    with pytest.raises(ValueError, match="theta must have shape"):
        obj(np.zeros(3))


def test_training_reports_convergence_honestly(rng):
    """The stated criterion decides `converged`; a safety stop at maxiter says False."""
    m = InverseModel.draw(InverseParams(d=10, N=6, r=2, sigma=0.2, n_s=400), rng)
    c = m.sample(400, rng)
    done = LT(K=2, loss="supervised", rtol=1e-5).fit(c.X, c.Y, c.W).train_
    assert done.converged and done.residual < 1e-5 and "rtol" in done.message
    cut = LT(K=2, loss="supervised", rtol=1e-5, maxiter=3, init="gd").fit(c.X, c.Y, c.W).train_
    assert not cut.converged and cut.iterations <= 3
    assert done.loss <= min(done.initial_loss, cut.loss)


def test_warm_start_is_the_one_layer_optimum_for_many_tasks(rng):
    """With W known and n_s = 20000 the plug-in one-layer LT is within 3 % of the population optimum
    (excess risk of estimated moments ~ d^2/n_s); without W (moment estimates) within 15 %."""
    m = InverseModel.draw(InverseParams(d=8, N=6, r=2, sigma=0.3, n_s=20000), rng)
    c = m.sample(20000, rng)
    best = lt1_optimal(m.Sigma_x, m.Sigma_w, m.w0, m.sigma, m.N).risk
    for W, tol in ((c.W, 1.03), (None, 1.15)):
        b, Gamma = warm_start_lt1(c.X, c.Y, W)
        got = lt1_risk(Gamma, b, m.Sigma_x, m.Sigma_w, m.w0, m.sigma, m.N)
        assert best * (1 - 1e-9) <= got < tol * best


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LT_LOSSES)
def test_fast_kernel_is_bit_identical_for_any_thread_count(rng, loss, dtype):
    """Fixed chunks summed in a fixed order: the thread count changes nothing, not even the last bit
    (so it can stay out of the run cache's key)."""
    X, Y, kw = _problem(rng, n=41)
    d, K = X.shape[2], 3
    theta = np.concatenate([rng.standard_normal(d), 0.2 * rng.standard_normal(K * d * d)])
    results = [LTObjective(X, Y, K=K, loss=loss, dtype=dtype, block=3, workers=w, **_kwargs(loss, kw))(theta)
               for w in (1, 2, 3)]
    for v, g in results[1:]:
        assert v == results[0][0] and np.array_equal(g, results[0][1])


def test_input_whitening_whitens_the_layer_inputs(rng):
    """P_k C_k P_k = I for the second moment C_k of the layer inputs g_k at the start (floor inactive)."""
    from lowrank_icl.numerics.inverse.lt import input_whitening, lt_forward
    X, Y, _ = _problem(rng, n=60)
    d, K = X.shape[2], 3
    theta = np.concatenate([rng.standard_normal(d), 0.1 * rng.standard_normal(K * d * d)])
    P = input_whitening(theta, X, Y, K, floor=1e-14)
    _, g = lt_forward(theta[:d], theta[d:].reshape(K, d, d), X, Y)
    for k in range(K):
        C = g[k].T @ g[k] / X.shape[0]
        assert np.allclose(P[1][k] @ C @ P[1][k], np.eye(d), atol=1e-9)
        assert np.allclose(P[1][k] @ P[-1][k], np.eye(d), atol=1e-9)


@pytest.mark.parametrize("loss", LT_LOSSES)
def test_preconditioned_training_reaches_the_plain_minimum(rng, loss):
    """A change of variables does not change the objective: from the same start, whitened and plain
    L-BFGS both meet the criterion at the same training loss (to the criterion's rtol)."""
    m = InverseModel.draw(InverseParams(d=8, N=6, r=2, sigma=0.2, n_s=600), rng)
    c = m.sample(600, rng)
    fits = [LT(K=1, loss=loss, precondition=p).fit(c.X, c.Y, c.W).train_ for p in (True, False)]
    assert all(f.converged for f in fits)
    assert abs(fits[0].loss - fits[1].loss) <= 1e-5 * fits[1].loss


def test_training_settings_are_validated_and_threads_stay_out_of_the_run_key():
    from lowrank_icl.validation.inverse.experiments import LTSettings, RunCache
    with pytest.raises(ValueError, match="precondition must be"):
        LT(precondition="yes")
    p = InverseParams(d=8, N=6, r=2, sigma=0.2, n_s=50)
    assert (RunCache.job(p, 2, "LT-heldout", 0, 0, 10, LTSettings(workers=2))
            == RunCache.job(p, 2, "LT-heldout", 0, 0, 10, LTSettings()))
    assert (RunCache.job(p, 2, "LT-heldout", 0, 0, 10, LTSettings(precondition="auto"))
            != RunCache.job(p, 2, "LT-heldout", 0, 0, 10, LTSettings(precondition=False)))
