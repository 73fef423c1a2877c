"""The forward solver: robustness on the hard set, domain sweep, ridgeless limits, precision, errors."""
import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowrank_icl.numerics import ORDER_PARAMETERS, ForwardParams, solve

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
    assert 0 < ok.sum() < ok.size  # the baseline fails somewhere on this set
    # its own stop rule (step < 1e-9) and the residual test are reported apart, and they disagree:
    # the iteration stops on slow directions far from the fixed point
    assert damped.stopped.dtype == bool and damped.stopped.shape == ok.shape
    assert np.any(damped.stopped & ~ok)
    assert all(r == "" for r in damped.reason[ok]) and all(r for r in damped.reason[~ok])
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
    res = solve(alpha=10**la, tau=tau, kappa=10**lk, rho=r, sigma=s, lam=lam)
    assert bool(res.converged) and res.residual < 1e-10
    err = res.errors()
    for e in (err.tm, err.idg, err.odg):
        assert not np.isnan(e)
        if not (lam == 0 and tau == 1):
            assert np.isfinite(e) and e > 0


def test_ill_conditioned_edge_is_flagged_not_wrong():
    # lam = 0, tau = kappa < rho at large alpha: the root is fixed by a small difference of O(1) terms;
    # float64 loses ~eps sqrt(alpha) there, so it must say so (and precision= must resolve it)
    res = solve(alpha=[1e12, 1e16, 10.0], tau=0.5, kappa=0.5, rho=1.0, sigma=0.1)
    assert list(res.converged) == [False, False, True]
    assert "ill-conditioned" in res.reason[1] and "precision=" in res.reason[1]
    assert bool(solve(alpha=1e16, tau=0.5, kappa=0.5, rho=1.0, sigma=0.1, precision=40).converged)


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
def test_rounding_float64_vs_mpmath_same_algorithm(pt):
    # ROUNDING TEST ONLY: both sides run the same reduced algorithm (float64 vs 50 digits), so this
    # measures float64 rounding, not the correctness of the algorithm (tested elsewhere)
    la, lt, lk, r, s, lam = pt
    tau = 10**lt
    if lam == 0 and tau == 1:
        return
    f = solve(alpha=10**la, tau=tau, kappa=10**lk, rho=r, sigma=s, lam=lam)
    p = solve(alpha=10**la, tau=tau, kappa=10**lk, rho=r, sigma=s, lam=lam, precision=50)
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
    assert res.residual < 1e-55 and bool(res.converged)


def test_broadcasting_and_shapes():
    res = solve(alpha=np.array([1.0, 2.0, 4.0])[:, None], tau=np.array([0.5, 2.0]), kappa=1.0, rho=0.5)
    assert res.q.shape == (3, 2) and res.errors().idg.shape == (3, 2)
    assert res.errors(alpha_test=np.array([1.0, 10.0])).tm.shape == (3, 2)
    scalar = solve(alpha=2.0, tau=2.0, kappa=1.0)
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
    (dict(kappa=-np.inf), "kappa must be finite or"), (dict(kappa=np.nan), "kappa must be finite or"),
    (dict(kappa=np.inf, lam=0.1), "kappa = inf requires lam = 0"), (dict(rho=0.0), "rho must be > 0 and <= 1"),
    (dict(rho=1.2), "rho must be > 0 and <= 1"), (dict(sigma=-0.1), "sigma must be >= 0"),
    (dict(lam=-1e-3), "lam must be >= 0"), (dict(alpha=float("nan")), "alpha must be finite"),
])
def test_rejects_out_of_domain(kwargs, match):
    base = dict(alpha=1.0, tau=1.5, kappa=1.0, rho=0.5, sigma=0.1, lam=0.0)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve(**base)


def test_rejects_bad_test_values_and_method():
    res = solve(alpha=1.0, tau=1.5, kappa=1.0)
    with pytest.raises(ValueError, match="alpha_test must be > 0"):
        res.errors(alpha_test=0)
    with pytest.raises(ValueError, match="sigma_test must be >= 0"):
        res.errors(sigma_test=-1)
    with pytest.raises(ValueError, match="method must be"):
        solve(alpha=1.0, tau=1.5, kappa=1.0, method="newton")


def test_accepts_forward_params():
    p = ForwardParams(alpha=10, tau=2.0, kappa=0.5, rho=0.3, sigma=0.1, lam=1e-4)
    res = solve(p)
    assert bool(res.converged)
    assert res.q == solve(alpha=10, tau=2.0, kappa=0.5, rho=0.3, sigma=0.1, lam=1e-4).q
    with pytest.raises(ValueError, match="either a ForwardParams"):
        solve(p, tau=2.0, kappa=0.5)
    with pytest.raises(ValueError, match="needs alpha, tau and kappa"):
        solve(alpha=1.0)


def test_precision_mode_errors_keep_precision_below_float64():
    # d e_IDG / d sigma_t^2 at sigma_t -> 0 equals 1 + q_bar/alpha_t exactly (the formula is linear in
    # sigma_t^2); at sigma_t = 1e-10 that difference is 1e-20, invisible in float64 but not at 50 digits
    res = solve(alpha=4, tau=1.7, kappa=0.4, rho=0.6, sigma=0.1, lam=0.0, precision=50)
    with mpmath.workdps(50):
        e0 = res.errors(sigma_test=0.0).idg
        e1 = res.errors(sigma_test=1e-10).idg
        slope = (e1 - e0) / mpmath.mpf(1e-10) ** 2
        assert abs(slope / (1 + res.q_bar / 4) - 1) < mpmath.mpf(10) ** -25


# ---------------------------------------------------------------------------------------------
# accuracy where the errors vanish (sigma = 0, lam = 0, large alpha)

def _reference_errors(alpha, tau, kappa, rho, sigma, lam, dps=50):
    """50-digit errors from the SAME reduced algorithm (its published-equation residual is ~1e-50) put
    into the DEFINING form e = sigma^2 + 1 - 2 m_X + q_X + (1 + sigma^2) q_bar/alpha rather than the
    sum-of-nonnegative-parts form float64 uses: this measures float64 rounding and the rearrangement,
    not the reduction itself (that is :func:`_published_reference`, an independent route)."""
    from lowrank_icl.theory.forward.saddle_point import asymptotic_error

    ref = solve(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam, precision=dps)
    assert bool(ref.converged)
    with mpmath.workdps(dps):
        a, s = mpmath.mpf(alpha), mpmath.mpf(sigma)
        return {"tm": asymptotic_error(ref.m, ref.q, ref.q_bar, a, s),
                "idg": asymptotic_error(ref.m0, ref.q0, ref.q_bar, a, s),
                "odg": asymptotic_error(ref.m_bar, ref.q_bar, ref.q_bar, a, s)}


@pytest.mark.parametrize("alpha", [1e4, 1e8, 1e12, 1e16])
@pytest.mark.parametrize("tau,kappa,rho", [(3.0, 2.0, 0.5), (10.0, 10.0, 0.5), (2.6, 0.4, 0.6), (0.5, 0.7, 0.3)])
def test_errors_keep_relative_accuracy_where_they_vanish(alpha, tau, kappa, rho):
    # at sigma = 0, lam = 0 the errors vanish like 1/alpha (TM, and IDG for kappa > rho); the
    # defining form 1 - 2m + q loses ~alpha * 1e-16 relative in float64, the nonnegative parts do not
    res = solve(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=0.0, lam=0.0)
    assert bool(res.converged) and res.reason == ""
    ref = _reference_errors(alpha, tau, kappa, rho, 0.0, 0.0)
    err = res.errors()
    for name in ("tm", "idg", "odg"):
        rel = abs(float((getattr(err, name) - ref[name]) / ref[name]))
        # measured <= 2e-15 here; tau - 1 enters exactly at u = 0 and its rounding is eps/|tau - 1|
        assert rel < 1e-13, (name, rel)


def test_extreme_alpha_points_converge_and_are_exact():
    """alpha = 1e10 and 1e12 at sigma = lam = 0, where the errors vanish like 1/alpha."""
    res = solve(alpha=1e10, tau=10, kappa=10, rho=0.5, sigma=0, lam=0)
    assert bool(res.converged) and res.residual < 1e-14
    ref = _reference_errors(1e12, 3.0, 2.0, 0.5, 0.0, 0.0)
    idg = solve(alpha=1e12, tau=3, kappa=2, rho=0.5, sigma=0, lam=0).errors().idg
    assert abs(float((idg - ref["idg"]) / ref["idg"])) < 1e-14


@given(st.tuples(st.floats(-1, 16), st.floats(-1, 2), st.one_of(st.floats(-2, 2), st.just(np.inf)),
                 st.floats(1e-3, 1.0), st.one_of(st.just(0.0), st.floats(0, 2)),
                 st.one_of(st.just(0.0), st.floats(-8, 2).map(lambda v: 10**v))))
def test_errors_match_50_digit_defining_form(pt):
    la, lt, lk, r, s, lam = pt
    tau, kappa = 10**lt, 10**lk
    if (lam == 0 and tau == 1) or (kappa == np.inf and lam > 0):
        return
    res = solve(alpha=10**la, tau=tau, kappa=kappa, rho=r, sigma=s, lam=lam)
    if not bool(res.converged):
        assert "ill-conditioned" in res.reason, res.reason
        return
    ref = _reference_errors(10**la, tau, kappa, r, s, lam)
    err = res.errors()
    tol = 2e-12 + (0 if lam > 0 else 1e-15 / abs(tau - 1))
    for name in ("tm", "idg", "odg"):
        assert abs(float((getattr(err, name) - ref[name]) / ref[name])) < tol, name


def test_residual_detects_a_wrong_point():
    # the residual test can fail: perturb one order parameter by 1e-8 and it must say so
    from lowrank_icl.numerics.forward.residual import published_residual
    from lowrank_icl.theory.forward.stieltjes import pool_moments

    res = solve(alpha=np.array([3.0, 1e8]), tau=np.array([1.7, 3.0]), kappa=0.7, rho=0.5, sigma=0.0, lam=0.0)
    p = {k: np.atleast_1d(np.asarray(v, float)) * np.ones(2) for k, v in res.params.broadcast().items()}
    sol = {k: np.array(np.broadcast_to(getattr(res, k), (2,)), dtype=float) for k in
           ("q", "m", "chi", "q_bar", "chi_bar", "nu", "training_error")}
    def moments_at(nu, sel):
        return pool_moments(-nu, p["kappa"][sel], p["rho"][sel])

    assert np.all(published_residual(p, sol, moments_at) < 1e-14)
    for name in ("q", "m", "chi", "q_bar", "chi_bar", "training_error"):
        bad = dict(sol)
        bad[name] = sol[name] * (1 + 1e-8)
        assert np.all(published_residual(p, bad, moments_at) > 1e-9), name


# ---------------------------------------------------------------------------------------------
# precision mode carries its digits; no global mpmath state

def test_precision_threshold_is_honest_on_the_hard_set():
    res = solve(**HARD, rho=0.3, sigma=0.1, precision=30)
    assert np.all(res.converged) and np.max(res.residual) < 1e-25
    # sigma = 0, alpha = 1e20: the old residual form reported 4.7e-33 against a threshold of 1e-45
    far = solve(alpha=1e20, tau=10, kappa=10, rho=0.5, sigma=0.0, precision=50)
    assert bool(far.converged) and far.residual < 1e-45


def test_precision_errors_independent_of_global_dps():
    # errors(sigma_test=0).idg at alpha = 1e20 is ~5.57e-21 (sigma = 0: e_IDG ~ 1/alpha); the
    # large-alpha expansion (theory.forward.limits) is an independent route to its leading digits
    from lowrank_icl.theory.forward.limits import large_alpha_expansion

    res = solve(alpha=1e20, tau=10, kappa=10, rho=0.5, sigma=0.0, precision=50)
    values = []
    for dps in (5, 15, 50):
        old = mpmath.mp.dps
        try:
            mpmath.mp.dps = dps
            values.append(res.errors(sigma_test=0).idg)
        finally:
            mpmath.mp.dps = old
    with mpmath.workdps(60):
        assert values[0] == values[1] == values[2] and values[0] > 0
    expansion = large_alpha_expansion(1e20, 10.0, 10.0, 0.5, 0.0)["e_idg"]
    assert float(values[0]) == pytest.approx(float(expansion), rel=1e-12)
    assert float(values[0]) == pytest.approx(5.5701754385964e-21, rel=1e-12)


def test_precision_to_dict_and_decomposition_carry_the_digits():
    res = solve(alpha=1e20, tau=3, kappa=2, rho=0.5, sigma=0.0, precision=50)
    out = res.to_dict()
    ref = _reference_errors(1e20, 3.0, 2.0, 0.5, 0.0, 0.0, dps=90)  # the defining form loses 20 digits here
    with mpmath.workdps(90):
        for name in ("tm", "idg", "odg"):
            text = out["errors"][name]
            assert isinstance(text, str) and len(text.replace(".", "").split("e")[0]) >= 45
            assert abs(mpmath.mpf(text) / ref[name] - 1) < mpmath.mpf(10) ** -45, name
        dec = res.decomposition()
        # q at alpha = 1e20 is 1 - O(1e-20): float64 arithmetic on the parts would lose it
        assert 0 < 1 - dec.q.total < mpmath.mpf(10) ** -19


# ---------------------------------------------------------------------------------------------
# no NaN or inf with converged=True; out-of-range inputs refused

@pytest.mark.parametrize("kw", [dict(alpha=1e-300), dict(sigma=1e100), dict(lam=1e300), dict(lam=1e-300),
                                dict(alpha=1e300), dict(tau=1e-300), dict(kappa=1e300), dict(rho=1e-300)])
def test_float64_refuses_unrepresentable_inputs(kw):
    base = dict(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1)
    base.update(kw)
    name = next(iter(kw))
    with pytest.raises(ValueError, match=f"{name} = .* outside the float64 solver's range .* precision="):
        solve(**base)


def test_precision_mode_solves_what_float64_refuses():
    res = solve(alpha=1e-300, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1, precision=30)
    assert bool(res.converged)
    err = res.errors()
    # alpha -> 0 (nu = (1 + sigma^2)/alpha -> inf): u g(-nu) -> 0, so the gap tau - K -> tau - 1, W -> mean
    # eigenvalue 1, and every error at alpha_t = alpha tends to E = tau (1 + sigma^2)/(tau - 1) (+ O(alpha))
    with mpmath.workdps(30):
        limit = mpmath.mpf(1.2) * (1 + mpmath.mpf(0.9) ** 2) / (mpmath.mpf(1.2) - 1)
        for name in ("tm", "idg", "odg"):
            assert abs(getattr(err, name) / limit - 1) < 1e-25


@given(st.tuples(st.floats(-30, 30), st.floats(-30, 30), st.one_of(st.floats(-30, 30), st.just(np.inf)),
                 st.floats(-30, 0), st.one_of(st.just(0.0), st.floats(0, 1e15)),
                 st.one_of(st.just(0.0), st.floats(-30, 30).map(lambda v: 10**v))))
def test_edges_of_the_float64_range_never_nan_with_converged(pt):
    la, lt, lk, lr, s, lam = pt
    if (10**lk == np.inf and lam > 0) or (lam == 0 and 10**lt == 1):
        return
    res = solve(alpha=10**la, tau=10**lt, kappa=10**lk, rho=10**lr, sigma=s, lam=lam)  # warnings are errors in the suite
    err = res.errors()
    values = [getattr(res, k) for k in ORDER_PARAMETERS] + [err.tm, err.idg, err.odg]
    if bool(res.converged):
        assert not any(np.isnan(v) for v in values)
        assert all(v >= 0 for v in (err.tm, err.idg, err.odg))
    else:
        assert res.reason


# ---------------------------------------------------------------------------------------------
# kappa = inf: a fresh task for every prompt

@pytest.mark.parametrize("tau,lam", [(1.2, 0.0), (0.5, 0.0), (4.0, 0.0)])
def test_kappa_inf_is_the_limit_with_rate_one_over_kappa(tau, lam):
    kw = dict(alpha=4.0, tau=tau, rho=0.5, sigma=0.9, lam=lam)
    limit = solve(kappa=np.inf, **kw)
    assert bool(limit.converged)
    kappas = np.array([1e6, 1e7, 1e8, 1e9])
    near = solve(kappa=kappas, **kw)
    for name in ("tm", "idg", "odg"):
        gap = (getattr(near.errors(), name) - getattr(limit.errors(), name)) * kappas
        # kappa (e(kappa) - e(inf)) -> a constant: the correction is O(1/kappa); float rounding of
        # e (~1e-16) times kappa bounds the scatter at 1e9 to ~1e-6 absolute
        assert np.allclose(gap, gap[0], rtol=1e-4, atol=1e-5), (name, gap)
        assert abs(gap[0]) > 1e-3  # a real O(1/kappa) correction, not a coincidence


def test_kappa_inf_tm_equals_idg():
    # with a fresh task per prompt the "pool" tasks are fresh tasks: TM = IDG exactly
    res = solve(alpha=[0.5, 4.0, 1e6], tau=[0.3, 1.7, 9.0], kappa=np.inf, rho=0.4, sigma=0.2)
    err = res.errors()
    assert np.allclose(err.tm, err.idg, rtol=1e-14)


def test_forward_params_accepts_only_plus_inf():
    assert ForwardParams(alpha=1, tau=1, kappa=np.inf).kappa == np.inf
    for bad in (-np.inf, np.nan):
        with pytest.raises(ValueError, match="kappa must be finite or"):
            ForwardParams(alpha=1, tau=1, kappa=bad)
    with pytest.raises(ValueError, match="alpha must be finite"):
        ForwardParams(alpha=np.inf, tau=1, kappa=1)


def test_reprs_are_concise():
    one = repr(solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1))
    assert one.count("\n") <= 4 and "converged=True" in one and "idg=" in one
    grid = repr(solve(alpha=np.ones((30, 40)), tau=2.0, kappa=1.0))
    assert grid.count("\n") <= 3 and "converged 1200/1200" in grid
    assert repr(solve(alpha=4, tau=1.2, kappa=3).errors()).startswith("ForwardErrors(tm=")


# ---------------------------------------------------------------------------------------------
# the thorough randomized run (CI): the derandomized default profile above stays small and fast;
# with CI=true (or LOWRANK_ICL_THOROUGH=1) this test draws fresh random points for a fixed time budget

THOROUGH_SECONDS = float(__import__("os").environ.get("LOWRANK_ICL_THOROUGH_SECONDS", "140"))
_thorough = __import__("os").environ.get("CI", "").lower() == "true" or \
    __import__("os").environ.get("LOWRANK_ICL_THOROUGH", "") == "1"

whole_domain = st.tuples(
    st.floats(-2, 16),                                               # log10 alpha, up to 1e16
    st.floats(-2, 3),                                                # log10 tau
    st.one_of(st.floats(-2, 3), st.just(np.inf)),                    # log10 kappa, or kappa = inf
    st.one_of(st.floats(1e-3, 1.0), st.just(1.0), st.just(1e-3)),    # rho down to 1e-3
    st.one_of(st.just(0.0), st.floats(0, 10)),                       # sigma, 0 included
    st.one_of(st.just(0.0), st.floats(-10, 3).map(lambda v: 10**v)))  # lam, 0 included


def _check_point(pt):
    la, lt, lk, r, s, lam = pt
    tau, kappa = 10**lt, (np.inf if lk == np.inf else 10**lk)
    if (lam == 0 and tau == 1) or (kappa == np.inf and lam > 0):
        return
    res = solve(alpha=10**la, tau=tau, kappa=kappa, rho=r, sigma=s, lam=lam)
    if not bool(res.converged):
        # the only admitted failure: a point float64 cannot resolve, flagged as such and solved by precision=
        assert "ill-conditioned" in res.reason, (pt, res.reason)
        assert bool(solve(alpha=10**la, tau=tau, kappa=kappa, rho=r, sigma=s, lam=lam, precision=30).converged)
        return
    err = res.errors()
    ref = _reference_errors(10**la, tau, kappa, r, s, lam)
    # relative accuracy ~1e-13 (the condition limit 5e-12 bounds the root's error); at lam = 0 the exact
    # factor 1/(tau - 1) adds ~eps/|tau - 1| (measured)
    tol = 2e-12 + (0 if lam > 0 else 1e-15 / abs(tau - 1))
    for name in ("tm", "idg", "odg"):
        e = getattr(err, name)
        assert np.isfinite(e) and e > 0, (pt, name)
        assert abs(float((e - ref[name]) / ref[name])) < tol, (pt, name, float((e - ref[name]) / ref[name]))


class _BudgetSpent(Exception):
    """Raised by the thorough run's check once its time budget is spent: ends the hypothesis run."""


@pytest.mark.skipif(not _thorough, reason="thorough randomized run: set CI=true or LOWRANK_ICL_THOROUGH=1")
def test_thorough_random_domain():
    import time

    from hypothesis import HealthCheck, Phase, settings

    # fresh random examples (not derandomized) until the time budget is spent; the first check after the
    # deadline raises _BudgetSpent, which ends the run (generate phase only: a real failure is reported
    # with its unshrunk example), so the run is bounded whatever the machine's load
    deadline = time.perf_counter() + THOROUGH_SECONDS
    counts = {"checked": 0}

    def check(pt):
        if time.perf_counter() > deadline:
            raise _BudgetSpent
        _check_point(pt)
        counts["checked"] += 1

    start = time.perf_counter()
    run = settings(max_examples=1_000_000, derandomize=False, deadline=None, database=None,
                   phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    try:
        given(whole_domain)(run(lambda pt: check(pt)))()
    except _BudgetSpent:
        pass
    print(f"\nthorough run: {counts['checked']} random examples checked in {time.perf_counter() - start:.0f} s "
          f"(budget {THOROUGH_SECONDS:.0f} s), 0 failures")
    assert counts["checked"] > 0


# ---------------------------------------------------------------------------------------------
# an independent 50-digit route: mpmath findroot on the five published equations

STATE = ("q", "m", "chi", "q_bar", "chi_bar")


def _published_reference(point, start, dps=50):
    """Errors from the PUBLISHED saddle point solved by mpmath.findroot at ``dps`` digits.

    Nothing of the solver is used: the five published equations (theory.forward.saddle_point
    ``numeric_published_map``, lambdified verbatim) with their moments in the published forms
    A1 = 1 + z g, B1 = g + z g', ... from g(z), g'(z) of the Marchenko-Pastur quadratic
    (``pool_transforms_mp``), solved for (q, m, chi, q_bar, chi_bar) by multidimensional Newton
    (numerical Jacobian) started from the float64 solution ``start``; then m_bar = 1 + z g, m0 = 1 + z g~,
    q0 by its published conjugate form, and the errors by the defining form (asymptotic_error).
    Only regular points (chi finite: lam > 0, or lam = 0 with tau > 1) have this form.
    Returns (errors, largest scaled residual of the published equations at the root).
    """
    from lowrank_icl.theory.forward.saddle_point import asymptotic_error, numeric_published_map
    from lowrank_icl.theory.forward.stieltjes import pool_transforms_mp

    z_fn, hats, rhs = numeric_published_map("mpmath")
    with mpmath.workdps(dps):
        a, t, k, r, s, lam = (mpmath.mpf(float(point[n])) for n in ("alpha", "tau", "kappa", "rho", "sigma", "lam"))
        prm = (a, t, k, s, lam)

        def moments(z):
            tr = pool_transforms_mp(z, k, r)
            g, dg = tr.g, tr.dg
            return tr, (g, dg, 1 + z * g, g + z * dg, 1 + 2 * z * g + z**2 * dg, 1 + z * (1 + z * g),
                        1 + 2 * z + 3 * z**2 * g + z**3 * dg)

        x0 = [mpmath.mpf(float(v)) for v in start]

        def F(*x):
            _tr, mo = moments(z_fn(*x, *prm))
            return [(rhs[n](*x, *mo, *prm) - xi) / x0i for n, xi, x0i in zip(STATE, x, x0)]

        x = mpmath.findroot(F, x0)
        residual = max(abs(v) for v in F(*x))
        z = z_fn(*x, *prm)
        tr, _mo = moments(z)
        h = {n: fn(*x, *prm) for n, fn in hats.items()}
        q, m, _chi, q_bar, _chi_bar = x
        gt, dgt = tr.g_tilde, tr.dg_tilde
        q0 = (h["chi_hat"] * (gt + z * dgt) / k + h["m_hat"] ** 2 * (1 + 2 * z * gt + z**2 * dgt)
              + h["chi_bar_hat"] * dgt / k) / h["q_hat"] ** 2
        errors = {"tm": asymptotic_error(m, q, q_bar, a, s), "idg": asymptotic_error(1 + z * gt, q0, q_bar, a, s),
                  "odg": asymptotic_error(1 + z * tr.g, q_bar, q_bar, a, s)}
        return errors, residual


def test_errors_against_the_published_equations_at_50_digits_on_the_hard_set(hard_reduced):
    # every regular point of the hard set (225 of 270: lam > 0, or lam = 0 with tau > 1); float64
    # errors against the independent route, relative (measured: max 2.0e-15; the claim is 1e-13)
    err = hard_reduced.errors()
    regular = np.nonzero((HARD["lam"] > 0) | (HARD["tau"] > 1))
    assert regular[0].size == 225
    worst = 0.0
    for i in zip(*regular):
        point = {**{k: HARD[k][i] for k in HARD}, "rho": 0.3, "sigma": 0.1}
        ref, residual = _published_reference(point, [getattr(hard_reduced, n)[i] for n in STATE])
        assert residual < 1e-40, point
        for name in ("tm", "idg", "odg"):
            worst = max(worst, abs(float((getattr(err, name)[i] - ref[name]) / ref[name])))
    assert worst < 1e-13, worst


@pytest.mark.parametrize("alpha", [1e4, 1e8, 1e12, 1e16])
@pytest.mark.parametrize("tau,kappa,rho", [(3.0, 2.0, 0.5), (10.0, 10.0, 0.5), (2.6, 0.4, 0.6)])
def test_vanishing_errors_against_the_published_equations_at_50_digits(alpha, tau, kappa, rho):
    # sigma = lam = 0: TM (and IDG for kappa > rho) vanish like 1/alpha, down to ~1e-17 at alpha = 1e16.
    # What is checked: the float64 errors, relative, against the published route at 50 digits, whose
    # defining form 1 - 2m + q loses log10(alpha) digits and the findroot stop leaves a residual
    # <= 1e-35: the reference keeps > 15 significant digits at alpha = 1e16, so 1e-13 is a real test
    # (measured <= 3.4e-16). (lam = 0, tau < 1 has chi = inf: not a regular point of the published form.)
    point = dict(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=0.0, lam=0.0)
    res = solve(**point)
    ref, residual = _published_reference(point, [getattr(res, n) for n in STATE])
    assert residual < 1e-35
    err = res.errors()
    for name in ("tm", "idg", "odg"):
        assert abs(float((getattr(err, name) - ref[name]) / ref[name])) < 1e-13, name


def test_hard_set_counts(hard_reduced):
    # the counts quoted in the README: the reduced solver converges on all 270 points (max residual
    # below 1.5e-15, measured 1.48e-15); the published damped iteration stops by its own rule on 190
    # and passes the residual test on 166
    assert int(np.sum(hard_reduced.converged)) == 270 and bool(np.all(hard_reduced.stopped))
    assert float(np.max(hard_reduced.residual)) < 1.5e-15
    damped = solve(**HARD, rho=0.3, sigma=0.1, method="damped")
    assert int(np.sum(damped.stopped)) == 190
    assert int(np.sum(damped.converged)) == 166


# ---------------------------------------------------------------------------------------------
# the stop rule terminates; only unstopped points are evaluated

def test_stop_rule_terminates_where_rounding_makes_newton_cycle():
    # G's rounding exceeds the old step test here: Newton alternated between two adjacent floats for
    # 200 iterations and reported stopped=False with converged=True
    res = solve(alpha=0.33516026509388425, tau=2, kappa=3.5938136638046276, rho=0.5, sigma=0.3, lam=0.1)
    assert bool(res.stopped) and bool(res.converged) and int(res.iterations) <= 10


def test_every_point_stops_by_the_rule():
    rng = np.random.default_rng(7)
    n = 20_000
    res = solve(alpha=10 ** rng.uniform(-2, 7, n), tau=10 ** rng.uniform(-2, 3, n), kappa=10 ** rng.uniform(-2, 3, n),
                rho=rng.uniform(1e-3, 1, n), sigma=rng.uniform(0, 5, n), lam=10 ** rng.uniform(-10, 3, n))
    assert np.all(res.stopped) and np.max(res.iterations) <= 20


def test_root_search_evaluates_only_unstopped_points(monkeypatch):
    from lowrank_icl.numerics.forward.solver import RankRPool

    evaluated = []
    real = RankRPool.root_moments

    def counting(self, nu, sel):
        evaluated.append(len(sel))
        return real(self, nu, sel)

    monkeypatch.setattr(RankRPool, "root_moments", counting)
    alpha, kappa = np.meshgrid(np.logspace(-1, 3, 50), np.logspace(-1, 1, 50))
    res = solve(alpha=alpha, tau=2.0, kappa=kappa, rho=0.5, sigma=0.3, lam=0.1)
    # one evaluation per point and iteration: a point that has stopped is not evaluated again
    assert sum(evaluated) == int(np.sum(res.iterations))
    assert evaluated[-1] < evaluated[0] == alpha.size


# ---------------------------------------------------------------------------------------------
# one result type family: the same fields, tolerance rule and JSON for rank r and spectra

def test_rank_r_and_spectrum_share_the_precision_and_tolerance_rules():
    from lowrank_icl.numerics import TaskSpectrum

    point = dict(alpha=4, tau=1.2, kappa=3, sigma=0.9, lam=0.1)
    spec = TaskSpectrum.low_rank(0.5)
    for kw in (dict(rho=0.5), dict(spectrum=spec)):
        with pytest.raises(ValueError, match="precision must be an integer >= 20"):
            solve(**point, **kw, precision=15)
    rank_r, general = solve(**point, rho=0.5, precision=30), solve(**point, spectrum=spec, precision=30)
    for res in (rank_r, general):
        assert res.tolerance == 1e-20 and bool(res.converged) and bool(res.stopped) and res.reason == ""
        assert res.precision == 30 and res.residual < 1e-25
    assert solve(**point, spectrum=spec).tolerance == solve(**point, rho=0.5).tolerance == 1e-10


def test_to_dict_keeps_the_precision_digits_and_names_parameters_and_version():
    import json

    from lowrank_icl.numerics import TaskSpectrum

    point = dict(alpha=4, tau=1.2, kappa=3, sigma=0.9, lam=0.1)
    for res in (solve(**point, rho=0.5, precision=30), solve(**point, spectrum=TaskSpectrum.low_rank(0.5),
                                                              precision=30)):
        out = json.loads(json.dumps(res.to_dict()))
        assert out["parameters"]["alpha"] == 4 and isinstance(out["version"], str)
        for name in ("tm", "idg", "odg"):
            digits = out["errors"][name].replace(".", "").split("e")[0].lstrip("0")
            assert len(digits) >= 29, (name, out["errors"][name])
        assert all(isinstance(v, str) for v in out["order_parameters"].values())
        assert out["stopped"] is True and out["reason"] == "" and out["tolerance"] == 1e-20


def test_reprs_stay_short_for_grids_and_spectra():
    from lowrank_icl.numerics import TaskSpectrum

    spec = TaskSpectrum.power_law(0.6, atoms=50)
    for kw in (dict(rho=0.5), dict(spectrum=spec)):
        one = repr(solve(alpha=4, tau=1.2, kappa=3, sigma=0.9, lam=0.1, **kw))
        grid = repr(solve(alpha=np.linspace(1, 5, 30)[:, None], tau=np.linspace(0.5, 3, 40), kappa=1.0, **kw))
        assert len(one) < 400 and len(grid) < 400, (one, grid)
        assert "converged 1200/1200" in grid and "max residual" in grid


def test_solve_takes_keywords_or_one_forward_params():
    with pytest.raises(TypeError):
        solve(1.0, 1.5, 1.0)
    with pytest.raises(ValueError, match="by keyword"):
        solve(1.0)
