"""General task spectra: reductions, the deterministic-equivalent resolvent, the spectral-pair reduction."""
import json

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from lowrank_icl.numerics import TaskSpectrum, solve
from lowrank_icl.numerics.forward.general import spectral_transforms
from lowrank_icl.theory.forward import spectra as th
from lowrank_icl.theory.forward.full_rank import (published_ridgeless_icl_tau_lt_1,
                                                  published_ridgeless_idg_tau_gt_1)
from lowrank_icl.validation.forward.alignment_reference import letey_error

HARD = dict(zip(("alpha", "tau", "kappa", "lam"), np.meshgrid(
    [1e2, 1e4, 1e6], [0.5, 0.9, 0.99, 1.01, 1.1, 2.6], [0.2, 0.29, 0.3, 0.31, 0.4], [0.0, 1e-8, 1e-3],
    indexing="ij")))
ERRORS = ("tm", "idg", "odg")


def rel(a, b):
    """|a - b| / |b|, and 0 where both are exactly 0 (e.g. a test law t = 0 without noise)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a == b, 0.0, np.abs(a - b) / np.abs(b))


# ------------------------------------------------------------------------------------------------
# reductions

@pytest.fixture(scope="module")
def hard_pair():
    return (solve(**HARD, rho=0.3, sigma=0.1),
            solve(**HARD, sigma=0.1, spectrum=TaskSpectrum.low_rank(0.3)))


def test_low_rank_spectrum_equals_rank_r_solver_on_hard_set(hard_pair):
    # two independent routes to the pool: the rank-r quadratic (Marchenko-Pastur on span A) and the
    # general Silverstein equation with a two-atom population spectrum
    rank_r, general = hard_pair
    assert np.all(general.converged) and np.max(general.residual) < 1e-10
    er, eg = rank_r.errors(), general.errors()
    for name in ERRORS:
        assert np.max(rel(getattr(eg, name), getattr(er, name))) < 1e-12, name
    for name in ("q", "m", "q_bar", "m_bar", "q0", "m0", "nu", "training_error"):
        assert np.max(rel(getattr(general, name), getattr(rank_r, name))) < 1e-12, name
    finite = np.isfinite(rank_r.chi)
    assert np.array_equal(finite, np.isfinite(general.chi))
    assert np.max(rel(general.chi[finite], rank_r.chi[finite])) < 1e-12


def test_low_rank_aligned_test_law_gives_idg():
    res = solve(alpha=4, tau=1.2, kappa=3, sigma=0.9, lam=0.1, spectrum=TaskSpectrum.low_rank(0.5, test="aligned"))
    ref = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1).errors()
    assert rel(res.errors().odg, ref.idg) < 1e-13


@pytest.mark.parametrize("tau", [0.3, 0.8, 1.5, 4.0])
@pytest.mark.parametrize("kappa", [0.25, 1.0, 3.0])
def test_isotropic_tasks_reduce_to_lu_et_al(tau, kappa):
    # Lu et al.'s published ridgeless closed forms (their noise is the variance rho_Lu = sigma^2)
    alpha, sigma = 2.5, 0.3
    res = solve(alpha=alpha, tau=tau, kappa=kappa, sigma=sigma, lam=0.0, spectrum=TaskSpectrum.isotropic_tasks())
    err = res.errors()
    if tau < 1:
        assert rel(err.odg, published_ridgeless_icl_tau_lt_1(alpha, tau, kappa, sigma**2)) < 1e-12
    else:
        assert rel(err.tm, published_ridgeless_idg_tau_gt_1(alpha, tau, kappa, sigma**2)) < 1e-12
    assert rel(err.idg, err.odg) < 1e-14  # Sigma = I: train law = isotropic test law


def test_spectrum_mean_is_used_as_given():
    # scaling s by a and sigma^2, lam by a leaves Gamma unchanged and multiplies every error by a
    base = TaskSpectrum(train=[3.0, 1.0, 0.2], test=[0.1, 2.0, 5.0], weights=[0.2, 0.3, 0.5])
    a = 2.7
    scaled = TaskSpectrum(train=a * base.train, test=a * base.test, weights=base.weights)
    kw = dict(alpha=np.array([0.7, 3.0, 50.0]), tau=np.array([0.4, 1.3, 3.0]), kappa=0.8)
    r0 = solve(**kw, sigma=0.4, lam=0.05, spectrum=base)
    r1 = solve(**kw, sigma=0.4 * np.sqrt(a), lam=0.05 * a, spectrum=scaled)
    e0, e1 = r0.errors(), r1.errors()
    for name in ERRORS:
        assert np.max(rel(getattr(e1, name), a * getattr(e0, name))) < 1e-13
    assert np.max(rel(r1.q_bar, r0.q_bar)) < 1e-13


# ------------------------------------------------------------------------------------------------
# lam = 0 is Letey et al.'s formula, with an independent 50-digit deterministic equivalent

def _de_reference(spec, kappa, nu, law=None, dps=50):
    """tr R, tr R^2 and the test-law traces from the textbook Silverstein equation at ``dps`` digits:
    delta by bracketed root finding, second-order traces by numerical differentiation (mpmath.diff)."""
    with mpmath.workdps(dps):
        s = [mpmath.mpf(float(v)) for v in spec.train]
        p = [mpmath.mpf(float(v)) for v in spec.weights]
        tot = mpmath.fsum(p)
        p = [v / tot for v in p]
        t = [mpmath.mpf(float(v)) for v in (spec.test if law is None else law)]
        k = mpmath.mpf(kappa)

        def x_of(n):
            f = lambda d: d - mpmath.fsum(pi * si * (1 + d) / (si + n * (1 + d)) for pi, si in zip(p, s)) / k  # noqa
            ub = mpmath.fsum(pi * si for pi, si in zip(p, s)) / (k * n) + 1
            return 1 / (1 + mpmath.findroot(f, (mpmath.mpf(0), ub), solver="anderson"))

        def trace(weights):
            return lambda n: mpmath.fsum(pi * wi / (x_of(n) * si + n) for pi, wi, si in zip(p, weights, s))

        n = mpmath.mpf(nu)
        ones = [mpmath.mpf(1)] * len(s)
        g, dg = trace(ones)(n), -mpmath.diff(trace(ones), n)
        e1, e2 = trace(t)(n), -mpmath.diff(trace(t), n)
        mt = mpmath.fsum(pi * ti for pi, ti in zip(p, t))
        m1 = mpmath.fsum(pi * si for pi, si in zip(p, s))
        return {"g": g, "dg": dg, "A1": 1 - n * g, "B1": g - n * dg, "A2": 1 - 2 * n * g + n**2 * dg,
                "Mm": m1 - n + n**2 * g, "Q3": m1 - 2 * n + 3 * n**2 * g - n**3 * dg,
                "law": (mt - n * e1, mt - 2 * n * e1 + n**2 * e2, e1 - n * e2, e2)}


SPECTRA = {
    "three-atom": TaskSpectrum(train=[3.0, 1.0, 0.2], test=[0.1, 2.0, 5.0], weights=[0.2, 0.3, 0.5]),
    "power": TaskSpectrum.power_law(0.7, atoms=12),
    "low-rank": TaskSpectrum.low_rank(0.25).subspace_test(0.25, 0.6),
}


@pytest.mark.parametrize("name", sorted(SPECTRA))
def test_resolvent_traces_against_50_digit_reference(name):
    spec = SPECTRA[name]
    spec = TaskSpectrum(train=spec.train / spec.train_mean, test=spec.test, weights=spec.weights)
    for kappa in (0.15, 1.0, 6.0):
        nus = np.array([1e-6, 1e-3, 0.3, 20.0, 3e3])
        tr = spectral_transforms(nus, kappa, spec)
        for i, nu in enumerate(nus):
            ref = _de_reference(spec, kappa, nu)
            for key in ("g", "dg", "A1", "B1", "A2", "Mm", "Q3"):
                assert rel(getattr(tr, key)[i], float(ref[key])) < 1e-13, (key, kappa, nu)
            for j in range(4):
                assert rel(tr.laws["test"][j][i], float(ref["law"][j])) < 1e-13, (j, kappa, nu)


@pytest.mark.parametrize("tau", [0.5, 2.6])
@pytest.mark.parametrize("kappa", [0.2, 1.5])
def test_ridgeless_equals_letey_formula(tau, kappa):
    # their closed form (written from the paper's formulas) at the exact resolvent traces, including
    # a train law of mean != 1 and misaligned test laws
    alpha, sigma = 3.0, 0.4
    for spec in (SPECTRA["three-atom"], SPECTRA["low-rank"], SPECTRA["power"]):
        res = solve(alpha=alpha, tau=tau, kappa=kappa, sigma=sigma, lam=0.0, spectrum=spec)
        xi = float(res.nu) - (spec.train_mean + sigma**2) / alpha
        m1 = spec.train_mean
        normalized = TaskSpectrum(train=spec.train / m1, test=spec.test, weights=spec.weights)
        ref = _de_reference(normalized, kappa, float(res.nu) / m1, dps=30)
        M, M2 = float(ref["g"]) / m1, float(ref["dg"]) / m1**2  # traces of S = m1 S_normalized
        assert rel(res.errors().odg, letey_error(alpha, tau, kappa, sigma, spec, M, M2, xi)) < 1e-12


# ------------------------------------------------------------------------------------------------
# symbolic identities behind the positive forms

def test_positive_forms_symbolically():
    forms = th.derive_positive_forms()
    xp = sp.Symbol("xp", positive=True)
    one = th.derive_one_atom_slope()
    for key in ("e1", "e2", "m", "s2r2"):
        textbook, positive = forms[key]
        assert sp.simplify(textbook - positive) == 0, key
    textbook, positive = forms["sr2"]
    # sr2's positive form needs x - nu x' = x/Dn: true for the one-atom spectrum
    assert sp.simplify(one["x_minus_nu_xp"] - one["x_over_Dn"]) == 0
    assert sp.simplify(one["xp"] - one["xp_positive_form"]) == 0
    assert sp.simplify((textbook - positive).subs(xp, one["xp"])) == 0


def test_inner_equation_is_monotone():
    inner = th.derive_inner_equation()
    # dPhi/dx = -1 - s nu/(kappa (x s + nu)^2) < 0 and dx/dnu > 0
    assert sp.simplify(inner["dphi_dx"] + 1 + th.s * th.nu / (th.kappa * (th.x * th.s + th.nu) ** 2)) == 0
    assert sp.simplify(inner["dx_dnu"] - th.derive_one_atom_slope()["xp_positive_form"]) == 0


# ------------------------------------------------------------------------------------------------
# the deterministic equivalent against eigenvalues of sampled pools, and the spectral-pair reduction

def _haar(dim, rng):
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def _intercept(dims, means, ses):
    """Weighted least squares of means = a + b/D; returns (a, SE(a))."""
    X = np.stack([np.ones(len(dims)), 1.0 / np.asarray(dims)], axis=1)
    W = np.diag(1.0 / np.asarray(ses) ** 2)
    cov = np.linalg.inv(X.T @ W @ X)
    coef = cov @ X.T @ W @ np.asarray(means)
    return coef[0], np.sqrt(cov[0, 0])


def test_resolvent_against_sampled_pools_with_rotated_covariances(rng):
    """Train law: power law in a Haar eigenbasis O. Test laws: a rank-D/4 projector at a random
    orientation (C1) and its diagonal part in O's basis (C2, same t_i, no off-diagonal). The pair
    reduction says both have the same limit, the deterministic equivalent with pairs (s_i, t_i).
    Deviations (sample - equivalent at the D-point spectrum) are extrapolated in 1/D to 0 (3 SE)."""
    kappa, nu = 0.6, 0.05
    family = lambda d: TaskSpectrum.power_law(0.5, atoms=d)  # noqa: E731
    dims, pools = (64, 128, 256), 12
    dev = {k: ([], []) for k in ("g", "dg", "C1", "C2", "C1-C2")}
    for dim in dims:
        s = family(dim).train
        vals = {k: [] for k in dev}
        for _ in range(pools):
            o = _haar(dim, rng)
            b = _haar(dim, rng)[:, : dim // 4]
            c1 = 4.0 * b @ b.T
            t = np.einsum("ij,ik,kj->j", o, c1, o)  # o_i^T C1 o_i
            c2 = (o * t) @ o.T
            w = (o * np.sqrt(s)) @ rng.standard_normal((dim, int(kappa * dim)))
            lam_, v = np.linalg.eigh(w @ w.T / int(kappa * dim))
            r = 1.0 / (lam_ + nu)
            de = spectral_transforms(nu, int(kappa * dim) / dim, TaskSpectrum(train=s, test=t))
            e1 = de.laws["test"][0][0]  # tr C S R; compare the primary trace tr C R = (mean t - m)/nu
            pred_cr = (t.mean() - e1) / nu
            sample_c1 = np.sum(np.einsum("ij,ik,kj->j", v, c1, v) * r) / dim
            sample_c2 = np.sum(np.einsum("ij,ik,kj->j", v, c2, v) * r) / dim
            vals["g"].append(np.mean(r) - de.g[0])
            vals["dg"].append(np.mean(r * r) - de.dg[0])
            vals["C1"].append(sample_c1 - pred_cr)
            vals["C2"].append(sample_c2 - pred_cr)
            vals["C1-C2"].append(sample_c1 - sample_c2)
        for k in dev:
            dev[k][0].append(np.mean(vals[k]))
            dev[k][1].append(np.std(vals[k], ddof=1) / np.sqrt(pools))
    for k, (means, ses) in dev.items():
        a, se = _intercept(dims, means, ses)
        assert abs(a) <= 3 * se, (k, a, se, means)
    # and the deviations do shrink: the largest-D mean is within 3 SE of 0 or smaller than at D = 64
    assert abs(dev["g"][0][-1]) < max(abs(dev["g"][0][0]), 3 * dev["g"][1][-1])


def test_pair_reduction_fails_for_the_pool_itself(rng):
    """The pool S is not a deterministic test law: its diagonal in O's basis is ~ s, but
    tr(S * S R)/D -> Mm (TM), not the pair prediction with t = s (the IDG value)."""
    dim, kappa, nu = 200, 0.5, 0.1
    s = TaskSpectrum.power_law(0.5, atoms=dim).train
    o = _haar(dim, rng)
    w = (o * np.sqrt(s)) @ rng.standard_normal((dim, int(kappa * dim)))
    pool = w @ w.T / int(kappa * dim)
    sample = np.trace(pool @ pool @ np.linalg.inv(pool + nu * np.eye(dim))) / dim
    de = spectral_transforms(nu, kappa, TaskSpectrum(train=s, test=s))
    pair_prediction, pool_moment = de.laws["test"][0][0], de.Mm[0]
    assert abs(sample - pool_moment) < 0.02 * pool_moment
    assert abs(sample - pair_prediction) > 0.2 * pool_moment


# ------------------------------------------------------------------------------------------------
# TaskSpectrum

def test_task_spectrum_validation():
    with pytest.raises(ValueError, match="same length"):
        TaskSpectrum(train=[1.0, 2.0], test=[1.0])
    with pytest.raises(ValueError, match="train"):
        TaskSpectrum(train=[1.0, -2.0])
    with pytest.raises(ValueError, match="finite"):
        TaskSpectrum(train=[1.0, np.nan])
    with pytest.raises(ValueError, match="positive mean"):
        TaskSpectrum(train=[0.0, 0.0])
    with pytest.raises(ValueError, match="1-D"):
        TaskSpectrum(train=[[1.0]])
    with pytest.raises(ValueError, match="weights"):
        TaskSpectrum(train=[1.0, 2.0], weights=[0.0, 0.0])
    with pytest.raises(ValueError, match="exponent"):
        TaskSpectrum.power_law(1.0)
    with pytest.raises(ValueError, match="rho_test"):
        TaskSpectrum.low_rank(0.7).subspace_test(0.7, 0.3)
    with pytest.raises(ValueError, match="1e150"):
        solve(alpha=3, tau=2, kappa=1, lam=1e200, spectrum=TaskSpectrum.low_rank(0.5))
    with pytest.raises(ValueError, match="1e-150"):
        solve(alpha=1e200, tau=2, kappa=1, spectrum=TaskSpectrum.low_rank(0.5))
    with pytest.raises(ValueError, match="replaces rho"):
        solve(alpha=1, tau=2, kappa=1, rho=0.5, spectrum=TaskSpectrum.low_rank(0.5))


def test_named_families():
    for spec in (TaskSpectrum.low_rank(0.3), TaskSpectrum.approx_low_rank(0.3, 0.01), TaskSpectrum.power_law(0.6),
                 TaskSpectrum.spiked(10.0, 0.1), TaskSpectrum.power_law(-0.5, atoms=7)):
        assert abs(spec.train_mean - 1) < 1e-14 and abs(spec.test_mean - 1) < 1e-14
    assert np.allclose(TaskSpectrum.approx_low_rank(0.3, 0.0).train, TaskSpectrum.low_rank(0.3).train)
    # the top-quantile cell average of the power law: n (1/n)^(1-a) = n^a
    assert abs(TaskSpectrum.power_law(0.6, atoms=1000).train[0] - 1000**0.6) < 1e-9
    # a test subspace at angle 0 to the training subspace is the aligned law; at pi/2 it lives outside
    low = TaskSpectrum.low_rank(0.3)
    at0 = low.subspace_test(0.3, 0.0)
    assert np.allclose(np.sort(at0.test[at0.train > 0]), 1 / 0.3) and np.allclose(at0.test[at0.train == 0], 0)
    at90 = low.subspace_test(0.3, np.pi / 2)
    assert np.allclose(at90.test[at90.train > 0], 0) and abs(at90.test_mean - 1) < 1e-14
    r0 = solve(alpha=5, tau=2, kappa=1, sigma=0.1, spectrum=at0).errors()
    assert rel(r0.odg, r0.idg) < 1e-13


def test_parse_and_files(tmp_path):
    assert np.allclose(TaskSpectrum.parse("lowrank:0.3").train, TaskSpectrum.low_rank(0.3).train)
    assert np.allclose(TaskSpectrum.parse("approx-lowrank:0.3,0.01").train, TaskSpectrum.approx_low_rank(0.3, 0.01).train)
    assert TaskSpectrum.parse("power:0.6").size == 1000 and TaskSpectrum.parse("power:0.6,50").size == 50
    for bad in ("lowrank", "lowrank:a", "power:0.6,2.5", "cubic:1", "lowrank:0.3,0.2", "missing.json"):
        with pytest.raises(ValueError):
            TaskSpectrum.parse(bad)
    spec = TaskSpectrum(train=[2.0, 0.5], test=[0.0, 3.0], weights=[0.25, 0.75])
    (tmp_path / "s.json").write_text(json.dumps(spec.to_dict()))
    np.savez(tmp_path / "s.npz", train=spec.train, test=spec.test, weights=spec.weights)
    for name in ("s.json", "s.npz"):
        back = TaskSpectrum.parse(str(tmp_path / name))
        assert np.array_equal(back.train, spec.train) and np.array_equal(back.test, spec.test)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="could not be read"):
        TaskSpectrum.parse(str(tmp_path / "bad.json"))


# ------------------------------------------------------------------------------------------------
# precision mode and properties

def test_precision_mode_matches_rank_r_precision_mode():
    # independent routes at 40 digits (rank-r quadratic vs Silverstein); rho = 1/4 is exact in binary
    from lowrank_icl.theory.forward.saddle_point import asymptotic_error
    pt = dict(alpha=1e6, tau=0.99, kappa=0.3, sigma=0.1, lam=1e-8)
    ref = solve(**pt, rho=0.25, precision=40)
    res = solve(**pt, spectrum=TaskSpectrum.low_rank(0.25), precision=40)
    assert res.converged
    err = res.errors()
    with mpmath.workdps(40):  # the rank-r errors from its 40-digit order parameters
        a, s = mpmath.mpf(pt["alpha"]), mpmath.mpf(pt["sigma"])
        expected = {"tm": asymptotic_error(ref.m, ref.q, ref.q_bar, a, s),
                    "idg": asymptotic_error(ref.m0, ref.q0, ref.q_bar, a, s),
                    "odg": asymptotic_error(ref.m_bar, ref.q_bar, ref.q_bar, a, s)}
        for name in ERRORS:
            assert abs(getattr(err, name) - expected[name]) / expected[name] < mpmath.mpf(10) ** -35, name


@pytest.mark.parametrize("pt", [dict(alpha=1e12, tau=3.0, kappa=2.0), dict(alpha=1e10, tau=10.0, kappa=10.0),
                                dict(alpha=1e8, tau=0.5, kappa=0.3)])
def test_vanishing_errors_keep_relative_accuracy(pt):
    # sigma = 0, lam = 0: errors ~ 1/alpha; float64 against the rank-r solver's 50-digit order parameters
    from lowrank_icl.theory.forward.saddle_point import asymptotic_error
    res = solve(**pt, sigma=0.0, lam=0.0, spectrum=TaskSpectrum.low_rank(0.5))
    ref = solve(**pt, rho=0.5, sigma=0.0, lam=0.0, precision=50)
    assert res.converged
    err = res.errors()
    with mpmath.workdps(50):
        a, s = mpmath.mpf(pt["alpha"]), mpmath.mpf(0)
        expected = {"tm": asymptotic_error(ref.m, ref.q, ref.q_bar, a, s),
                    "idg": asymptotic_error(ref.m0, ref.q0, ref.q_bar, a, s),
                    "odg": asymptotic_error(ref.m_bar, ref.q_bar, ref.q_bar, a, s)}
        for name in ERRORS:
            assert abs(getattr(err, name) - expected[name]) / expected[name] < 1e-13, name


atom_lists = st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 5.0), st.floats(0.05, 1.0)),
                      min_size=1, max_size=6).filter(lambda a: sum(x[0] * x[2] for x in a) > 1e-3)


@given(atoms=atom_lists, alpha=st.floats(0.05, 1e5), tau=st.floats(0.05, 20).filter(lambda v: abs(v - 1) > 1e-6),
       kappa=st.floats(0.05, 20), sigma=st.floats(0.0, 2.0), lam=st.sampled_from([0.0, 1e-6, 0.1, 3.0]))
def test_property_converges_and_splitting_an_atom_changes_nothing(atoms, alpha, tau, kappa, sigma, lam):
    s, t, p = (np.array(v) for v in zip(*atoms))
    spec = TaskSpectrum(train=s, test=t, weights=p)
    res = solve(alpha=alpha, tau=tau, kappa=kappa, sigma=sigma, lam=lam, spectrum=spec)
    assert res.converged and res.residual < 1e-10
    err = res.errors()
    for name in ERRORS:
        assert np.isfinite(getattr(err, name)) and getattr(err, name) >= 0
    # the law is a measure: splitting atom 0 in two halves and permuting the atoms is the same law
    split = TaskSpectrum(train=np.r_[s[::-1], s[0]], test=np.r_[t[::-1], t[0]],
                         weights=np.r_[p[::-1][:-1], p[0] / 2, p[0] / 2])
    err2 = solve(alpha=alpha, tau=tau, kappa=kappa, sigma=sigma, lam=lam, spectrum=split).errors()
    for name in ERRORS:
        assert rel(getattr(err2, name), getattr(err, name)) < 1e-11


# ------------------------------------------------------------------------------------------------
# kappa = inf, scale and size limits

def test_kappa_inf_spectrum_is_the_rank_r_population_limit():
    # a fresh task per prompt: the pool is the population law (delta = 0); no warnings (they are errors here)
    kw = dict(alpha=np.array([0.5, 4.0, 1e4]), tau=np.array([0.3, 1.7, 9.0]), kappa=np.inf, sigma=0.2)
    general = solve(**kw, spectrum=TaskSpectrum.low_rank(0.3))
    rank_r = solve(**kw, rho=0.3)
    assert np.all(general.converged) and np.all(general.stopped) and np.all(general.reason == "")
    eg, er = general.errors(), rank_r.errors()
    for name in ERRORS:
        assert np.max(rel(getattr(eg, name), getattr(er, name))) < 1e-13, name


@pytest.mark.parametrize("train,match", [([1e308, 1.0], "atoms must be <= 1e"),
                                         ([1e-300, 1e-300], "mean in \\[1e-30, 1e\\+30\\]"),
                                         ([1e29, 1e-5, 1e-5], None)])
def test_spectrum_scale_outside_float64_is_refused_by_name(train, match):
    if match is None:  # inside the limits: solved, converged, finite
        res = solve(alpha=2.0, tau=1.5, kappa=0.5, sigma=0.1, lam=0.01, spectrum=TaskSpectrum(train=train))
        assert bool(res.converged) and np.isfinite(res.errors().idg)
        return
    with pytest.raises(ValueError, match=match):
        TaskSpectrum(train=train)


def test_spectrum_size_is_refused_up_front():
    import time

    from lowrank_icl.numerics.forward.general import MAX_WORK
    from lowrank_icl.numerics.forward.spectrum import MAX_ATOMS

    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=f"atoms must be an integer >= 1 and <= {MAX_ATOMS}"):
        TaskSpectrum.parse("power:0.6,100000000")
    spec = TaskSpectrum.power_law(0.6, atoms=MAX_ATOMS)
    points = int(MAX_WORK / MAX_ATOMS) + 1
    with pytest.raises(ValueError, match="point-atoms, above the float64 limit"):
        solve(alpha=np.ones(points), tau=2.0, kappa=1.0, spectrum=spec)
    with pytest.raises(ValueError, match="above the precision=30 limit"):
        solve(alpha=1.0, tau=2.0, kappa=1.0, spectrum=spec, precision=30)
    assert time.perf_counter() - t0 < 10  # refused before any work
