"""Proof of the reduction: the explicit solution satisfies every published saddle-point equation."""
import functools

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from lowrank_icl.numerics import solve
from lowrank_icl.theory.forward import saddle_point as spm
from lowrank_icl.theory.forward.stieltjes import pool_moments_mp


# (alpha, tau, kappa, rho, sigma, lam) over the physical domain, lam = 0 included; the
# interpolation threshold (lam = 0, tau = 1: E = +inf by design, tested in test_solver) excluded
points = st.tuples(st.floats(-1, 4), st.floats(-1, 1.5), st.floats(-1, 1.5), st.floats(0.05, 1.0),
                   st.floats(0, 1.5), st.one_of(st.just(None), st.floats(-6, 1))).map(
    lambda p: (10**p[0], 10**p[1], 10**p[2], p[3], p[4], 0.0 if p[5] is None else 10**p[5])).filter(
    lambda p: not (p[5] == 0 and p[1] == 1))


def test_delta_equation_reduces_to_scalar_equation():
    assert sp.simplify(spm.derive_scalar_equation() - spm.scalar_equation()) == 0


def test_scalar_equation_is_strictly_increasing_per_spectral_atom():
    s = sp.Symbol("s", nonnegative=True)
    c = spm.c_implicit
    expected = (s + c) / (s + c + spm.u) ** 2 + spm.lam * spm.kappa / spm.u**2  # manifestly > 0
    assert sp.simplify(spm.derive_root_slope() - expected) == 0


def _hats_at_root():
    """Conjugates at the root: q_hat = lam/u, with lam eliminated through G(u) = 0."""
    lam_at_root = spm.u * (spm.tau - 1 + spm.u * spm.g) / spm.kappa
    sol = spm.derive_explicit_solution()
    qh = lam_at_root / spm.u
    chih = sol.order["chi_hat_over_q_hat2"] * qh**2
    return lam_at_root, sol, {"q_hat": qh, "m_hat": qh, "q_bar_hat": (1 + spm.sigma**2) * qh / spm.alpha,
                              "chi_hat": chih, "chi_bar_hat": (1 + spm.sigma**2) * chih / spm.alpha}


def test_explicit_solution_satisfies_published_equations_symbolically():
    lam_at_root, sol, hats = _hats_at_root()
    pub = spm.published_saddle_point()
    H = spm.HAT_SYMBOLS
    z_root = -spm.c_implicit - spm.u
    sub_hats = {H[k]: v for k, v in hats.items()}
    state = {spm.q: sol.order["q"], spm.m: sol.order["m"], spm.q_bar: sol.order["q_bar"],
             spm.chi: sol.order["chi_times_q_hat"] / hats["q_hat"],
             spm.chi_bar: sol.order["chi_bar_times_q_hat"] / hats["q_hat"]}
    defs = spm.MOMENT_DEFINITIONS
    state = {k: v.subs(defs) for k, v in state.items()}
    hats = {k: v.subs(defs) for k, v in hats.items()}
    sub_hats = {H[k]: v for k, v in hats.items()}
    for var, rhs in pub.rhs.items():
        value = rhs.subs(sub_hats).subs(defs).subs(spm.zs, z_root)
        assert sp.simplify(value - state[var].subs(spm.zs, z_root)) == 0, var
    # the conjugates are those of the published definitions evaluated at this state
    for name, expr in pub.hats.items():
        value = expr.subs(state).subs(spm.zs, z_root)
        assert sp.simplify(value - hats[name].subs(spm.zs, z_root)) == 0, name
    # and z of the published definition is -c - u once lam takes its root value
    z_pub = pub.z.subs(sub_hats).subs(spm.lam, lam_at_root)
    assert sp.simplify(z_pub - z_root) == 0


def test_training_error_closed_form():
    sol = spm.derive_explicit_solution()
    signal = (1 + spm.sigma**2) - 2 * sol.order["m"] + sol.parts["q"]["signal"] \
        + spm.c_implicit * sol.parts["q_bar"]["signal"]
    defs = spm.MOMENT_DEFINITIONS
    assert sp.simplify((sol.training_error - signal / (1 - sol.stiffness / spm.tau)).subs(defs)) == 0
    for name in ("q", "q_bar"):
        assert sp.simplify((sol.order[name] - sum(sol.parts[name].values())).subs(defs)) == 0


def test_stiffness_is_spectral_integral_per_atom():
    s = sp.Symbol("s", nonnegative=True)
    sol = spm.derive_explicit_solution()
    nu = spm.c_implicit + spm.u
    atom = sol.stiffness.subs(spm.MOMENT_DEFINITIONS).subs({spm.zs: -nu, spm.g: 1 / (s + nu), spm.dg: 1 / (s + nu) ** 2})
    assert sp.simplify(atom - (s + spm.c_implicit) ** 2 / (s + nu) ** 2) == 0


def test_moment_definitions_are_spectral_integrals_per_atom():
    # A1, B1, A2 per atom s (mass 1); Mm and Q3 also use the mean E[s] = 1 of the pool spectrum,
    # so per atom their constant term is s (checked below in that form)
    s, nu = sp.symbols("s nu", positive=True)
    atom = {spm.zs: -nu, spm.g: 1 / (s + nu), spm.dg: 1 / (s + nu) ** 2}
    integrands = {spm.A1: s / (s + nu), spm.B1: s / (s + nu) ** 2, spm.A2: s**2 / (s + nu) ** 2}
    for mom, target in integrands.items():
        assert sp.simplify(spm.MOMENT_DEFINITIONS[mom].subs(atom) - target) == 0, mom
    # Mm = E[s] - nu A1 and Q3 = E[s] - 2 nu + 3 nu^2 g - nu^3 g' for a general measure; per atom:
    assert sp.simplify(s - nu * s / (s + nu) - s**2 / (s + nu)) == 0
    assert sp.simplify(s - 2 * nu + 3 * nu**2 / (s + nu) - nu**3 / (s + nu) ** 2 - s**3 / (s + nu) ** 2) == 0


def test_stable_rearrangements_per_atom():
    # evaluate_explicit uses  s2 - 2 Mm + Q3 = sigma^2 + nu^2 B1  and  1 - K = u (2 B1 + (2c + u) g')
    s, u = sp.Symbol("s", nonnegative=True), spm.u
    c = spm.c_implicit
    nu = c + u
    Mm, Q3, B1, A2, dg = s**2 / (s + nu), s**3 / (s + nu) ** 2, s / (s + nu) ** 2, s**2 / (s + nu) ** 2, 1 / (s + nu) ** 2
    # with E[s] = 1 the constant 1 in s2 integrates to E[s]: per atom it is s
    assert sp.simplify(s - 2 * Mm + Q3 - nu**2 * B1) == 0
    K = A2 + 2 * c * B1 + c**2 * dg
    assert sp.simplify((1 - K) - u * (2 * B1 + (2 * c + u) * dg)) == 0


@given(points)
def test_evaluate_explicit_matches_derived_solution_at_50_digits(pt):
    # the solver's cancellation-free rearrangement equals the sympy-derived solution
    alpha, tau, kappa, r, sg, lam = pt
    res = solve(alpha=alpha, tau=tau, kappa=kappa, rho=r, sigma=sg, lam=lam, precision=50)
    fns = _derived_order_mp()
    # the derived form divides by tau - K, which cancels near tau = 1 at lam = 0 (it loses
    # log10(1/|tau - 1|) digits): evaluate it with 30 spare digits so the reference keeps 50
    with mpmath.workdps(80):
        # at lam = 0, tau > 1 the root is u = 0 exactly: the reference needs nu = c to 80 digits too
        # (its E moves by (tau - 1)^-1 times a change of nu)
        nu = (1 + mpmath.mpf(sg) ** 2) / mpmath.mpf(alpha) if (lam == 0 and tau > 1) else res.nu
        mo = pool_moments_mp(-nu, kappa, r)
        vals = [mo.g, mo.dg, mo.dg_tilde, mo.A1, mo.B1, mo.A2, mo.Mm, mo.Q3,
                *(mpmath.mpf(v) for v in (alpha, tau, kappa, r, sg))]
        for name, fn in fns.items():
            ours = res.training_error if name == "E" else getattr(res, name)
            assert abs(fn(*vals) / ours - 1) < mpmath.mpf(10) ** -40, name


@functools.lru_cache(maxsize=None)
def _derived_order_mp():
    sol = spm.derive_explicit_solution()
    args = (spm.g, spm.dg, spm.dgt, *spm.MOMENTS, spm.alpha, spm.tau, spm.kappa, spm.rho, spm.sigma)
    return {n: sp.lambdify(args, sol.order[n], modules="mpmath") for n in ("E", "q", "q_bar", "q0", "m")}


@given(points)
def test_published_equations_hold_at_50_digits(pt):
    alpha, tau, kappa, r, sg, lam = pt
    res = solve(alpha=alpha, tau=tau, kappa=kappa, rho=r, sigma=sg, lam=lam, precision=50)
    assert bool(res.converged)
    assert res.residual < mpmath.mpf(10) ** -40


@given(points)
def test_stability_factor_positive_at_root(pt):
    res = solve(**dict(zip(("alpha", "tau", "kappa", "rho", "sigma", "lam"), pt)))
    # E = E_signal/(1 - K/tau) > 0 requires K < tau at the root (proved: K <= 1 - u g <= tau)
    assert np.isfinite(res.training_error) and res.training_error > 0


def test_training_error_is_tm_error_at_training_values():
    res = solve(alpha=[0.5, 3.0, 40.0], tau=[0.4, 1.7, 5.0], kappa=[0.3, 2.0, 0.8], rho=0.6, sigma=0.4, lam=0.01)
    assert np.allclose(res.errors().tm, res.training_error, rtol=1e-13)


def test_decomposition_noise_vanishes_like_one_over_tau_and_signal_is_bayes():
    # kappa = inf, lam = 0, tau -> inf: Gamma -> gamma A A^T (docs/model.md), so the signal parts tend
    # to q0 = gamma^2, q_bar = rho gamma^2, while the noise parts (proportional to E/tau) fall like 1/tau
    alpha, rho, sigma = 2.3, 0.2, 0.3
    res = solve(alpha=alpha, tau=[1e6, 1e9], kappa=np.inf, rho=rho, sigma=sigma, lam=0.0)
    dec = res.decomposition()
    gamma = alpha / (alpha + rho * (1 + sigma**2))
    assert dec.q0.signal[1] == pytest.approx(gamma**2, rel=1e-8)
    assert dec.q_bar.signal[1] == pytest.approx(rho * gamma**2, rel=1e-8)
    for name in ("q", "q_bar", "q0"):
        part = getattr(dec, name)
        for noise in (part.noise_T, part.noise_R):
            assert noise[0] / noise[1] == pytest.approx(1000, rel=1e-5), name


def test_infinite_pretraining_gives_bayes_optimal_scale():
    # tau, kappa -> infinity at lam = 0: Gamma -> gamma A A^T, gamma = alpha/(alpha + rho(1 + sigma^2))
    # (docs/model.md), so m0 = gamma, q0 = gamma^2 and q_bar = rho gamma^2
    alpha, rho, sigma = 3.0, 0.4, 0.5
    res = solve(alpha=alpha, tau=1e10, kappa=1e10, rho=rho, sigma=sigma, lam=0.0)
    gamma = alpha / (alpha + rho * (1 + sigma**2))
    assert res.m0 == pytest.approx(gamma, rel=1e-8)
    assert res.q0 == pytest.approx(gamma**2, rel=1e-8)
    assert res.q_bar == pytest.approx(rho * gamma**2, rel=1e-8)


def test_implicit_regularization_present_at_zero_ridge():
    # at lam = 0 the mean weights still see a ridge nu = (1 + sigma^2)/alpha: check it through m_bar,
    # the overlap int s/(s + nu) dmu(s) of the pool law, with g computed by quadrature of the
    # Marchenko-Pastur density (independent of the solver, which sets u = 0 on this branch)
    from lowrank_icl.theory.forward.stieltjes import pool_transforms_by_quadrature

    alpha, sigma, kappa, rho = 2.0, 0.3, 1.7, 0.5
    res = solve(alpha=alpha, tau=3.0, kappa=kappa, rho=rho, sigma=sigma, lam=0.0)
    c = (1 + sigma**2) / alpha
    g = float(pool_transforms_by_quadrature(-c, kappa, rho).g)
    assert res.m_bar == pytest.approx(1 - c * g, rel=1e-12)
    # and a different ridge would be visible: m_bar moves by O(1) relative if nu is off by 10%
    g_off = float(pool_transforms_by_quadrature(-1.1 * c, kappa, rho).g)
    assert abs((1 - 1.1 * c * g_off) / res.m_bar - 1) > 1e-3


def test_misfit_identities():
    # the nonnegative misfits that errors() uses: 1 - 2 m_X + signal_X equals the per-atom integral
    # of (1 - s/(s + nu))^2 (times s for pool tasks): W = nu^2 B1, V = nu^2 g', V_tilde = nu^2 g~'
    s, nu = sp.symbols("s nu", positive=True)
    atom = {"A1": s / (s + nu), "B1": s / (s + nu) ** 2, "A2": s**2 / (s + nu) ** 2, "Mm": s**2 / (s + nu),
            "Q3": s**3 / (s + nu) ** 2, "dg": 1 / (s + nu) ** 2}
    assert sp.simplify(s - 2 * atom["Mm"] + atom["Q3"] - nu**2 * atom["B1"]) == 0      # TM, mean s = 1
    assert sp.simplify(1 - 2 * atom["A1"] + atom["A2"] - nu**2 * atom["dg"]) == 0     # ODG, IDG per atom
    # and the numeric moments agree with the defining forms at 50 digits
    from lowrank_icl.theory.forward.stieltjes import pool_moments_mp
    with mpmath.workdps(50):
        for z, k, r in ((-0.3, 0.4, 0.3), (-2.0, 3.0, 1.0), (-1e-3, 0.2, 0.5)):
            mo = pool_moments_mp(z, k, r)
            assert abs(mo.V - (1 - 2 * mo.A1 + mo.A2)) < mpmath.mpf(10) ** -40
            assert abs(mo.W - (1 - 2 * mo.Mm + mo.Q3)) < mpmath.mpf(10) ** -40
            assert abs(mo.V_tilde - mpmath.mpf(z) ** 2 * mo.dg_tilde) < mpmath.mpf(10) ** -40


def test_state_equations_are_the_published_ones():
    # E carried as an unknown and lam = lam_kappa/kappa: substituting the published E back gives the
    # published right-hand sides exactly
    eqs = spm.derive_state_equations()
    pub = spm.published_saddle_point()
    back = {spm.E: pub.training_error, spm.lam_kappa: spm.lam * spm.kappa}
    literal = pub.rhs_of_state()
    for name, expr in eqs.rhs.items():
        assert sp.simplify(expr.subs(back) - literal[sp.Symbol(name, real=True)]) == 0, name
    assert sp.simplify(eqs.z.subs(back) - pub.z_of_state()) == 0
