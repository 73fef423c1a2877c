"""The fast LT kernel (LTObjective) against the previous kernel, finite differences and the training contract."""
import numpy as np
import pytest

from lowrank_icl.numerics import (LT, LT_LOSSES, InverseModel, InverseParams, LTObjective, lt1_optimal, lt1_risk,
                                  lt_loss_and_grad_reference, warm_start_lt1)


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
def test_fast_kernel_equals_previous_kernel_float64(rng, loss, K, block, workers):
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
    assert done.value <= min(done.init_value, cut.value)


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
