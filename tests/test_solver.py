"""The forward solver: robustness on the hard set, domain sweep, ridgeless limits, precision, errors."""
import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_icl.numerics import ForwardParams, solve
from lowrank_icl.numerics.forward.solver import ORDER_PARAMETERS

HARD = dict(zip(("alpha", "tau", "kappa", "lam"), np.meshgrid(
    [1e2, 1e4, 1e6], [0.5, 0.9, 0.99, 1.01, 1.1, 2.6], [0.2, 0.29, 0.3, 0.31, 0.4], [0.0, 1e-8, 1e-3],
    indexing="ij")))


@pytest.fixture(scope="module")
def hard_reduced():
    return solve(**HARD, rho=0.3, sigma=0.1)


def test_hard_set_converges_everywhere(hard_reduced):
    res = hard_reduced
    assert res.converged.shape == HARD["alpha"].shape
    assert np.all(res.converged)
    assert np.max(res.residual) < 1e-10
    for name in ORDER_PARAMETERS:
        assert not np.any(np.isnan(getattr(res, name))), name
    err = res.errors()
    for e in (err.tm, err.idg, err.odg):
        assert np.all(np.isfinite(e)) and np.all(e > 0)


def test_published_iteration_agrees_where_it_converges(hard_reduced):
    # independent route: the published damped iteration, where it succeeds, lands on our solution
    damped = solve(**HARD, rho=0.3, sigma=0.1, method="damped")
    ok = damped.converged
    assert 0 < ok.sum() < ok.size  # the baseline fails somewhere on this set (anchors.md)
    for name in ("q", "m", "q_bar", "m_bar", "q0", "m0"):
        a, b = getattr(damped, name)[ok], getattr(hard_reduced, name)[ok]
        # the iteration stops at a step of 1e-9; a residual of 1e-10 bounds the distance to the
        # fixed point by ~1e-10 times the condition number of the map: 1e-6 relative is ample
        assert np.allclose(a, b, rtol=1e-6, atol=0), name


domain = st.tuples(st.floats(-2, 7), st.floats(-2, 3), st.floats(-2, 3), st.floats(1e-3, 1.0),
                   st.floats(0, 10), st.one_of(st.just(0.0), st.floats(-10, 3).map(lambda v: 10**v)))


@given(domain)
def test_sweep_whole_domain_no_nan_and_converged(pt):
    la, lt, lk, r, s, lam = pt
    tau = 10**lt
    res = solve(10**la, tau, 10**lk, r, s, lam)
    assert bool(res.converged) and res.residual < 1e-10
    err = res.errors()
    for e in (err.tm, err.idg, err.odg):
        assert not np.isnan(e)
        if not (lam == 0 and tau == 1):
            assert np.isfinite(e) and e > 0


def test_vectorized_random_sweep():
    rng = np.random.default_rng(3)
    n = 20_000
    res = solve(alpha=10 ** rng.uniform(-2, 7, n), tau=10 ** rng.uniform(-2, 3, n), kappa=10 ** rng.uniform(-2, 3, n),
                rho=rng.uniform(1e-3, 1, n), sigma=rng.uniform(0, 5, n),
                lam=np.where(rng.random(n) < 0.3, 0.0, 10 ** rng.uniform(-10, 3, n)))
    assert np.all(res.converged) and np.max(res.residual) < 1e-10


@pytest.mark.parametrize("tau", [0.3, 0.8, 0.999, 1.001, 1.5, 4.0])
def test_ridgeless_is_the_limit_of_small_ridge(tau):
    # G(u) is analytic in lam at lam = 0+ on either side of tau = 1, so the solution moves
    # linearly in lam: deviations at lam = 1e-9 and 1e-11 differ by a factor 100 (the O(lam^2)
    # term changes that by < 1%; float rounding ~1e-13/|tau - 1| is far below the deviations)
    kw = dict(alpha=3.0, tau=tau, kappa=0.7, rho=0.5, sigma=0.2)
    exact = solve(**kw, lam=0.0)
    near = [solve(**kw, lam=lam) for lam in (1e-9, 1e-11)]
    for name in ("q", "m", "q_bar", "q0", "nu"):
        d1, d2 = (abs(getattr(n, name) - getattr(exact, name)) for n in near)
        assert d1 / d2 == pytest.approx(100, rel=0.01), name


def test_error_divergence_at_threshold_is_symmetric():
    # |tau - 1| E -> E_signal(nu = c) from both sides (from above exactly: E = tau E_signal/(tau - 1))
    kw = dict(alpha=2.0, kappa=0.5, rho=0.4, sigma=0.1, lam=0.0)
    above = solve(tau=np.array([1.5, 1.1, 1 + 1e-6]), **kw)
    scaled = (above.params.tau - 1) * above.training_error / above.params.tau
    assert np.allclose(scaled, scaled[0], rtol=1e-12)
    below = solve(tau=1 - 1e-6, **kw)
    # O(|tau - 1|) corrections on the tau < 1 side: 1e-6 relative, 10x margin
    assert (1 - below.params.tau) * below.training_error == pytest.approx(scaled[0], rel=1e-5)
    taus = np.array([0.9, 0.99, 0.999, 1.001, 1.01, 1.1])
    e = solve(tau=taus, **kw).errors().tm
    assert np.all(np.diff(e[:3]) > 0) and np.all(np.diff(e[3:]) < 0)  # the double-descent peak


def test_interpolation_threshold_is_inf_not_nan():
    res = solve(alpha=2.0, tau=1.0, kappa=0.5, rho=0.4, sigma=0.1, lam=0.0)
    assert res.branch == "interpolation threshold"
    err = res.errors()
    assert err.tm == np.inf and err.idg == np.inf and err.odg == np.inf
    for name in ORDER_PARAMETERS:
        assert not np.isnan(getattr(res, name)), name
    assert np.isfinite(res.m) and np.isfinite(res.m0)


def test_ridgeless_branches_labelled():
    res = solve(alpha=2.0, tau=[0.5, 1.0, 2.0, 2.0], kappa=1.0, rho=0.5, sigma=0.1, lam=[0, 0, 0, 0.1])
    assert list(res.branch) == ["ridgeless tau<1", "interpolation threshold", "ridgeless tau>1", "ridge"]
    assert res.chi[0] == np.inf and res.q_hat[0] == 0 and np.isfinite(res.chi[2])


@given(st.tuples(st.floats(-1, 6), st.floats(-1, 2), st.floats(-1, 2), st.floats(0.02, 1.0), st.floats(0, 2),
                 st.one_of(st.just(0.0), st.floats(-9, 2).map(lambda v: 10**v))))
def test_float64_agrees_with_mpmath_50_digits(pt):
    la, lt, lk, r, s, lam = pt
    tau = 10**lt
    if lam == 0 and tau == 1:
        return
    f = solve(10**la, tau, 10**lk, r, s, lam)
    p = solve(10**la, tau, 10**lk, r, s, lam, precision=50)
    for name in ("q", "m", "q_bar", "m_bar", "q0", "m0", "nu"):
        exact = getattr(p, name)
        if exact == 0:
            continue
        # at lam > 0 every evaluation is cancellation-free (measured <= 1.4e-15 on 300 random points);
        # at lam = 0 the exact factor 1/(tau - 1) turns the rounding of tau itself into a relative
        # error ~ eps/|tau - 1| (measured: error * min(1, |tau - 1|) <= 2.1e-15); 50x margin on both
        tol = 1e-13 if lam > 0 else 1e-13 / min(1.0, abs(tau - 1))
        assert abs(float((getattr(f, name) - exact) / exact)) < tol, name


def test_precision_mode_returns_mpmath_numbers():
    res = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1, precision=60)
    assert isinstance(res.q, mpmath.mpf)
    assert res.residual < mpmath.mpf(10) ** -50


def test_broadcasting_and_shapes():
    res = solve(alpha=np.array([1.0, 2.0, 4.0])[:, None], tau=np.array([0.5, 2.0]), kappa=1.0, rho=0.5)
    assert res.q.shape == (3, 2) and res.errors().idg.shape == (3, 2)
    assert res.errors(alpha_test=np.array([1.0, 10.0])).tm.shape == (3, 2)
    scalar = solve(2.0, 2.0, 1.0)
    assert np.ndim(scalar.q) == 0 and isinstance(bool(scalar.converged), bool)


def test_errors_test_context_and_noise():
    res = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1)
    far = res.errors(alpha_test=1e12, sigma_test=0.0)
    # infinite test context: e_X = 1 - 2 m_X + q_X (no finite-context term, no test noise)
    assert far.idg == pytest.approx(1 - 2 * res.m0 + res.q0, rel=1e-10)
    noisy = res.errors(sigma_test=2.0)
    base = res.errors(sigma_test=0.0)
    # test noise adds sigma_t^2 (1 + q_bar/alpha_t)
    assert noisy.odg - base.odg == pytest.approx(4.0 * (1 + res.q_bar / 4), rel=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    (dict(alpha=0.0), "alpha must be > 0"), (dict(tau=-1.0), "tau must be > 0"),
    (dict(kappa=np.inf), "kappa must be finite"), (dict(rho=0.0), "rho must be > 0 and <= 1"),
    (dict(rho=1.2), "rho must be > 0 and <= 1"), (dict(sigma=-0.1), "sigma must be >= 0"),
    (dict(lam=-1e-3), "lam must be >= 0"), (dict(alpha=float("nan")), "alpha must be finite"),
])
def test_rejects_out_of_domain(kwargs, match):
    base = dict(alpha=1.0, tau=1.5, kappa=1.0, rho=0.5, sigma=0.1, lam=0.0)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve(**base)


def test_rejects_bad_test_values_and_method():
    res = solve(1.0, 1.5, 1.0)
    with pytest.raises(ValueError, match="alpha_test must be > 0"):
        res.errors(alpha_test=0)
    with pytest.raises(ValueError, match="sigma_test must be >= 0"):
        res.errors(sigma_test=-1)
    with pytest.raises(ValueError, match="method must be"):
        solve(1.0, 1.5, 1.0, method="newton")


def test_accepts_forward_params_fields():
    p = ForwardParams.from_full_rank(alpha=10, tau=2.0, kappa=0.5, rho_lu=0.01, lam_lu=1e-5)
    res = solve(p.alpha, p.tau, p.kappa, p.rho, p.sigma, p.lam)
    assert bool(res.converged)


def test_precision_mode_errors_keep_precision_below_float64():
    # d e_IDG / d sigma_t^2 at sigma_t -> 0 equals 1 + q_bar/alpha_t exactly (the formula is linear in
    # sigma_t^2); at sigma_t = 1e-10 that difference is 1e-20, invisible in float64 but not at 50 digits
    res = solve(alpha=4, tau=1.7, kappa=0.4, rho=0.6, sigma=0.1, lam=0.0, precision=50)
    with mpmath.workdps(50):
        e0 = res.errors(sigma_test=0.0).idg
        e1 = res.errors(sigma_test=1e-10).idg
        slope = (e1 - e0) / mpmath.mpf(1e-10) ** 2
        assert abs(slope / (1 + res.q_bar / 4) - 1) < mpmath.mpf(10) ** -25
