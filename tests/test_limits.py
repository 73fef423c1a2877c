"""Asymptotic limits of the forward saddle point (theory/forward/limits.py) against closed forms and the solver.

The symbolic derivation of the alpha -> infinity expansion takes minutes of sympy; its result is
persisted in theory/forward/_large_alpha_generated.py, so the checks below run in the default suite.
A default test checks the generated module's fingerprint against the derivation's current source;
a slow test reruns the derivation and compares every term.
"""
import mpmath
import numpy as np
import pytest
import sympy as sp

from lowrank_icl.numerics.forward.solver import solve
from lowrank_icl.theory.forward.limits import (CASE_KAPPA_ABOVE, CASE_KAPPA_BELOW, QUANTITIES, derive_large_alpha,
                                               derivation_fingerprint, derive_t_series, kappa, large_alpha_expansion,
                                               large_alpha_terms, nu, rho, sigma, tau)

S2 = sigma**2


def test_t_series_leading_terms():
    """Laurent/Taylor start of t = g~(-nu), the leading terms of the large-alpha expansion (docs/derivations.md)."""
    above, s_a = derive_t_series(CASE_KAPPA_ABOVE, 3)
    below, s_b = derive_t_series(CASE_KAPPA_BELOW, 3)
    assert (s_a, s_b) == (0, -1)
    assert sp.simplify(above[0] - kappa * rho / (kappa - rho)) == 0
    assert sp.simplify(below[0] - (1 - kappa / rho)) == 0


@pytest.mark.parametrize("bad, match", [({"tau_value": 1.0}, "tau must"), ({"kappa_value": 0.5}, "kappa must differ"),
                                        ({"rho_value": 1.5}, "rho must"), ({"sigma_value": -1}, "sigma must"),
                                        ({"alpha_value": 0}, "alpha must")])
def test_large_alpha_input_validation(bad, match):
    args = dict(alpha_value=1e4, tau_value=2.0, kappa_value=0.4, rho_value=0.5, sigma_value=0.1)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        large_alpha_expansion(**args)


def test_generated_module_is_current():
    """The persisted terms were generated from the derivation's current source (else: regenerate with
    ``python -m lowrank_icl.theory.forward.limits``, a few minutes)."""
    from lowrank_icl.theory.forward import _large_alpha_generated as gen
    assert gen.FINGERPRINT == derivation_fingerprint()


@pytest.mark.slow
def test_generated_module_equals_a_fresh_derivation():
    for case in (CASE_KAPPA_ABOVE, CASE_KAPPA_BELOW):
        fresh, stored = derive_large_alpha(case), large_alpha_terms(case)
        for name in QUANTITIES:
            a, b = fresh[name], stored[name]
            assert (a.power, a.rate) == (b.power, b.rate), name
            for part in ("lead", "next", "next_next"):
                assert sp.simplify(getattr(a, part) - getattr(b, part)) == 0, (case, name, part)


def test_leading_terms_reproduce_published_limits():
    """The alpha -> infinity closed forms of docs/derivations.md, symbolically (sympy.simplify(a - b) == 0)."""
    above, below = large_alpha_terms(CASE_KAPPA_ABOVE), large_alpha_terms(CASE_KAPPA_BELOW)
    for terms, mn in ((above, rho), (below, kappa)):
        assert terms["m"].power == 0 and sp.simplify(terms["m"].lead - 1) == 0
        assert sp.simplify(terms["m_bar"].lead - mn) == 0
        assert sp.simplify(terms["m0"].lead - mn / rho) == 0
        assert sp.simplify(terms["q"].lead - (1 + S2 * mn / (tau - 1))) == 0
        assert terms["q_bar"].power == 1
        assert sp.simplify(terms["q_bar"].lead - S2 / (1 + S2) * (1 - mn) / (tau - 1)) == 0
    assert above["q0"].power == 0
    assert sp.simplify(above["q0"].lead - (1 + S2 * kappa * rho / ((tau - 1) * (kappa - rho)))) == 0
    assert below["q0"].power == 1
    assert sp.simplify(below["q0"].lead - (rho - kappa) * S2 / (rho * (tau - 1) * (1 + S2))) == 0
    # e_IDG: O(1) for kappa > rho, linear in alpha for kappa < rho (the transition)
    assert above["e_idg"].power == 0 and below["e_idg"].power == 1


def _solver_values(alpha, tau_v, kappa_v, rho_v, sigma_v):
    res = solve(alpha=alpha, tau=tau_v, kappa=kappa_v, rho=rho_v, sigma=sigma_v, lam=0.0, precision=50)
    assert bool(res.converged), res.reason
    err = res.errors()
    vals = {k: getattr(res, k) for k in ("m", "m_bar", "m0", "q", "q_bar", "q0")}
    vals.update(e_tm=err.tm, e_idg=err.idg, e_odg=err.odg)
    return vals


def _predict_mp(terms, alpha, tau_v, kappa_v, rho_v, sigma_v):
    """The two-term prediction and the third term, in mpmath (50 digits) from the sympy forms."""
    sub = {tau: mpmath.mpf(tau_v), kappa: mpmath.mpf(kappa_v), rho: mpmath.mpf(rho_v), sigma: mpmath.mpf(sigma_v)}
    a = mpmath.mpf(alpha)
    lead, nxt, nn = (mpmath.mpf(sp.N(e.subs(sub), 50)) for e in (terms.lead, terms.next, terms.next_next))
    return a**terms.power * (lead + nxt / a), a ** (terms.power - 2) * nn


@pytest.mark.parametrize("rho_v", [0.2, 0.6])
def test_two_term_remainder_rate_vs_solver(rho_v):
    """alpha = 1e4..1e8 (lam = 0, tau = 2.6, kappa = 0.4, sigma = 0.5): the remainder of the two-term
    expansion, computed against the 50-digit solver, must decay like alpha^rate (rate = p - 2 from
    the first non-zero next-next coefficient): fitted log-log slope within 0.05 of rate."""
    tau_v, kappa_v, sigma_v = 2.6, 0.4, 0.5
    case = CASE_KAPPA_ABOVE if kappa_v > rho_v else CASE_KAPPA_BELOW
    terms = large_alpha_terms(case)
    alphas = [10.0**e for e in range(4, 9)]
    with mpmath.workdps(50):
        sols = [_solver_values(a, tau_v, kappa_v, rho_v, sigma_v) for a in alphas]
        for name in QUANTITIES:
            rem = [abs(s[name] - _predict_mp(terms[name], a, tau_v, kappa_v, rho_v, sigma_v)[0])
                   for a, s in zip(alphas, sols)]
            slope = np.polyfit(np.log(alphas), [float(mpmath.log(r)) for r in rem], 1)[0]
            assert abs(slope - terms[name].rate) < 0.05, (name, slope, terms[name].rate)


@pytest.mark.parametrize("rho_v", [0.2, 0.6])
def test_published_point(rho_v):
    """alpha = 1.8e6, lam = 0, tau = 2.6, kappa = 0.4, sigma = 0.01 (the published check point): the numpy
    predictor agrees with the solver to within twice the size of the derived third term plus
    float64 rounding (1e-13 relative)."""
    a, tau_v, kappa_v, sigma_v = 1.8e6, 2.6, 0.4, 0.01
    case = CASE_KAPPA_ABOVE if kappa_v > rho_v else CASE_KAPPA_BELOW
    terms = large_alpha_terms(case)
    pred = large_alpha_expansion(a, tau_v, kappa_v, rho_v, sigma_v)
    with mpmath.workdps(50):
        sol = _solver_values(a, tau_v, kappa_v, rho_v, sigma_v)
        for name in QUANTITIES:
            _two, third = _predict_mp(terms[name], a, tau_v, kappa_v, rho_v, sigma_v)
            tol = 2 * abs(float(third)) + 1e-13 * abs(float(sol[name]))
            assert abs(float(sol[name]) - pred[name]) <= tol, name


def test_large_tau_limit_is_the_symbolic_limit():
    """The numeric closed form equals sympy's tau -> oo limit of evaluate_explicit (moment symbols)."""
    from lowrank_icl.theory.forward.limits import derive_large_tau
    lim = derive_large_tau()
    A1, A2, Mm, Q3, W = sp.symbols("A1 A2 Mm Q3 W", positive=True)
    c = (1 + S2) / sp.Symbol("alpha", positive=True)
    assert sp.simplify(lim["E"] - (S2 + W + c * A2)) == 0
    assert sp.simplify(lim["q"] - Q3) == 0 and sp.simplify(lim["q_bar"] - A2) == 0
    assert sp.simplify(lim["q0"] - A2 / rho) == 0 and sp.simplify(lim["m"] - Mm) == 0
    assert sp.simplify(lim["m_bar"] - A1) == 0 and sp.simplify(lim["m0"] - A1 / rho) == 0


@pytest.mark.parametrize("lam_v", [0.0, 0.3])
def test_large_tau_limit_vs_solver(lam_v):
    """Solver at tau = 1e3..1e5 (alpha = 4, kappa = 3, rho = 0.5, sigma = 0.9): the gap to the limit
    (float64, gaps >= 1e-6 relative, well above rounding) decays like 1/tau (fitted log-log slope within 0.05 of -1) for every quantity and E."""
    from lowrank_icl.theory.forward.limits import large_tau_limit
    a, k, r, s = 4.0, 3.0, 0.5, 0.9
    lim = large_tau_limit(a, k, r, s)
    taus = np.array([1e3, 1e4, 1e5])
    res = solve(alpha=a, tau=taus, kappa=k, rho=r, sigma=s, lam=lam_v)
    assert np.all(res.converged)
    err = res.errors()
    vals = {"m": res.m, "m_bar": res.m_bar, "m0": res.m0, "q": res.q, "q_bar": res.q_bar, "q0": res.q0,
            "e_tm": err.tm, "e_idg": err.idg, "e_odg": err.odg, "E": res.training_error}
    for name, v in vals.items():
        gap = np.abs(np.asarray(v, dtype=float) - lim[name])
        if lam_v == 0 and name in ("m", "m_bar", "m0"):
            # lam = 0, tau > 1: u = 0 exactly, so nu = c and the means equal the limit at every tau
            assert np.all(gap <= 1e-14 * np.abs(lim[name])), name
            continue
        slope = np.polyfit(np.log(taus), np.log(gap), 1)[0]
        assert abs(slope + 1) < 0.05, (name, slope)


def test_large_tau_input_validation():
    from lowrank_icl.theory.forward.limits import large_tau_limit
    with pytest.raises(ValueError, match="rho must"):
        large_tau_limit(1.0, 1.0, 0.0, 0.1)


def test_large_kappa_moments_are_two_atom_law():
    """Independent check: the kappa -> oo moments equal the integrals against the law with weight
    rho at s = 1/rho and 1 - rho at s = 0 (S -> (1/rho) P_A)."""
    from lowrank_icl.theory.forward.limits import derive_large_kappa
    moments, t_inf, _ = derive_large_kappa()
    s1 = 1 / rho

    def integral(f):
        return rho * f(s1) + (1 - rho) * f(sp.Integer(0))
    expected = {"g": integral(lambda s: 1 / (s + nu)), "dg": integral(lambda s: 1 / (s + nu) ** 2),
                "A1": integral(lambda s: s / (s + nu)), "B1": integral(lambda s: s / (s + nu) ** 2),
                "A2": integral(lambda s: s**2 / (s + nu) ** 2), "Mm": integral(lambda s: s**2 / (s + nu)),
                "Q3": integral(lambda s: s**3 / (s + nu) ** 2), "W": integral(lambda s: s * nu**2 / (s + nu) ** 2)}
    assert sp.simplify(t_inf - 1 / (s1 + nu)) == 0
    for name, e in expected.items():
        assert sp.simplify(moments[name] - e) == 0, name


@pytest.mark.parametrize("tau_v", [1.5, 0.5])
def test_large_kappa_limit_vs_solver(tau_v):
    """Solver at kappa = 1e4, 1e5, 1e6 (lam = 0, alpha = 4, rho = 0.5, sigma = 0.9; tau on both sides
    of 1): the gap to the limit decays like 1/kappa (log-log slope within 0.05 of -1), and at
    kappa = 1e6 it is below 1e-5 relative (the measured O(1/kappa) coefficients are < 10)."""
    from lowrank_icl.theory.forward.limits import large_kappa_limit
    a, r, s = 4.0, 0.5, 0.9
    lim = large_kappa_limit(a, tau_v, r, s)
    kappas = np.array([1e4, 1e5, 1e6])
    res = solve(alpha=a, tau=tau_v, kappa=kappas, rho=r, sigma=s, lam=0.0)
    assert np.all(res.converged)
    err = res.errors()
    vals = {"m": res.m, "m_bar": res.m_bar, "m0": res.m0, "q": res.q, "q_bar": res.q_bar, "q0": res.q0,
            "e_tm": err.tm, "e_idg": err.idg, "e_odg": err.odg}
    for name, v in vals.items():
        gap = np.abs(np.asarray(v, dtype=float) - lim[name])
        slope = np.polyfit(np.log(kappas), np.log(gap), 1)[0]
        assert abs(slope + 1) < 0.05, (name, slope)
        assert gap[-1] <= 1e-5 * abs(lim[name]), name


@pytest.mark.parametrize("tau_v", [1.5, 0.5])
def test_solver_at_kappa_inf_equals_the_closed_form_limit(tau_v):
    """solve(kappa=inf) (Newton on the reduced equation) and large_kappa_limit (closed-form root of the
    limiting quadratic) are two routes to the same limit."""
    from lowrank_icl.theory.forward.limits import large_kappa_limit
    lim = large_kappa_limit(4.0, tau_v, 0.5, 0.9)
    res = solve(alpha=4.0, tau=tau_v, kappa=np.inf, rho=0.5, sigma=0.9, lam=0.0)
    assert bool(res.converged)
    err = res.errors()
    vals = {"m": res.m, "m_bar": res.m_bar, "m0": res.m0, "q": res.q, "q_bar": res.q_bar, "q0": res.q0,
            "e_tm": err.tm, "e_idg": err.idg, "e_odg": err.odg}
    for name, v in vals.items():
        assert v == pytest.approx(lim[name], rel=1e-13), name


def test_large_kappa_input_validation():
    from lowrank_icl.theory.forward.limits import large_kappa_limit
    with pytest.raises(ValueError, match="tau must differ from 1"):
        large_kappa_limit(1.0, 1.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="sigma must"):
        large_kappa_limit(1.0, 2.0, 0.5, -0.1)


@pytest.mark.parametrize("kappa_v, rho_v", [(0.4, 0.6), (3.0, 0.5)])
def test_sigma2_slope_vs_finite_differences(kappa_v, rho_v):
    """d e_X/d sigma^2 at sigma = 0 (lam = 0, alpha = 4, tau = 1.7) vs Richardson-extrapolated forward
    differences of the float64 solver in sigma^2 (steps d = 1e-4, 2e-4): 2 D(d) - D(2d) has
    truncation O(d^2) ~ 1e-8 and rounding ~ 1e-16/d ~ 1e-12, so 1e-6 relative is a safe bound."""
    from lowrank_icl.theory.forward.limits import sigma2_slope
    a, t_ = 4.0, 1.7
    pred = sigma2_slope(a, t_, kappa_v, rho_v)
    d = 1e-4
    errs = [solve(alpha=a, tau=t_, kappa=kappa_v, rho=rho_v, sigma=np.sqrt(s2), lam=0.0).errors()
            for s2 in (0.0, d, 2 * d)]
    for key, attr in (("e_tm", "tm"), ("e_idg", "idg"), ("e_odg", "odg")):
        e0, e1, e2 = (float(getattr(e, attr)) for e in errs)
        rich = 2 * (e1 - e0) / d - (e2 - e0) / (2 * d)
        assert abs(rich - pred[key]) <= 1e-6 * abs(pred[key]), (key, rich, pred[key])


def test_sigma2_slope_input_validation():
    from lowrank_icl.theory.forward.limits import sigma2_slope
    with pytest.raises(ValueError, match="tau must"):
        sigma2_slope(4.0, 0.5, 0.4, 0.6)
