"""Gradient flow and gradient descent of the reduced model: the exact finite-D curves and the theory."""
import numpy as np
import pytest

from lowrank_icl.theory import SecondMoment, order_summaries
from lowrank_icl.validation.forward.flow import (curve_summaries, descent_gamma, explicit_descent, flow_gamma,
                                                 flow_weights, largest_stable_step, simulate_flow, spectral_basis)
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import sample_pretraining, sizes


@pytest.fixture(scope="module")
def small_data():
    s = sizes(8, 2, 2, 0.8, 0.5)
    return s, sample_pretraining(s, 0.3, 0)


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("method", ["eigh", "lanczos"])
def test_flow_at_infinite_time_is_the_ridge_solution(small_data, method):
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method=method, tol=1e-13)
    ridge = fit_ridge(d.x, d.h, d.y, 0.05, s.n_tasks, method="primal")
    assert basis.converged
    assert _rel(flow_gamma(basis, [np.inf])[0], ridge.gamma) < 1e-10


def test_flow_at_lam_zero_below_interpolation_is_the_minimum_norm_interpolator():
    s = sizes(6, 1.5, 0.6, 1.0, 0.5)
    d = sample_pretraining(s, 0.2, 3)
    basis = spectral_basis(d, 0.0, s.n_tasks, method="eigh")
    ridge = fit_ridge(d.x, d.h, d.y, 0.0, s.n_tasks, method="dual")
    assert _rel(flow_gamma(basis, [np.inf])[0], ridge.gamma) < 1e-9
    # at finite time the flow stays in the row space of the design (no null-space component)
    g = flow_gamma(basis, [3.0])[0].ravel()
    from lowrank_icl.validation.forward.ridge import design_matrix
    Phi = design_matrix(d.x, d.h)
    row_space = Phi.T @ np.linalg.lstsq(Phi.T, g, rcond=None)[0]
    assert np.abs(row_space - g).max() < 1e-10 * np.abs(g).max()


def test_lanczos_equals_eigh_at_every_time(small_data):
    s, d = small_data
    times = [0.01, 0.3, 2.0, 30.0]
    a = flow_gamma(spectral_basis(d, 0.05, s.n_tasks, method="eigh"), times)
    b = flow_gamma(spectral_basis(d, 0.05, s.n_tasks, method="lanczos", tol=1e-13), times)
    for k in range(len(times)):
        assert _rel(b[k], a[k]) < 1e-9


def test_spectral_descent_equals_explicit_descent(small_data):
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method="eigh")
    eta = 0.9 * largest_stable_step(basis)   # near the stability limit: the (1 - eta theta)^k < 0 modes matter
    ex = explicit_descent(d, 0.05, s.n_tasks, eta, 40, record=(1, 7))
    for k in (1, 7, 40):
        assert _rel(descent_gamma(basis, [k], eta)[0], ex[k]) < 1e-11


def test_flow_against_explicit_descent_with_tiny_steps(small_data):
    """GD approaches the flow at rate O(eta): halving eta halves the gap, which is small."""
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method="eigh")
    target = flow_gamma(basis, [1.0])[0]
    gaps = []
    for eta in (4e-3, 2e-3):
        k = int(round(1.0 / eta))
        gaps.append(_rel(explicit_descent(d, 0.05, s.n_tasks, eta, k)[k], target))
    assert gaps[0] < 1e-3
    assert 1.9 < gaps[0] / gaps[1] < 2.1


def test_curve_summaries_equal_order_summaries_of_each_gamma(small_data):
    s, d = small_data
    basis = spectral_basis(d, 0.05, s.n_tasks, method="lanczos", tol=1e-12)
    times = np.array([0.1, 1.0, 10.0])
    summ = curve_summaries(basis, flow_weights(basis.theta, times), d.pool, d.subspace)
    for k, G in enumerate(flow_gamma(basis, times)):
        pool = order_summaries(G, SecondMoment.pool(d.pool))
        sub = order_summaries(G, SecondMoment.subspace(d.subspace))
        iso = order_summaries(G, None)
        for mine, ref in ((summ["q"][k], pool["q"]), (summ["m"][k], pool["m"]), (summ["q0"][k], sub["q"]),
                          (summ["m0"][k], sub["m"]), (summ["q_bar"][k], iso["q"]), (summ["m_bar"][k], iso["m"])):
            assert abs(mine - ref) <= 1e-12 * max(1.0, abs(ref))


def test_simulate_flow_descent_refuses_an_unstable_step():
    with pytest.raises(ValueError, match="largest stable step"):
        simulate_flow(dim=6, alpha=2, tau=2, kappa=1, rho=0.5, sigma=0.3, lam=0.1, steps=[10], lr=10.0, seeds=1)
    with pytest.raises(ValueError, match="time"):
        simulate_flow(dim=6, alpha=2, tau=2, kappa=1, rho=0.5, sigma=0.3, lam=0.1, time=[-1.0], seeds=1)


def test_simulate_flow_starts_at_the_null_predictor_and_ends_at_simulate():
    from lowrank_icl.validation.forward.simulate import simulate
    kw = dict(dim=8, alpha=2, tau=2, kappa=0.8, rho=0.5, sigma=0.3, lam=0.05, seeds=range(3))
    fl = simulate_flow(**kw, time=[0.0, np.inf])
    ref = simulate(**kw, tol=1e-12)
    err, err_ref = fl.errors(), ref.errors()
    for name in ("tm", "idg", "odg"):
        e = np.asarray(getattr(err, name).values)
        # Gamma(0) = 0: e = sigma^2 + t_C exactly
        t0 = np.asarray(fl.t_tm.values) if name == "tm" else 1.0
        assert np.allclose(e[:, 0], 0.3**2 + t0, rtol=1e-14)
        assert np.allclose(e[:, 1], np.asarray(getattr(err_ref, name).values), rtol=1e-8)


# ----------------------------------------------------------------------------------------------
# theory: derivations, the two-point reduction, the limits of the learning curves

def test_flow_derivations_hold_symbolically():
    import sympy as sp
    from lowrank_icl.theory.forward import flow as F
    sol = F.derive_flow_solution()
    assert sol["ode_residual"] == 0 and sol["initial"] == 0 and sol["contour"] == 0
    ridge = F.derive_complex_ridge()
    assert sp.simplify(ridge["lam_prime"] - (F.lam - F.tau * F.z / F.kappa)) == 0
    assert sp.simplify(F.derive_pool_divided_difference() - F.two_point_divided_difference_form()) == 0
    assert all(v == 0 for v in F.derive_two_point_integrals().values())
    assert F.derive_cross_training_error()["difference"] == 0
    slope = F.derive_initial_slope()
    assert sp.simplify(slope["m_tm"] - (1 / F.rho + 1 / F.kappa)) == 0 and slope["m_bar"] == 1
    assert F.derive_population_flow()["u_limit"] == -F.z


POINTS = [dict(alpha=2, tau=2, kappa=0.8, rho=0.5, sigma=0.3, lam=0.05),
          dict(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1),
          dict(alpha=2, tau=0.6, kappa=1.5, rho=1.0, sigma=0.2, lam=0.0),
          dict(alpha=3, tau=2, kappa=np.inf, rho=0.4, sigma=0.5, lam=0.0),
          dict(alpha=2.3, tau=1.7, kappa=0.5, rho=0.2, sigma=0.003, lam=3.0)]


@pytest.mark.parametrize("p", POINTS)
def test_two_point_at_equal_ridges_is_the_saddle_point(p):
    from lowrank_icl.numerics import solve
    from lowrank_icl.numerics.forward.flow import pool_transform, two_point
    sol = solve(**p)
    nu = float(sol.nu)
    t = pool_transform(nu, p["kappa"], p["rho"])
    tp = two_point(nu, t, nu, t, **{k: p[k] for k in ("tau", "kappa", "rho", "sigma", "alpha")})
    for mine, ref in ((tp["q"], sol.q), (tp["q0"], sol.q0), (tp["q_bar"], sol.q_bar), (tp["m1"], sol.m),
                      (tp["m0_1"], sol.m0), (tp["m_bar1"], sol.m_bar), (tp["E"], sol.training_error)):
        assert abs(float(mine) / float(ref) - 1) < 1e-12


def test_pool_divided_difference_against_the_transform_at_two_points():
    from lowrank_icl.numerics.forward.flow import pool_divided_difference, pool_transform
    from lowrank_icl.theory.forward.stieltjes import pool_transforms_by_quadrature
    for kappa, rho in ((0.8, 0.5), (3.0, 1.0), (0.3, 0.7)):
        nu1, nu2 = 0.4, 1.3
        t1, t2 = pool_transform(nu1, kappa, rho), pool_transform(nu2, kappa, rho)
        ref1 = float(pool_transforms_by_quadrature(-nu1, kappa, rho).g_tilde)
        ref2 = float(pool_transforms_by_quadrature(-nu2, kappa, rho).g_tilde)
        assert abs(t1 / ref1 - 1) < 1e-12 and abs(t2 / ref2 - 1) < 1e-12
        assert abs(pool_divided_difference(t1, t2, nu1, nu2, kappa, rho) / ((ref2 - ref1) / (nu1 - nu2)) - 1) < 1e-11


@pytest.fixture(scope="module")
def theory_curves():
    from lowrank_icl.numerics.forward.flow import flow_theory
    keys = ("alpha", "tau", "kappa", "rho", "sigma", "lam")
    arr = {k: np.array([p[k] for p in POINTS[:4]], dtype=float) for k in keys}
    times = np.array([0.0, 1e-4, 2e-4, 1.0, np.inf])
    return arr, times, flow_theory(**arr, time=times)


def test_flow_theory_converges_and_ends_at_solve(theory_curves):
    from lowrank_icl.numerics import solve
    arr, times, ft = theory_curves
    assert np.all(ft.converged), ft.reason
    sol = solve(**arr)
    err, ref = ft.errors(), sol.errors()
    for name in ("tm", "idg", "odg"):
        assert np.allclose(getattr(err, name)[:, -1], getattr(ref, name), rtol=1e-10, atol=0)


def test_flow_theory_starts_at_zero(theory_curves):
    """Gamma(0) = 0: the contour integral must cancel the ridge solution exactly (a wrong branch or a
    singularity inside the contour would leave a remainder)."""
    _, _, ft = theory_curves
    for name in ("q", "m", "q_bar", "m_bar", "q0", "m0"):
        assert np.all(np.abs(getattr(ft, name)[:, 0]) < 1e-10)


def test_flow_theory_initial_slope_is_the_population_gradient(theory_curves):
    """Gamma(t) = t S + O(t^2): m_TM'(0) = 1/rho + 1/kappa, m0'(0) = 1/rho, m_bar'(0) = 1; q = O(t^2)."""
    arr, times, ft = theory_curves
    h1, h2 = times[1], times[2]

    def slope(v):   # Richardson: removes the O(t) term of v(t)/t
        return 2 * v[:, 1] / h1 - v[:, 2] / h2
    with np.errstate(divide="ignore"):
        assert np.allclose(slope(ft.m), 1 / arr["rho"] + 1 / arr["kappa"], rtol=1e-6)
    assert np.allclose(slope(ft.m0), 1 / arr["rho"], rtol=1e-6)
    assert np.allclose(slope(ft.m_bar), 1.0, rtol=1e-6)
    assert np.all(np.abs(ft.q[:, 1]) < 10 * h1**2 * (1 + 1 / arr["rho"]) ** 2)


def test_flow_theory_infinite_tau_is_the_population_flow():
    from lowrank_icl.numerics.forward.flow import flow_theory
    from lowrank_icl.theory.forward.flow import derive_population_flow
    import sympy as sp
    from lowrank_icl.theory.forward import flow as F
    times = np.array([0.3, 1.0, 4.0])
    rho, sigma, alpha, tau = 0.4, 0.5, 3.0, 1e7
    ft = flow_theory(alpha=alpha, tau=tau, kappa=np.inf, rho=rho, sigma=sigma, lam=0.0, time=times)
    pop = derive_population_flow()
    c = (1 + sigma**2) / alpha
    for name in ("m0", "q0", "m_bar", "q_bar", "m", "q"):
        ref = np.array([float(pop[name].subs({F.t: tt, F.rho: rho, F.c: c})) for tt in times])
        assert np.allclose(getattr(ft, name), ref, rtol=1e-5)
    del sp


def test_flow_theory_large_kappa_tends_to_infinite_kappa():
    from lowrank_icl.numerics.forward.flow import flow_theory
    times = np.array([0.5, 3.0, 20.0])
    kw = dict(alpha=2.0, tau=1.5, rho=0.5, sigma=0.4, lam=0.0, time=times)
    a = flow_theory(kappa=1e7, **kw)
    b = flow_theory(kappa=np.inf, **kw)
    for name in ("q", "m", "q0", "m0", "q_bar", "m_bar"):
        assert np.allclose(getattr(a, name), getattr(b, name), rtol=1e-5)


def test_flow_theory_quadrature_is_converged():
    from lowrank_icl.numerics.forward.flow import flow_theory
    kw = dict(alpha=2, tau=2, kappa=0.8, rho=0.5, sigma=0.3, lam=0.05, time=[0.1, 2.0, 50.0])
    a = flow_theory(**kw)
    b = flow_theory(**kw, nodes=2 * a.nodes)
    assert float(a.residual) < 1e-8
    for name in ("q", "m", "q0"):
        assert np.allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10)


def test_flow_theory_against_the_finite_dimensional_flow():
    """Theory against the exact finite-D flow: errors at three times after 1/D extrapolation
    (D = 8, 12, 16, 30 seeds each), |e_inf - theory| <= 3 SE (validation.stats.compare)."""
    from lowrank_icl.numerics.forward.flow import flow_theory
    from lowrank_icl.validation.stats import compare, extrapolate
    p = dict(alpha=1.5, tau=3.0, kappa=1.2, rho=0.6, sigma=0.4, lam=0.1)
    times = np.array([0.5, 2.0, 10.0])
    dims = (8, 12, 16)
    diffs = {}
    for D in dims:
        fl = simulate_flow(dim=D, **p, time=times, seeds=range(100, 130))
        s = fl.sizes
        th = flow_theory(alpha=s.alpha, tau=s.tau, kappa=s.kappa, rho=s.rho, sigma=p["sigma"], lam=p["lam"],
                         time=times).errors(alpha_test=s.context_length / D)
        sim = fl.errors()
        diffs[D] = {k: np.asarray(getattr(sim, k).values) - getattr(th, k) for k in ("tm", "idg", "odg")}
    for k in ("tm", "idg", "odg"):
        for i in range(times.size):
            d = [diffs[D][k][:, i] for D in dims]
            ex = extrapolate(dims, [v.mean() for v in d], [v.std(ddof=1) / np.sqrt(v.size) for v in d])
            assert compare(0.0, ex).passed, (k, times[i], ex)


def test_flow_theory_inner_values_against_50_digits():
    """Rounding test: the continued one-point solutions (u, g~) at contour nodes and the two-point
    formulas between them, float64 against the same equations at 50 digits (mpmath findroot from the
    float64 values; the two-point formulas evaluated on mpmath numbers)."""
    import mpmath
    from lowrank_icl.numerics import solve
    from lowrank_icl.numerics.forward import flow as fl
    p = dict(alpha=2.0, tau=2.0, kappa=0.8, rho=0.5, sigma=0.3, lam=0.05)
    c = (1 + p["sigma"] ** 2) / p["alpha"]
    lk = p["lam"] * p["kappa"]
    a1 = {k: np.atleast_1d(v) for k, v in dict(c=c, tau=p["tau"], kappa=p["kappa"], rho=p["rho"], lk=lk).items()}
    u0 = np.atleast_1d(float(solve(**p).nu) - c)
    z_lo, z_hi, u_lo, _ = fl.spectral_edges(u0, **a1)
    z, _, _ = fl._contour(z_lo, z_hi, 64)
    u_s = fl._bisect(lambda uu: z[:, 0].real - fl._z_of_u(uu, fl.pool_transform(c + uu, p["kappa"], p["rho"]), c,
                                                          p["tau"], lk, p["rho"]), u_lo, u0)
    uh, th, _ = fl._continue_along(z, u_s, fl.pool_transform(c + u_s, p["kappa"], p["rho"]), a1)
    k, r, tau = p["kappa"], p["rho"], p["tau"]
    picks = [5, 16, 27]
    with mpmath.workdps(50):
        mp_vals = []
        for j in picks:
            zj = mpmath.mpc(complex(z[0, j]))

            def eqs(u, t):
                nu = c + u
                return [-r * nu * t * t + (r - k - k * r * nu) * t + k * r,
                        tau * zj - lk + (tau - 1) * u + u * u * (r * t + (1 - r) / nu)]
            u_mp, t_mp = mpmath.findroot(eqs, (mpmath.mpc(complex(uh[0, j])), mpmath.mpc(complex(th[0, j]))))
            assert abs(complex(u_mp) - uh[0, j]) <= 1e-13 * abs(uh[0, j])
            assert abs(complex(t_mp) - th[0, j]) <= 1e-13 * abs(th[0, j])
            mp_vals.append((c + u_mp, t_mp))
        for a in range(len(picks)):
            for b in range(len(picks)):
                (n1, t1), (n2, t2) = mp_vals[a], mp_vals[b]
                exact = fl.two_point(n1, t1, mpmath.conj(n2), mpmath.conj(t2), tau=mpmath.mpf(tau), kappa=mpmath.mpf(k),
                                     rho=mpmath.mpf(r), sigma=mpmath.mpf(p["sigma"]), alpha=mpmath.mpf(p["alpha"]))
                f64 = fl.two_point(complex(n1), complex(t1), np.conj(complex(n2)), np.conj(complex(t2)), tau=tau,
                                   kappa=k, rho=r, sigma=p["sigma"], alpha=p["alpha"])
                for name in ("q", "q0", "q_bar", "E"):
                    ref = complex(exact[name].item() if hasattr(exact[name], "item") else exact[name])
                    assert abs(complex(f64[name]) - ref) <= 1e-12 * abs(ref), (name, a, b)


def test_solve_and_simulate_take_time():
    from lowrank_icl.numerics import solve
    from lowrank_icl.numerics.forward.flow import FlowTheory
    from lowrank_icl.validation.forward.flow import FlowSimulation
    from lowrank_icl.validation.forward.simulate import simulate
    import json
    kw = dict(alpha=2, tau=2, kappa=0.8, rho=0.5, sigma=0.3, lam=0.05)
    res = solve(**kw, time=[1.0, np.inf])
    assert isinstance(res, FlowTheory)
    assert abs(float(res.errors().idg[-1]) - float(solve(**kw).errors().idg)) < 1e-10
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["time"] == [1.0, "inf"] and len(doc["errors"]["idg"]) == 2
    with pytest.raises(ValueError, match="time="):
        solve(**kw, time=1.0, precision=30)
    sim = simulate(dim=6, **kw, time=[0.5, 2.0], seeds=2)
    assert isinstance(sim, FlowSimulation) and np.shape(sim.errors().idg.mean) == (2,)
    doc = json.loads(json.dumps(sim.to_dict()))
    assert doc["time"] == [0.5, 2.0] and len(doc["errors"]["tm"]["mean"]) == 2
    with pytest.raises(ValueError, match="time="):
        simulate(dim=6, **kw, time=[1.0], pool_repeats=2)


def test_cli_time_json_and_errors(capsys):
    import json
    from lowrank_icl.numerics import solve
    from lowrank_icl.validation.cli.main import main
    args = ["--alpha", "2", "--tau", "2", "--kappa", "0.8", "--rho", "0.5", "--sigma", "0.3", "--lam", "0.05"]
    assert main(["solve", *args, "--time", "2,inf", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["time"] == [2.0, "inf"] and doc["converged"] is True
    assert abs(doc["errors"]["idg"][1] - float(solve(alpha=2, tau=2, kappa=0.8, rho=0.5, sigma=0.3,
                                                      lam=0.05).errors().idg)) < 1e-10
    assert main(["simulate", "--dim", "6", *args, "--seeds", "0-2", "--time", "0.5,inf", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["time"] == [0.5, "inf"] and len(doc["errors"]["idg"]["values"]) == 3
    assert main(["simulate", "--dim", "6", *args, "--time", "1,-2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--time" in err
    assert main(["solve", *args, "--time", "1", "--precision", "30"]) == 2


def test_flow_theory_refuses_or_flags_what_it_cannot_do():
    from lowrank_icl.numerics.forward.flow import flow_theory
    ft = flow_theory(alpha=2, tau=1.0, kappa=0.8, rho=0.5, sigma=0.3, lam=0.0, time=[1.0])
    assert not ft.converged and "tau = 1" in str(ft.reason)
    with pytest.raises(ValueError, match="time"):
        flow_theory(alpha=2, tau=2, kappa=1, time=[])
    with pytest.raises(ValueError, match="time"):
        flow_theory(alpha=2, tau=2, kappa=1, time=[-1.0])


def test_descent_theory_first_step_and_small_steps():
    """Gradient descent in the theory: one step is exactly lr D b, whose linear order parameters are
    lr times the population slopes; tiny steps approach the flow at rate O(lr); a step above 2/z_hi is flagged."""
    from lowrank_icl.numerics.forward.flow import flow_theory
    kw = dict(alpha=2, tau=2, kappa=0.8, rho=0.5, sigma=0.3, lam=0.05)
    one = flow_theory(**kw, steps=[1], lr=0.1)
    assert one.converged
    assert abs(float(one.m[0]) - 0.1 * (1 / 0.5 + 1 / 0.8)) < 1e-10
    assert abs(float(one.m0[0]) - 0.1 / 0.5) < 1e-10 and abs(float(one.m_bar[0]) - 0.1) < 1e-10
    flow = flow_theory(**kw, time=[1.0]).errors().idg[0]
    gaps = [abs(flow_theory(**kw, steps=[round(1 / lr)], lr=lr).errors().idg[0] - flow) for lr in (0.02, 0.01)]
    assert gaps[0] < 1e-2 and 1.8 < gaps[0] / gaps[1] < 2.2
    bad = flow_theory(**kw, steps=[3], lr=1.0)
    assert not bad.converged and "diverges" in str(bad.reason)
