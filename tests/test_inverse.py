"""Inverse ICL (lowrank_icl.numerics.inverse): data conventions, estimators, hand-derived LT gradients."""
import warnings

import numpy as np
import pytest

from lowrank_icl.numerics.inverse import (InverseModel, InverseParams, InverseRegimeWarning, LT, LT_LOSSES, ORE,
                                          RE, TRE, input_spectrum, lt_forward, lt_loss_and_grad,
                                          mse_per_coordinate, posterior_mean)


def small_model(rng, d=12, N=8, r=2, sigma=0.2, cond=1.0, **kw):
    return InverseModel.draw(InverseParams(d=d, N=N, r=r, sigma=sigma, cond=cond, **kw), rng)


# --- parameters and data -------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(d=10, N=5, r=11), "r must be an integer >= 1 and <= 10"),
    (dict(d=10, N=0, r=2), "N must be an integer >= 1"),
    (dict(d=10, N=5, r=2, cond=0.5), "cond must be >= 1"),
    (dict(d=10, N=5, r=2, sigma=-1), "sigma must be >= 0"),
    (dict(d=10, N=5, r=2, Lambda=[1.0, 0.0]), "Lambda must be > 0"),
    (dict(d=10, N=5, r=2, Lambda=[1.0, 2.0, 3.0]), "Lambda must be a scalar or a vector of length 2"),
    (dict(d=10, N=5, r=2, w0=np.ones(3)), "w0 must be a scalar or a vector of length 10"),
])
def test_params_reject_out_of_domain(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InverseParams(**kwargs)


def test_params_warn_but_accept_r_at_least_N():
    with pytest.warns(InverseRegimeWarning, match="r=6 >= context length N=5"):
        p = InverseParams(d=10, N=5, r=6)
    assert p.r == 6 and issubclass(InverseRegimeWarning, UserWarning)


def test_input_spectrum_convention():
    s = input_spectrum(50, 30.0)
    assert s.sum() == pytest.approx(50, rel=1e-13)          # tr Sigma_x = d
    assert s.max() / s.min() == pytest.approx(30, rel=1e-12)  # condition number c_x
    assert np.allclose(np.diff(np.log(s)), np.log(30) / 49)    # log-spaced
    assert np.all(input_spectrum(7, 1.0) == 1.0)


def test_sampler_moments(rng):
    """Sample moments of x x^T and of w against Sigma_x and (w0, Sigma_w); tolerances 5 SE."""
    m = small_model(rng, d=6, N=5, r=2, cond=10.0, w0=2.0, Lambda=[2.0, 0.5])
    c = m.sample(4000, rng)
    flat = c.X.reshape(-1, 6)
    n_rows = flat.shape[0]
    emp = flat.T @ flat / n_rows
    # Var(x_i x_j) = S_ii S_jj + S_ij^2 for Gaussian x
    S = m.Sigma_x
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S ** 2) / n_rows)
    assert np.all(np.abs(emp - S) < 5 * se)
    se_w = np.sqrt(np.diag(m.Sigma_w) / len(c))
    assert np.all(np.abs(c.W.mean(0) - m.w0) < 5 * se_w + 1e-12)
    assert np.linalg.norm(m.w0) == pytest.approx(2.0, rel=1e-12)     # scalar w0 = its norm
    # noise: residual variance sigma^2, SE sigma^2 sqrt(2/n)
    resid = c.Y - np.einsum("nij,nj->ni", c.X, c.W)
    assert abs(resid.var() - m.sigma ** 2) < 5 * m.sigma ** 2 * np.sqrt(2 / resid.size)


# --- LT gradients ----------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LT_LOSSES)
@pytest.mark.parametrize("K", [1, 3])
def test_lt_gradient_matches_finite_differences(rng, loss, K):
    d, N, n = 5, 4, 7
    X = rng.standard_normal((n, N, d))
    Y = rng.standard_normal((n, N))
    W = rng.standard_normal((n, d))
    Xv, Yv = rng.standard_normal((n, 2, d)), rng.standard_normal((n, 2))
    theta = np.concatenate([rng.standard_normal(d), 0.3 * rng.standard_normal(K * d * d)])
    kw = dict(W=W, X_val=Xv, Y_val=Yv)
    _, grad = lt_loss_and_grad(theta, d, K, loss, X, Y, **kw)
    h = 1e-6
    fd = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        fd[i] = (lt_loss_and_grad(theta + e, d, K, loss, X, Y, **kw)[0]
                 - lt_loss_and_grad(theta - e, d, K, loss, X, Y, **kw)[0]) / (2 * h)
    # central differences: truncation O(h^2 f''') ~ 1e-12 relative, rounding ~ eps/h ~ 1e-10
    assert np.max(np.abs(fd - grad)) < 1e-7 * max(1.0, np.max(np.abs(grad)))


def test_lt_forward_one_step_is_preconditioned_gd(rng):
    d, N, n = 6, 4, 3
    X, Y = rng.standard_normal((n, N, d)), rng.standard_normal((n, N))
    b, G = rng.standard_normal(d), rng.standard_normal((1, d, d))
    w, _ = lt_forward(b, G, X, Y)
    for j in range(n):
        expected = b + G[0] @ X[j].T @ (Y[j] - X[j] @ b) / N
        assert np.allclose(w[1, j], expected, rtol=1e-13, atol=1e-13)


# --- estimators --------------------------------------------------------------------------------
def test_posterior_mean_two_forms_agree(rng):
    """v_hat via (sigma^2 Lambda^-1 + G)^-1 equals Sigma_post (XU)^T (Y - X w0)/sigma^2."""
    m = small_model(rng, d=8, N=5, r=3, sigma=0.3, Lambda=[2.0, 1.0, 0.5])
    c = m.sample(4, rng)
    got = posterior_mean(c.X, c.Y, m.w0, m.U, m.Lambda, m.sigma)
    for j in range(4):
        XU = c.X[j] @ m.U
        post = np.linalg.inv(np.diag(1 / m.Lambda) + XU.T @ XU / m.sigma ** 2)
        v = post @ XU.T @ (c.Y[j] - c.X[j] @ m.w0) / m.sigma ** 2
        assert np.allclose(got[j], m.w0 + m.U @ v, rtol=1e-11, atol=1e-12)


def test_ore_risk_equals_trace_of_posterior_covariance(rng):
    """E[||w_hat - w||^2 | X] = tr Sigma_post: Monte Carlo over (v, eps) at fixed X, 5 SE."""
    m = small_model(rng, d=10, N=6, r=3, sigma=0.5)
    X = rng.standard_normal((1, 6, 10)) * np.sqrt(m.s)
    reps = 4000
    Xr = np.repeat(X, reps, axis=0)
    W = m.w0 + (rng.standard_normal((reps, 3)) * np.sqrt(m.Lambda)) @ m.U.T
    Y = np.einsum("nij,nj->ni", Xr, W) + m.sigma * rng.standard_normal((reps, 6))
    err = np.sum((ORE.from_model(m).predict(Xr, Y) - W) ** 2, axis=1)
    XU = X[0] @ m.U
    tr_post = np.trace(np.linalg.inv(np.diag(1 / m.Lambda) + XU.T @ XU / m.sigma ** 2))
    assert abs(err.mean() - tr_post) < 5 * err.std() / np.sqrt(reps)
    assert ORE.from_model(m).conditional_risk(X)[0] * 10 == pytest.approx(tr_post, rel=1e-12)


def test_ore_law_of_total_covariance(rng):
    """Cov(w_hat) + U E_X[Sigma_post] U^T = Sigma_w (i.e. Cov(w_hat) = Sigma_w - sigma^2 C), mean w0.

    Monte Carlo over 20000 contexts; entrywise tolerance 5 SE of a sample covariance,
    SE(Cov_ij) <= sqrt((S_ii S_jj + S_ij^2)/n) with S = Sigma_w bounding Cov(w_hat).
    """
    m = small_model(rng, d=6, N=4, r=2, sigma=0.7, Lambda=[1.5, 0.5])
    c = m.sample(20000, rng)
    ore = ORE.from_model(m)
    W_hat = ore.predict(c.X, c.Y)
    lhs = np.cov(W_hat, rowvar=False) + m.U @ ore.posterior_covariance(c.X).mean(0) @ m.U.T
    S = m.Sigma_w
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S ** 2) / len(c))
    assert np.all(np.abs(lhs - S) < 5 * se + 1e-12)
    assert np.all(np.abs(W_hat.mean(0) - m.w0) < 5 * np.sqrt(np.diag(S) / len(c)) + 1e-12)


def test_ore_noiseless_posterior_covariance(rng):
    """sigma = 0: zero posterior covariance when r <= N; the prior on the unseen directions when r > N."""
    with pytest.warns(InverseRegimeWarning):
        m = small_model(rng, d=8, N=3, r=5, sigma=0.0)
    X = rng.standard_normal((2, 3, 8))
    post = ORE.from_model(m).posterior_covariance(X)
    assert np.allclose(np.linalg.eigvalsh(post)[:, :2], 0, atol=1e-10)   # r - N = 2 free directions
    assert np.all(np.trace(post, axis1=1, axis2=2) > 0)
    m2 = small_model(rng, d=8, N=5, r=3, sigma=0.0)
    assert np.allclose(ORE.from_model(m2).posterior_covariance(X[:, :, :8].repeat(2, axis=1)[:, :5]), 0,
                       atol=1e-10)


def test_ridge_gcv_matches_direct_minimization(rng):
    """The grid GCV choice agrees with a bounded scalar minimization of GCV from the primal form."""
    from scipy.optimize import minimize_scalar
    m = small_model(rng, d=12, N=8, r=2, sigma=2.0)
    c = m.sample(3, rng)
    re = RE(n_grid=2001)
    W_hat = re.predict(c.X, c.Y)
    for j in range(3):
        X, Y = c.X[j], c.Y[j]
        N, d = X.shape

        def gcv(log10lam):
            H = X @ np.linalg.solve(X.T @ X + N * 10 ** log10lam * np.eye(d), X.T)
            return np.sum((Y - H @ Y) ** 2) / N / (1 - np.trace(H) / N) ** 2

        # RE searches N lam in mean-eig(X X^T) x 10^[-10, 3]. With N < d, GCV is often flat or
        # monotone towards lam -> 0 (the interpolant), so compare GCV values, not locations: the
        # chosen lam must reach the minimum of a bounded scalar search over the same range to
        # within the grid's second-order error (spacing 0.0065 decades; relative 1e-3 is ample).
        lo = np.log10(np.trace(X @ X.T) / N / N) + re.span[0]
        hi = lo + re.span[1] - re.span[0]
        grid = np.linspace(lo, hi, 400)
        k = int(np.argmin([gcv(t) for t in grid]))
        best = minimize_scalar(gcv, bounds=(grid[max(k - 1, 0)], grid[min(k + 1, 399)]),
                               method="bounded", options=dict(xatol=1e-8)).x
        assert gcv(np.log10(re.lam_[j])) <= gcv(best) * (1 + 1e-3)
        # dual form X^T (X X^T + N lam I)^-1 Y by a direct solve (the primal solve loses ~1e-6 of
        # accuracy when lam sits at the lower end, cond(X^T X + N lam I) ~ 1e10)
        w_direct = X.T @ np.linalg.solve(X @ X.T + N * re.lam_[j] * np.eye(N), Y)
        assert np.allclose(W_hat[j], w_direct, rtol=1e-8, atol=1e-10)


def test_ridge_lcurve_runs_and_is_finite(rng):
    m = small_model(rng)
    c = m.sample(20, rng)
    W_hat = RE(method="lcurve").predict(c.X, c.Y)
    assert np.all(np.isfinite(W_hat))
    # the corner regularizes: it never returns the (unregularized) minimum-norm interpolant's norm blow-up
    assert np.mean(mse_per_coordinate(W_hat, c.W)) < np.mean(np.sum(c.W ** 2, 1) / c.W.shape[1])


def test_tre_recovers_rank_mean_and_noise(rng):
    m = small_model(rng, d=30, N=15, r=3, sigma=0.2)
    c = m.sample(4000, rng)
    tre = TRE().fit(c.X, c.Y)
    p = tre.prior_
    assert p.r == 3
    # subspace: cosines of the principal angles close to 1
    assert np.linalg.svd(m.U.T @ p.U, compute_uv=False).min() > 0.95
    # w0_hat: per-task moment estimates have covariance ~ (1+1/N) Sigma_w + (m2/N) Sigma_x^-1; 5 SE
    m2 = float(np.mean(c.Y ** 2))
    se = np.sqrt((np.diag(m.Sigma_w) * (1 + 1 / 15) + m2 / 15) / len(c))
    assert np.all(np.abs(p.w0 - m.w0) < 5 * se)
    assert p.sigma == pytest.approx(0.2, rel=0.25)


def test_every_estimator_on_a_small_case_and_lt_beats_ridge_widely(rng):
    """d=20 > N=10 > r=2: RE cannot use the cross-task prior; the trained LT must beat it by 5x."""
    m = small_model(rng, d=20, N=10, r=2, sigma=0.1)
    train, test = m.sample(1500, rng), m.sample(800, rng)
    errs = {}
    for name, est in [("RE", RE()), ("TRE", TRE()), ("ORE", ORE.from_model(m)),
                      ("LT", LT(K=2, loss="supervised", maxiter=200))]:
        est.fit(train.X, train.Y, train.W)
        e = mse_per_coordinate(est.predict(test.X, test.Y), test.W)
        errs[name] = (e.mean(), e.std() / np.sqrt(e.size))
    # ORE is the Bayes estimator: nothing beats it beyond noise (4 SE)
    for name in ("RE", "TRE", "LT"):
        assert errs[name][0] > errs["ORE"][0] - 4 * errs[name][1]
    assert errs["LT"][0] < errs["RE"][0] / 5
    assert errs["TRE"][0] < errs["RE"][0] / 5


@pytest.mark.parametrize("loss", ["unsupervised", "heldout"])
def test_lt_unsupervised_losses_train_without_w(rng, loss):
    m = small_model(rng, d=12, N=8, r=2, sigma=0.1)
    train = m.sample(600, rng)
    lt = LT(K=2, loss=loss, maxiter=100).fit(train.X, train.Y)   # no W given
    assert lt.train_.iterations >= 1 and lt.train_.seconds > 0 and np.isfinite(lt.train_.loss)
    assert lt.predict(train.X[:3], train.Y[:3]).shape == (3, 12)


def test_estimator_errors_are_value_errors():
    with pytest.raises(ValueError, match="needs train_W"):
        LT(loss="supervised").fit(np.zeros((2, 3, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="loss must be one of"):
        LT(loss="bogus")
    with pytest.raises(ValueError, match="X must have shape"):
        RE().predict(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="method must be"):
        RE(method="aic")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InverseParams(d=10, N=5, r=4)      # r < N: no warning


# --- experiments and CLI ---------------------------------------------------------------------------
def test_slope_fit_recovers_a_power_law_and_its_interval_covers(rng):
    from lowrank_icl.validation.inverse.experiments import fit_loglog_slope
    x = np.array([0.01, 0.03, 0.1, 0.3, 1.0])
    exact = 3.0 * x ** 2
    fit = fit_loglog_slope(x, exact, 1e-3 * exact)
    assert fit.slope == pytest.approx(2.0, abs=1e-10) and fit.chi2_dof < 1e-12
    # noisy points with the stated SE: the 95% interval must cover the true slope (seeded draw)
    noisy = exact * np.exp(0.05 * rng.standard_normal(5))
    fit = fit_loglog_slope(x, noisy, 0.05 * noisy)
    assert fit.ci[0] < 2.0 < fit.ci[1]


def test_cli_inverse_json_contract():
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli.main", "inverse", "--dim", "12",
                          "--context", "8", "--rank", "2", "--tasks", "200", "--layers", "1", "--loss",
                          "supervised", "--test", "100", "--seeds", "0,1", "--json"],
                         capture_output=True, text=True, check=True, timeout=120)
    res = json.loads(out.stdout)
    for name in ("RE", "TRE", "LT-supervised", "ORE"):
        assert res["mse"][name]["mean"] > 0 and res["mse"][name]["sem"] > 0 and res["mse"][name]["seeds"] == 2
    assert res["train"]["LT-supervised"]["converged"] is True
    assert res["rank_recovered"] == [2, 2] and res["seconds"] > 0
    assert res["parameters"]["seeds"] == [0, 1] and res["parameters"]["layers"] == 1 and "version" in res
    assert res["ore_theory"] > 0 and res["lt1_theory"] > 0      # K = 1 supervised: both apply
    bad = subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli.main", "inverse", "--cond", "0.5"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "cond must be >= 1" in bad.stderr


def test_params_replace_revalidates():
    p = InverseParams(d=10, N=6, r=2, sigma=0.2)
    q = p.replace(r=4)
    assert q.r == 4 and q.Lambda.shape == (4,) and q.sigma == 0.2 and np.array_equal(q.w0, p.w0)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        p.replace(sigma=-1.0)
    with pytest.raises(ValueError, match="changing r needs a new Lambda"):
        InverseParams(d=10, N=6, r=2, Lambda=[1.0, 2.0]).replace(r=3)


# --- against the closed-form risks (numerics/inverse/risk.py) ---------------------
def test_ore_monte_carlo_matches_theory_risk(rng):
    """ORE test MSE vs the exact risk E_X tr Sigma_post / d: 5 combined SE (MC here and in the theory)."""
    from lowrank_icl.numerics.inverse import ore_risk_per_coordinate
    from lowrank_icl.numerics.inverse.risk import ore_risk
    m = small_model(rng, d=16, N=10, r=3, sigma=0.3, cond=5.0)
    c = m.sample(6000, rng)
    e = mse_per_coordinate(ORE.from_model(m).predict(c.X, c.Y), c.W)
    th = ore_risk(m.Sigma_x, m.U, m.Lambda, m.sigma, m.N)
    se = np.hypot(e.std(ddof=1) / np.sqrt(e.size), th.sem / m.d)
    assert abs(e.mean() - ore_risk_per_coordinate(m)) < 5 * se


def test_trained_one_layer_lt_approaches_the_optimal_one_layer_lt(rng):
    """K = 1, supervised: the exact risk of the trained (b, Gamma) is >= the closed-form optimum
    (optimality) and within 15 % of it at n_s = 4000 (finite-sample excess ~ #params/n_s = 156/4000 ~ 4 %)."""
    from lowrank_icl.numerics.inverse.risk import lt1_optimal, lt1_risk
    m = small_model(rng, d=12, N=8, r=2, sigma=0.3)
    train = m.sample(4000, rng)
    lt = LT(K=1, loss="supervised", maxiter=300).fit(train.X, train.Y, train.W)
    best = lt1_optimal(m.Sigma_x, m.Sigma_w, m.w0, m.sigma, m.N).risk
    got = lt1_risk(lt.Gammas[0], lt.b, m.Sigma_x, m.Sigma_w, m.w0, m.sigma, m.N)
    assert best * (1 - 1e-9) <= got < 1.15 * best
