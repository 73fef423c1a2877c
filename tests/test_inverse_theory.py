"""Inverse ICL theory: symbolic derivations (sympy + mpmath at 50 digits) and Monte Carlo checks.

Monte Carlo tolerances are 5 standard errors (a false alarm has probability < 1e-6 per check, seeds
fixed anyway) plus, where a large-dimension formula meets a finite size, the derived 1/D correction.
"""
import mpmath
import numpy as np
import pytest
import sympy as sp

from lowrank_icl.numerics.inverse import haar_orthogonal
from lowrank_icl.numerics.inverse import high_dim as HD
from lowrank_icl.numerics.inverse import risk as IT
from lowrank_icl.theory import inverse as T

Z5 = 5.0   # standard errors per Monte Carlo check


def _random_rotation(d, rng):
    return haar_orthogonal(d, d, rng)


def _spd(d, cond, rng):
    s = cond ** (np.arange(d) / max(d - 1, 1))
    s *= d / s.sum()
    Q = _random_rotation(d, rng)
    return (Q * s) @ Q.T


def _posterior_mean(X, Y, w0, U, Lambda, sigma):
    """Independent implementation of the ORE (normal equations in the r-dimensional span)."""
    A = X @ U
    P = sigma**2 * np.diag(1.0 / Lambda) + np.einsum("nir,nis->nrs", A, A)
    rhs = np.einsum("nir,ni->nr", A, Y - X @ w0)
    return w0 + np.linalg.solve(P, rhs[..., None])[..., 0] @ U.T


def _mp50(expr, values):
    """Evaluate a sympy expression at 50 significant digits."""
    return sp.N(expr.subs(values), 50)


# ----------------------------------------------------------------------------------------------
# 1. ORE posterior: error covariance = posterior covariance; bound
# ----------------------------------------------------------------------------------------------
def test_ore_error_covariance_equals_posterior_symbolic():
    cov, post = T.ore_error_covariance_symbolic(r=2, N=2)
    diff = (cov - post).applyfunc(sp.simplify)
    assert diff == sp.zeros(2, 2)
    rng = np.random.default_rng(11)
    for _ in range(3):   # random real points in the domain: any A, lambda > 0, sigma > 0
        vals = {s: sp.Float(str(rng.normal()), 50) for s in cov.free_symbols if s.name.startswith("a")}
        vals.update({s: sp.Float(str(rng.uniform(0.1, 3)), 50) for s in cov.free_symbols
                     if not s.name.startswith("a")})
        with mpmath.workdps(50):
            assert max(abs(_mp50(e, vals)) for e in (cov - post)) < sp.Float("1e-40")


def test_ore_conditional_risk_is_trace_posterior_mc():
    # fixed design X; average over v, eps: E[||w_hat - w||^2 | X] = tr Sigma_post
    rng = np.random.default_rng(1)
    d, r, N, sigma, n = 8, 3, 5, 0.4, 200_000
    U = _random_rotation(d, rng)[:, :r]
    Lambda = np.array([2.0, 1.0, 0.5])
    w0 = rng.normal(size=d)
    X = rng.standard_normal((N, d)) @ np.linalg.cholesky(_spd(d, 5.0, rng)).T
    W = w0 + (rng.standard_normal((n, r)) * np.sqrt(Lambda)) @ U.T
    Y = W @ X.T + sigma * rng.standard_normal((n, N))
    A = X @ U
    P = np.linalg.inv(sigma**2 * np.diag(1 / Lambda) + A.T @ A)
    W_hat = w0 + ((Y - X @ w0) @ A @ P.T) @ U.T     # posterior mean for the one fixed X
    e = np.sum((W_hat - W) ** 2, axis=1)
    theory = float(T.ore_conditional_risk(A[None], Lambda, sigma)[0])
    assert abs(e.mean() - theory) < Z5 * e.std(ddof=1) / np.sqrt(n)


def test_ore_risk_bound_holds_for_every_design():
    # deterministic inequality: tr Sigma_post <= sum 1/(1/lambda + N b/sigma^2) <= sigma^2 r/(N b),
    # b = lambda_min(A^T A / N) > 0 needs rank(A) = r, i.e. r <= N
    rng = np.random.default_rng(2)
    r, N, sigma = 4, 9, 0.3
    Lambda = np.array([3.0, 1.0, 1.0, 0.2])
    A = rng.standard_normal((500, N, r))
    b = np.linalg.eigvalsh(np.einsum("nir,nis->nrs", A, A) / N)[:, 0]
    risk = T.ore_conditional_risk(A, Lambda, sigma)
    bound = IT.ore_risk_bound(b, Lambda, sigma, N)
    assert np.all(risk <= bound * (1 + 1e-12))
    assert np.all(bound <= sigma**2 * r / (N * b) * (1 + 1e-12))
    # r > N: A^T A is singular, b = 0 and the risk stays at the unidentified prior variance
    A = rng.standard_normal((200, 3, r))
    assert np.allclose(np.linalg.eigvalsh(np.einsum("nir,nis->nrs", A, A))[:, 0], 0, atol=1e-10)
    risk0 = T.ore_conditional_risk(A, Lambda, 0.0)
    assert np.all(risk0 > 0.19)   # at least lambda_min: a (r-N)-dim subspace of v is unseen


def test_ore_exact_risk_matches_full_monte_carlo():
    # ore_risk averages tr Sigma_post over r x r Grams; compare with full d-dimensional sampling
    rng = np.random.default_rng(3)
    d, r, N, sigma, n = 40, 6, 20, 0.3, 20_000
    Sx = _spd(d, 10.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    Lambda = np.linspace(0.5, 1.5, r)
    w0 = np.ones(d) / np.sqrt(d)
    th = IT.ore_risk(Sx, U, Lambda, sigma, N, n_samples=20_000, seed=0)
    X = rng.standard_normal((n, N, d)) @ np.linalg.cholesky(Sx).T
    W = w0 + (rng.standard_normal((n, r)) * np.sqrt(Lambda)) @ U.T
    Y = np.einsum("nij,nj->ni", X, W) + sigma * rng.standard_normal((n, N))
    e = np.sum((_posterior_mean(X, Y, w0, U, Lambda, sigma) - W) ** 2, axis=1)
    se = np.hypot(e.std(ddof=1) / np.sqrt(n), th.sem)
    assert abs(e.mean() - th.risk) < Z5 * se


# ----------------------------------------------------------------------------------------------
# 2. ORE moments
# ----------------------------------------------------------------------------------------------
def test_ore_moments_mean_and_covariance_mc():
    rng = np.random.default_rng(4)
    d, r, N, sigma, n = 6, 3, 8, 0.8, 200_000
    Sx = _spd(d, 4.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    Lambda = np.array([1.5, 1.0, 0.5])
    w0 = rng.normal(size=d)
    mom = IT.ore_moments(Sx, U, Lambda, w0, sigma, N, n_samples=100_000, seed=1)
    X = rng.standard_normal((n, N, d)) @ np.linalg.cholesky(Sx).T
    W = w0 + (rng.standard_normal((n, r)) * np.sqrt(Lambda)) @ U.T
    Y = np.einsum("nij,nj->ni", X, W) + sigma * rng.standard_normal((n, N))
    W_hat = _posterior_mean(X, Y, w0, U, Lambda, sigma)
    mean = W_hat.mean(0)
    assert np.all(np.abs(mean - w0) < Z5 * W_hat.std(0, ddof=1) / np.sqrt(n))
    dev = W_hat - w0                       # true mean known: no estimation of the centre
    prod = np.einsum("ni,nj->nij", dev, dev)
    cov = prod.mean(0)
    se = np.sqrt(prod.var(0, ddof=1) / n + mom.C_sem**2 * sigma**4)
    assert np.all(np.abs(cov - mom.cov) < Z5 * se + 1e-12)
    # sigma^2 C is not negligible here: the check would fail with Cov = Sigma_w
    Sigma_w = (U * Lambda) @ U.T
    assert np.max(np.abs(cov - Sigma_w) / se) > 20


def test_ore_moment_approximations():
    rng = np.random.default_rng(5)
    d, r = 10, 3
    Sx = _spd(d, 3.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    Lambda = np.ones(r)
    # Jensen: E[(D + G)^{-1}] >= (D + E G)^{-1} in Loewner order
    m = IT.ore_moments(Sx, U, Lambda, np.zeros(d), 0.5, 12, n_samples=40_000, seed=0)
    gap = np.linalg.eigvalsh(U.T @ (m.C - m.C_large_N) @ U)
    # an eigenvalue moves by at most the spectral norm of the MC error <= r * (max entry error)
    assert gap.min() > -Z5 * m.C_sem.max() * r
    # small noise: C -> U S^{-1} U^T/(N - r - 1); the sigma^2 correction is below 1e-5 relative at sigma = 1e-3
    m = IT.ore_moments(Sx, U, Lambda, np.zeros(d), 1e-3, 12, n_samples=40_000, seed=0)
    assert np.all(np.abs(m.C - m.C_small_noise) < Z5 * m.C_sem + 1e-5 * np.abs(m.C_small_noise).max())


# ----------------------------------------------------------------------------------------------
# 3. Small-noise risk and the Marchenko-Pastur limit
# ----------------------------------------------------------------------------------------------
def test_inverse_chi2_mean_symbolic():
    value, N = T.inverse_chi2_mean_symbolic()
    assert sp.simplify(value - 1 / (N - 2)) == 0
    with mpmath.workdps(50):
        n = mpmath.mpf("7.3")
        quad = mpmath.quad(lambda x: x ** (n / 2 - 2) * mpmath.exp(-x / 2)
                           / (2 ** (n / 2) * mpmath.gamma(n / 2)), [0, mpmath.inf])
        assert abs(quad - 1 / (n - 2)) < mpmath.mpf("1e-40")


def test_inverse_wishart_mean_mc():
    rng = np.random.default_rng(6)
    r, N, n = 5, 30, 200_000
    S = _spd(r, 6.0, rng)
    G = IT.sample_design_gram(S, N, n, rng)
    tr = np.trace(np.linalg.inv(G), axis1=1, axis2=2)
    theory = np.trace(np.linalg.inv(S)) / (N - r - 1)
    assert abs(tr.mean() - theory) < Z5 * tr.std(ddof=1) / np.sqrt(n)


def test_small_noise_ore_risk_matches_exact():
    rng = np.random.default_rng(7)
    d, r, N = 30, 5, 25
    Sx = _spd(d, 10.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    for sigma in (1e-3, 1e-2):
        th = IT.ore_risk(Sx, U, np.ones(r), sigma, N, n_samples=40_000, seed=0)
        small = float(IT.ore_risk_small_noise(Sx, U, sigma, N))
        # exact = sigma^2 E tr(G + sigma^2 Lambda^{-1})^{-1}; first-order relative correction
        # sigma^2 E tr(G^{-2}) / E tr(G^{-1}) ~ sigma^2 / (N s_min(S)) with s_min(S) >= 0.1 here: < 10 sigma^2
        assert abs(th.risk - small) < Z5 * th.sem + small * 10 * sigma**2
        assert th.risk <= small + Z5 * th.sem      # adding sigma^2 Lambda^{-1} can only lower the trace


def test_mp_stieltjes_root_and_integral():
    m, mu, gamma = T.mp_stieltjes_symbolic()
    z = -mu   # m solves gamma z m^2 - (1 - gamma - z) m + 1 = 0
    assert sp.simplify(gamma * z * m**2 - (1 - gamma - z) * m + 1) == 0
    rng = np.random.default_rng(8)
    with mpmath.workdps(50):
        for g in (0.3, 0.7):   # gamma < 1: MP has no atom, integrate the density directly
            muv = rng.uniform(0.05, 2.0)
            lo, hi = (1 - mpmath.sqrt(g)) ** 2, (1 + mpmath.sqrt(g)) ** 2
            dens = lambda x: mpmath.sqrt((hi - x) * (x - lo)) / (2 * mpmath.pi * g * x)  # noqa: E731
            quad = mpmath.quad(lambda x: dens(x) / (x + muv), [lo, hi])
            sym = _mp50(m, {mu: sp.Float(muv, 50), gamma: sp.Float(g, 50)})
            assert abs(quad - mpmath.mpf(str(sym))) < mpmath.mpf("1e-30")
            assert abs(float(T.mp_stieltjes_negative(muv, g)) - float(quad)) < 1e-13 * float(quad)


def test_mp_limit_vs_deterministic_equivalent_and_small_noise():
    N = 200
    for gamma in (0.25, 0.5, 1.5):
        r = int(gamma * N)
        for sigma in (0.05, 0.5, 2.0):
            Q = HD.ore_deterministic_equivalent(np.eye(r), 0.7 * np.ones(r), sigma, N)[0]
            mp = float(IT.ore_risk_mp(sigma, gamma, N, prior_variance=0.7))
            assert abs(sigma**2 * np.trace(Q) / r - mp) < 1e-9 * mp
    # sigma -> 0, gamma < 1: MP gives sigma^2/(N - r); the finite-N inverse Wishart sigma^2/(N - r - 1)
    mp = float(IT.ore_risk_mp(1e-4, 0.25, N))
    assert abs(mp - 1e-8 / (N - 50)) < 1e-6 * mp
    # gamma > 1, sigma -> 0: the unidentified prior fraction lam (1 - 1/gamma)
    assert abs(float(IT.ore_risk_mp(1e-6, 2.0, N, prior_variance=0.7)) - 0.35) < 1e-6


def test_mp_limit_vs_finite_N_monte_carlo():
    # isotropic S = I, Lambda = I: tr Sigma_post / r at finite N against the MP limit. The finite-N
    # correction is relative 1/(N - r - 1) at small noise (sigma^2/(N-r-1) vs sigma^2/(N-r)); at
    # larger mu the resolvent is smoother and the correction smaller, so allow 1/(N - r - 1) + 5 SE.
    gamma, N = 0.25, 160
    r = int(gamma * N)
    for sigma in (0.05, 1.0, 4.0):
        th = IT.ore_risk(np.eye(r), np.eye(r), np.ones(r), sigma, N, n_samples=4000, seed=2)
        mp = float(IT.ore_risk_mp(sigma, gamma, N)) * r
        assert abs(th.risk - mp) < Z5 * th.sem + mp / (N - r - 1)


# ----------------------------------------------------------------------------------------------
# 4. Fourth moment identity and the optimal one-layer LT
# ----------------------------------------------------------------------------------------------
def test_fourth_moment_isserlis_symbolic():
    lhs, rhs, S, B = T.fourth_moment_symbolic(d=2)
    assert (lhs - rhs).applyfunc(sp.expand) == sp.zeros(2, 2)
    lhs3, rhs3, S3, B3 = T.fourth_moment_symbolic(d=3)
    rng = np.random.default_rng(9)
    syms = sorted(lhs3.free_symbols | rhs3.free_symbols, key=str)
    vals = {s: sp.Float(str(rng.normal()), 50) for s in syms}
    with mpmath.workdps(50):
        assert max(abs(_mp50(e, vals)) for e in (lhs3 - rhs3)) < sp.Float("1e-40")


def test_fourth_moment_identity_mc():
    rng = np.random.default_rng(10)
    d, N, n = 3, 4, 400_000
    Sx = _spd(d, 4.0, rng)
    B = rng.normal(size=(d, d))
    B = B + B.T
    X = rng.standard_normal((n, N, d)) @ np.linalg.cholesky(Sx).T
    G = np.einsum("nia,nib->nab", X, X)
    samples = G @ B @ G
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(mean - IT.fourth_moment(Sx, B, N)) < Z5 * se)


def test_lt1_isotropic_closed_form_symbolic():
    Rstar, closed, _ = T.lt1_risk_symbolic(r=2)
    assert sp.simplify(Rstar - closed) == 0
    rng = np.random.default_rng(12)
    d, r, N, sigma = 12, 4, 9, 0.6
    U = _random_rotation(d, rng)[:, :r]
    opt = IT.lt1_optimal(np.eye(d), U @ U.T * 1.3, np.zeros(d), sigma, N)
    assert abs(opt.risk - float(IT.lt1_risk_isotropic(sigma, r, N, prior_variance=1.3))) < 1e-12


def test_lt1_optimum_is_stationary_and_global():
    rng = np.random.default_rng(13)
    d, r, N, sigma = 7, 3, 5, 0.4
    Sx = _spd(d, 8.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    Sw = (U * np.array([2.0, 1.0, 0.3])) @ U.T
    w0 = rng.normal(size=d)
    opt = IT.lt1_optimal(Sx, Sw, w0, sigma, N)
    assert np.allclose(opt.b, w0)
    assert abs(IT.lt1_risk(opt.Gamma, opt.b, Sx, Sw, w0, sigma, N) - opt.risk) < 1e-12 * opt.risk
    for _ in range(20):   # every perturbation of (b, Gamma) raises the exact risk
        dG = 1e-3 * rng.normal(size=(d, d))
        db = 1e-3 * rng.normal(size=d)
        assert IT.lt1_risk(opt.Gamma + dG, opt.b + db, Sx, Sw, w0, sigma, N) > opt.risk
    # Kronecker form of the stationarity equation: (F kron I) vec(Gamma) = vec(Sigma_w Sigma_x)
    F = (N + 1) / N * Sx @ Sw @ Sx + (np.trace(Sw @ Sx) + sigma**2) / N * Sx
    vecG = np.linalg.solve(np.kron(np.eye(d), F.T), (Sw @ Sx).reshape(-1))
    assert np.allclose(vecG.reshape(d, d), opt.Gamma, atol=1e-10)


def _lt1_predict(b, Gamma, X, Y):
    N = X.shape[1]
    g = np.einsum("nij,ni->nj", X, Y - X @ b) / N
    return b + g @ Gamma.T


def test_lt1_brute_force_minimization_matches_closed_form():
    # minimize the empirical supervised loss over (b, Gamma) by exact alternating least squares
    rng = np.random.default_rng(14)
    d, r, N, sigma, n = 3, 2, 4, 0.5, 100_000
    Sx = _spd(d, 5.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    Lambda = np.array([1.5, 0.5])
    Sw = (U * Lambda) @ U.T
    w0 = np.array([0.5, -0.3, 0.2])
    X = rng.standard_normal((n, N, d)) @ np.linalg.cholesky(Sx).T
    W = w0 + (rng.standard_normal((n, r)) * np.sqrt(Lambda)) @ U.T
    Y = np.einsum("nij,nj->ni", X, W) + sigma * rng.standard_normal((n, N))
    Shat = np.einsum("nia,nib->nab", X, X) / N
    h = np.einsum("nij,ni->nj", X, Y) / N
    b, Gamma = np.zeros(d), np.zeros((d, d))
    for _ in range(40):   # block coordinate descent on a biconvex loss; converged well before 40
        g = h - Shat @ b                              # w_hat - w = (b - w) + Gamma g
        t = W - b
        Gamma = np.linalg.solve(g.T @ g, g.T @ t).T
        K = np.eye(d) - Gamma @ Shat                  # w_hat - w = K b - (w - Gamma h)
        rhs = W - h @ Gamma.T
        b = np.linalg.solve(np.einsum("nji,njk->ik", K, K), np.einsum("nji,nj->i", K, rhs))
    opt = IT.lt1_optimal(Sx, Sw, w0, sigma, N)
    loss_hat = np.sum((_lt1_predict(b, Gamma, X, Y) - W) ** 2, axis=1)
    loss_opt = np.sum((_lt1_predict(opt.b, opt.Gamma, X, Y) - W) ** 2, axis=1)
    # the in-sample minimum lies below the sample loss of the true optimum (it is a minimum) ...
    assert loss_hat.mean() <= loss_opt.mean() + 1e-12
    # ... and both agree with the closed-form risk within 5 SE (overfitting bias ~ R p/n = 1e-4 R)
    assert abs(loss_opt.mean() - opt.risk) < Z5 * loss_opt.std(ddof=1) / np.sqrt(n)
    assert abs(loss_hat.mean() - opt.risk) < Z5 * loss_hat.std(ddof=1) / np.sqrt(n)
    # the fitted parameters have exact excess risk of order R p/n (p = d + d^2 = 12); allow 10x
    excess = IT.lt1_risk(Gamma, b, Sx, Sw, w0, sigma, N) - opt.risk
    assert 0 <= excess < 10 * opt.risk * (d + d * d) / n


def test_lt1_risk_at_stated_size_mc():
    # d = 100, N = 50, r = 10, condition number 10: closed form vs sampled contexts
    rng = np.random.default_rng(15)
    d, r, N, sigma, n = 100, 10, 50, 0.1, 3000
    Sx = _spd(d, 10.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    Sw = U @ U.T
    w0 = np.ones(d) / np.sqrt(d)
    opt = IT.lt1_optimal(Sx, Sw, w0, sigma, N)
    X = rng.standard_normal((n, N, d)) @ np.linalg.cholesky(Sx).T
    W = w0 + rng.standard_normal((n, r)) @ U.T
    Y = np.einsum("nij,nj->ni", X, W) + sigma * rng.standard_normal((n, N))
    e = np.sum((_lt1_predict(opt.b, opt.Gamma, X, Y) - W) ** 2, axis=1)
    assert abs(e.mean() - opt.risk) < Z5 * e.std(ddof=1) / np.sqrt(n)


def test_lt1_output_moments_mc():
    # E w_hat = w0, Cov(w_hat) = Sigma_w Sigma_x Gamma*^T (rank r), tr Cov = tr Sigma_w - R*
    rng = np.random.default_rng(16)
    d, r, N, sigma, n = 5, 2, 6, 0.5, 200_000
    Sx = _spd(d, 6.0, rng)
    U = _random_rotation(d, rng)[:, :r]
    Sw = (U * np.array([1.2, 0.6])) @ U.T
    w0 = rng.normal(size=d)
    opt = IT.lt1_optimal(Sx, Sw, w0, sigma, N)
    assert abs(np.trace(opt.cov) - (np.trace(Sw) - opt.risk)) < 1e-12
    assert np.linalg.matrix_rank(opt.cov, tol=1e-10) == r
    X = rng.standard_normal((n, N, d)) @ np.linalg.cholesky(Sx).T
    W = w0 + (rng.standard_normal((n, r)) * np.sqrt([1.2, 0.6])) @ U.T
    Y = np.einsum("nij,nj->ni", X, W) + sigma * rng.standard_normal((n, N))
    dev = _lt1_predict(opt.b, opt.Gamma, X, Y) - w0
    assert np.all(np.abs(dev.mean(0)) < Z5 * dev.std(0, ddof=1) / np.sqrt(n))
    prod = np.einsum("ni,nj->nij", dev, dev)
    assert np.all(np.abs(prod.mean(0) - opt.cov) < Z5 * prod.std(0, ddof=1) / np.sqrt(n))


# ----------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------
def test_inputs_are_validated():
    with pytest.raises(ValueError, match="sigma"):
        IT.ore_risk(np.eye(3), np.eye(3)[:, :1], 1.0, -1.0, 5)
    with pytest.raises(ValueError, match="U"):
        IT.ore_risk(np.eye(3), 2 * np.eye(3)[:, :1], 1.0, 0.1, 5)
    with pytest.raises(ValueError, match="N"):
        IT.ore_risk_small_noise(np.eye(3), np.eye(3)[:, :2], 0.1, 3)   # needs N > r + 1
    with pytest.raises(ValueError, match="gamma"):
        IT.ore_risk_mp(0.1, 0.0, 10)
    with pytest.raises(ValueError, match="Sigma_x"):
        IT.lt1_optimal(np.ones((3, 2)), np.eye(3), np.zeros(3), 0.1, 5)
    with pytest.raises(ValueError, match="w0"):
        IT.lt1_optimal(np.eye(3), np.eye(3), np.zeros(2), 0.1, 5)
    # vectorized in sigma
    out = IT.ore_risk_mp(np.array([0.1, 0.2]), 0.5, 20)
    assert out.shape == (2,) and out[0] < out[1]
