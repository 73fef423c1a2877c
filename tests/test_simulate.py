"""Monte Carlo of the trained Gamma: reproducibility, cache, exact errors, statistics, CLI, and
theory vs simulation at small D with the pass rule |e_inf - theory| <= 3 SE(e_inf)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lowrank_icl.theory.forward.finite_size import SecondMoment, exact_test_error
from lowrank_icl.validation.forward import ridge, sampling
from lowrank_icl.validation.forward.simulate import simulate
from lowrank_icl.validation.stats import Estimate, compare, extrapolate, standard_error

POINT = dict(alpha=2.0, tau=2.0, kappa=1.0, rho=0.5, sigma=0.3, lam=0.1)


def test_standard_error_and_estimate():
    v = [1.0, 2.0, 4.0]
    # sd(ddof=1) = sqrt(((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2)/2) = sqrt(7/3); SE = sqrt(7/3)/sqrt(3)
    assert standard_error(v) == pytest.approx(np.sqrt(7 / 3) / np.sqrt(3), rel=1e-14)
    e = Estimate.of(v)
    assert e.mean == pytest.approx(7 / 3) and e.to_dict()["values"] == v
    assert np.isnan(standard_error([1.0]))


def test_extrapolation_recovers_exact_line_and_its_uncertainty():
    dims = np.array([10.0, 20.0, 40.0])
    sems = np.array([0.02, 0.01, 0.005])
    ex = extrapolate(dims, 0.7 + 3.0 / dims, sems)
    assert ex.e_inf == pytest.approx(0.7, abs=1e-12) and ex.slope == pytest.approx(3.0, abs=1e-10)
    # two points: e_inf = (D2 y2 - D1 y1)/(D2 - D1), so SE^2 = (D2 s2)^2 + (D1 s1)^2 over (D2 - D1)^2
    ex2 = extrapolate(dims[:2], 0.7 + 3.0 / dims[:2], sems[:2])
    assert ex2.se == pytest.approx(np.hypot(20 * 0.01, 10 * 0.02) / 10, rel=1e-12)
    # one D: the weighted mean and its SE
    one = extrapolate([16, 16], [1.0, 2.0], [1.0, 1.0])
    assert (one.e_inf, one.se) == (pytest.approx(1.5), pytest.approx(np.sqrt(0.5)))
    assert compare(0.7 + 2.9 * ex.se, ex).passed and not compare(0.7 + 3.1 * ex.se, ex).passed


def test_simulate_reproducible_cached_and_errors_exact(tmp_path):
    a = simulate(dim=10, **POINT, seeds=[0, 1], cache_dir=tmp_path)
    b = simulate(dim=10, **POINT, seeds=[0, 1], cache_dir=tmp_path)   # from the cache
    c = simulate(dim=10, **POINT, seeds=[0, 1])                          # recomputed
    assert len(list(tmp_path.glob("simulate/*.json"))) == 2        # one entry per seed, in the cache folder
    assert a.q.values == b.q.values == c.q.values
    assert a.converged and a.residual < 1e-7
    # errors() at another test setting equals e(Gamma) recomputed from the trained Gamma
    s = sampling.sizes(10, POINT["alpha"], POINT["tau"], POINT["kappa"], POINT["rho"])
    d = sampling.sample_pretraining(s, POINT["sigma"], 1)
    G = ridge.fit_ridge(d.x, d.h, d.y, POINT["lam"], s.n_tasks).gamma
    err = a.errors(alpha_test=3.7, sigma_test=0.1)     # L~ = round(37) = 37
    assert err.idg.values[1] == pytest.approx(exact_test_error(G, SecondMoment.subspace(d.subspace), 37, 0.1), rel=1e-10)
    assert err.tm.values[1] == pytest.approx(exact_test_error(G, SecondMoment.pool(d.pool), 37, 0.1), rel=1e-10)
    assert err.odg.values[1] == pytest.approx(exact_test_error(G, None, 37, 0.1), rel=1e-10)


def test_simulate_rejects_bad_input():
    with pytest.raises(ValueError, match="rho"):
        simulate(dim=8, alpha=1, tau=1, kappa=1, rho=0)
    with pytest.raises(ValueError, match="dim"):
        simulate(dim=0, alpha=1, tau=1, kappa=1)


def test_theory_matches_simulation_at_small_dim():
    """The statistical rule of docs/simulation.md at D = 12, 16, 24 (8 seeds each, ~20 s)."""
    from lowrank_icl.numerics import solve
    theory = solve(**POINT).errors()
    dims, runs = (12, 16, 24), {}
    for D in dims:
        runs[D] = simulate(dim=D, **POINT, seeds=range(8), workers=2).errors()
    for k in ("tm", "idg", "odg"):
        ex = extrapolate(dims, [getattr(runs[D], k).mean for D in dims], [getattr(runs[D], k).sem for D in dims])
        cmp = compare(getattr(theory, k), ex)
        assert cmp.passed, (k, cmp)
        # the rule must not pass vacuously: the extrapolation is informative (SE < 10% of the value)
        assert ex.se < 0.1 * abs(cmp.theory)


def test_cli_simulate_json_and_bad_input():
    cmd = [sys.executable, "-m", "lowrank_icl.validation.cli.main", "simulate", "--dim", "8", "--alpha", "2",
           "--tau", "1.5", "--kappa", "1", "--rho", "0.5", "--sigma", "0.2", "--lam", "0.1",
           "--seeds", "0-2", "--json", "--quiet"]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout)
    for k in ("tm", "idg", "odg"):
        assert set(out["errors"][k]) == {"mean", "sem", "n", "values"} and len(out["errors"][k]["values"]) == 3
    assert set(out["order_parameters"]) == {"q", "m", "q_bar", "m_bar", "q0", "m0"} and out["seconds"] > 0
    bad = subprocess.run(cmd[:-2] + ["--seeds", "4-1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "seeds" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("point", [
    dict(alpha=4.0, tau=1.2, kappa=3.0, rho=0.5, sigma=0.9, lam=0.1),      # the parameter set of the forward_alpha_test figure
    dict(alpha=16.0, tau=2.0, kappa=0.25, rho=0.5, sigma=0.5, lam=1e-4),   # kappa < rho side of the transition
    dict(alpha=1.0, tau=0.5, kappa=0.5, rho=1.0, sigma=0.1, lam=0.0),      # full rank, ridgeless, tau < 1
])
def test_theory_matches_simulation_at_moderate_dim(point):
    """Pass rule at D = 40, 60, 80 (8 seeds each); D chosen so that every size is an exact integer."""
    from lowrank_icl.numerics import solve
    theory = solve(**point).errors()
    dims = (40, 60, 80)
    runs = {D: simulate(dim=D, **point, seeds=range(8), workers=2).errors() for D in dims}
    for k in ("tm", "idg", "odg"):
        ex = extrapolate(dims, [getattr(runs[D], k).mean for D in dims], [getattr(runs[D], k).sem for D in dims])
        assert compare(getattr(theory, k), ex).passed, (k, ex, getattr(theory, k))


# --- one API: keyword-only parameters, broadcasting, reprs, kappa = inf --------------------------

def test_positional_model_parameters_are_refused():
    # solve reads (alpha, tau, kappa, ...) positionally; a positional simulate call would shift every
    # ratio by one place (dim first), so simulate takes keywords only
    with pytest.raises(TypeError, match="positional"):
        simulate(4, 1.2, 3, 0.5)


def test_errors_broadcast_over_test_arrays_as_solve_does():
    res = simulate(dim=10, **POINT, seeds=[0, 1, 2])
    grid = np.array([[0.5, 1.0, 4.0]])
    sig = np.array([[0.0], [0.2]])
    err = res.errors(alpha_test=grid, sigma_test=sig)
    assert err.idg.mean.shape == (2, 3) and err.idg.sem.shape == (2, 3)
    assert np.shape(err.idg.values) == (3, 2, 3)           # seeds first
    for i, s in enumerate(sig[:, 0]):
        for j, a in enumerate(grid[0]):
            one = res.errors(alpha_test=a, sigma_test=s)
            for k in ("tm", "idg", "odg"):
                assert getattr(err, k).mean[i, j] == pytest.approx(getattr(one, k).mean, rel=1e-13)
                assert getattr(err, k).sem[i, j] == pytest.approx(getattr(one, k).sem, rel=1e-10)
    assert np.array_equal(res.effective_alpha_test(grid), np.floor(grid * 10 + 0.5) / 10)


def test_concise_reprs():
    res = simulate(dim=8, **POINT, seeds=[0, 1, 2])
    est = res.errors().idg
    assert repr(est) == f"Estimate({est}, n=3)" and " ± " in str(est)
    # the mean is printed to the SE's second significant digit
    mean_text, sem_text = str(est).split(" ± ")
    assert abs(float(mean_text) - est.mean) <= 0.05 * est.sem + 1e-15 and float(sem_text) == pytest.approx(est.sem, rel=0.05)
    text = repr(res)
    assert text.startswith("SimulationResult(D=8, L=16, M=128, M0=8, r=4; 3 seeds")
    assert len(text.splitlines()) == 3 and "idg = " in text and "q0 = " in text


def test_duplicate_seeds_and_out_of_range_workers_are_refused():
    with pytest.raises(ValueError, match="seeds must be distinct"):
        simulate(dim=8, **POINT, seeds=[0, 1, 1])
    with pytest.raises(ValueError, match="workers must be an integer >= 1 and <= "):
        simulate(dim=8, **POINT, seeds=[0, 1], workers=10_000)
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        simulate(dim=8, **POINT, seeds=[0, 1], workers=0)


def test_resources_are_estimated_before_allocation(monkeypatch):
    monkeypatch.setenv("LOWRANK_ICL_MEMORY_LIMIT", "1G")
    # D = 8, tau = 1e6: the dense design alone would be 33 GB; the automatic rule picks the
    # matrix-free cg, whose 9.2 GB of data still exceed the 1 GiB limit: refused at once
    with pytest.raises(ValueError, match=r"9.22 GB of memory \(solver cg\), more than the limit 1.07 GB"):
        simulate(dim=8, alpha=2, tau=1e6, kappa=1, seeds=[0])
    with pytest.raises(ValueError, match="TB of memory"):
        simulate(dim=100_000, alpha=1, tau=1, kappa=1, seeds=[0])


def test_kappa_inf_draws_a_fresh_task_for_every_prompt():
    s = sampling.sizes(8, 2.0, 50.0, float("inf"), 0.5)
    assert s.fresh_tasks and s.kappa == float("inf")
    d = sampling.sample_pretraining(s, 0.0, 3)
    assert d.pool is None and d.task_index is None
    # independent tasks: the mean feature over M prompts has squared norm ~ E||h||^2 / M; with one
    # shared task (M0 = 1) it would be ~ ||w||^2, hundreds of times larger
    mean_sq = float(np.sum(d.h.mean(axis=0) ** 2))
    per_prompt = float(np.mean(np.sum(d.h ** 2, axis=1)))
    assert mean_sq < 3 * per_prompt / s.n_prompts
    shared = sampling.sample_pretraining(sampling.sizes(8, 2.0, 50.0, 1 / 8, 0.5), 0.0, 3)
    assert float(np.sum(shared.h.mean(axis=0) ** 2)) > 100 * per_prompt / s.n_prompts


def test_kappa_inf_matches_the_theory_and_tm_equals_idg():
    """kappa = inf against the derived kappa = inf limit of the theory, by the pass rule at
    D = 16, 24, 32, 40 (10 seeds each, ~6 s)."""
    from lowrank_icl.numerics import solve
    point = dict(alpha=2.0, tau=2.0, rho=0.5, sigma=0.3, lam=0.0)
    theory = solve(kappa=float("inf"), **point).errors()
    dims, runs = (16, 24, 32, 40), {}
    for D in dims:
        runs[D] = simulate(dim=D, kappa=float("inf"), **point, seeds=range(10)).errors()
        assert runs[D].tm.values == runs[D].idg.values     # the pool is the task distribution
    for k in ("idg", "odg"):
        ex = extrapolate(dims, [getattr(runs[D], k).mean for D in dims], [getattr(runs[D], k).sem for D in dims])
        assert compare(getattr(theory, k), ex).passed, (k, ex)
        assert ex.se < 0.05 * getattr(theory, k)
    with pytest.raises(ValueError, match="kappa = inf needs lam = 0"):
        simulate(dim=8, alpha=2, tau=2, kappa=float("inf"), lam=0.1, seeds=[0])


# --- cache keyed on the job and the code ---------------------------------------------------------

def test_cache_is_keyed_on_the_computing_code(tmp_path, monkeypatch):
    from lowrank_icl.validation import cache as cache_module
    from lowrank_icl.validation.forward import simulate as sim_module

    calls = []
    real_run_seed = sim_module.run_seed
    monkeypatch.setattr(sim_module, "run_seed", lambda job: calls.append(job["seed"]) or real_run_seed(job))
    simulate(dim=8, **POINT, seeds=[0, 1], cache_dir=tmp_path)
    simulate(dim=8, **POINT, seeds=[0, 1, 2], cache_dir=tmp_path)        # seeds 0, 1 from the cache
    assert calls == [0, 1, 2]
    assert len(list((tmp_path / "simulate").glob("*.json"))) == 3
    # an edit of the ridge solver's source changes the fingerprint, hence every key: recomputed
    edited = tmp_path / "ridge_edited.py"
    edited.write_text(Path(ridge.__file__).read_text() + "\n# edited\n")
    real_sources = cache_module._source_files
    monkeypatch.setattr(cache_module, "_source_files", lambda name: [edited] if name.endswith(".ridge")
                        else real_sources(name))
    cache_module.code_fingerprint.cache_clear()
    try:
        simulate(dim=8, **POINT, seeds=[0], cache_dir=tmp_path)
    finally:
        cache_module.code_fingerprint.cache_clear()
    assert calls == [0, 1, 2, 0]
    assert "lowrank_icl.validation.forward.ridge" in sim_module.SIMULATION_CODE


def test_corrupt_cache_entry_is_recomputed_with_a_note(tmp_path, capsys):
    a = simulate(dim=8, **POINT, seeds=[0], cache_dir=tmp_path)
    (entry,) = (tmp_path / "simulate").glob("*.json")
    entry.write_text(entry.read_text().replace('"q0"', '"q_zero"'))     # parses, but lacks a field
    b = simulate(dim=8, **POINT, seeds=[0], cache_dir=tmp_path)
    assert "discarding corrupt cache entry" in capsys.readouterr().err
    assert a.q0.values == b.q0.values


@pytest.mark.parametrize("mode, argument", [
    ({"y2_column": True}, {"alpha_test": 3.0}), ({"y2_column": True}, {"sigma_test": 0.5}),
    ({"y2_column": True}, {"workers": 2}), ({"y2_column": True}, {"cache_dir": "."}),
    ({"y2_column": True}, {"pool_repeats": 2}), ({"spectrum": "spiked"}, {"rho": 0.5}),
    ({"spectrum": "spiked"}, {"pool_repeats": 2}), ({"spectrum": "spiked"}, {"cache_dir": "."}),
])
def test_a_mode_refuses_an_argument_it_cannot_honour(mode, argument):
    from lowrank_icl.numerics import TaskSpectrum
    if "spectrum" in mode:
        mode = {"spectrum": TaskSpectrum.spiked(4.0, 0.5)}
    name = next(iter(argument))
    with pytest.raises(ValueError, match=f"cannot honour {name}"):
        simulate(dim=8, alpha=2.0, tau=2.0, kappa=1.0, seeds=2, **mode, **argument)


def test_the_spectrum_mode_honours_alpha_test_and_records_the_inputs():
    from lowrank_icl.numerics import TaskSpectrum
    spec = TaskSpectrum.spiked(4.0, 0.5)
    res = simulate(dim=8, alpha=2.0, tau=1.2, kappa=1.0, sigma=0.2, seeds=2, spectrum=spec, alpha_test=3.0)
    assert res.errors().odg.values == res.errors(alpha_test=3.0).odg.values
    assert res.errors().odg.values != res.errors(alpha_test=2.0).odg.values
    doc = res.to_dict()
    # tau as given, not the simulated M/D^2 = 77/64
    assert doc["parameters"]["tau"] == 1.2 and doc["parameters"]["alpha_test"] == 3.0 and doc["test"]["L"] == 24


def test_simulators_take_keywords_only():
    from lowrank_icl.numerics import TaskSpectrum
    from lowrank_icl.validation.forward.spectrum_simulate import simulate_spectrum
    from lowrank_icl.validation.forward.y2_column import simulate_y2_column
    with pytest.raises(TypeError):
        simulate_spectrum(8, 2.0, 1.5, 1.0, spectrum=TaskSpectrum.spiked(4.0, 0.5))
    with pytest.raises(TypeError):
        simulate_y2_column(8, 2.0, 2.0, 1.0)


def test_text_output_summarizes_the_seeds(capsys):
    from lowrank_icl.validation.cli.main import main
    assert main(["simulate", "--dim", "4", "--alpha", "2", "--tau", "1", "--kappa", "1", "--seeds", "0-40",
                 "--quiet", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "seeds=0-40 (41)" in out and "[0, 1, 2" not in out and "0, 1, 2" not in out and "e_IDG  = " in out and " ± " in out
