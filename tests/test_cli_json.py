"""One JSON layout for every command: inputs under "parameters", the "version", errors nested the same
way in solve and simulate, strict JSON (no bare NaN or Infinity), CLI defaults equal to the API's."""
import json
import math

import numpy as np
import pytest

from lowrank_icl.validation.cli.main import main
from lowrank_icl.validation.io import dumps_json, json_document

FORWARD = ["--alpha", "2", "--tau", "1.5", "--kappa", "1", "--rho", "0.5", "--sigma", "0.2", "--lam", "0.1"]


def _strict(text: str):
    """Parse refusing the NaN / Infinity extensions of Python's json."""
    def refuse(token):
        raise AssertionError(f"bare {token} in JSON output")
    return json.loads(text, parse_constant=refuse)


def run_json(argv, capsys):
    code = main(argv)
    out = capsys.readouterr().out
    assert code == 0
    return _strict(out)


def test_json_rules_for_non_finite_values():
    doc = json_document({"kappa": float("inf")}, {"a": float("nan"), "b": [1.0, -math.inf], "c": 0.1})
    assert doc == {"parameters": {"kappa": "inf"}, "version": doc["version"], "a": None, "b": [1.0, "-inf"], "c": 0.1}
    assert _strict(dumps_json(doc)) == doc
    with pytest.raises(ValueError, match="reserved"):
        json_document({}, {"version": 1})


def test_solve_and_simulate_share_the_layout(capsys):
    import lowrank_icl.validation as v
    solve_doc = run_json(["solve", *FORWARD, "--json"], capsys)
    sim_doc = run_json(["simulate", "--dim", "8", *FORWARD, "--seeds", "0-2", "--quiet", "--no-cache", "--json"],
                       capsys)
    for doc in (solve_doc, sim_doc):
        assert doc["version"] == v.__version__
        assert {k: doc["parameters"][k] for k in ("alpha", "tau", "kappa", "rho", "sigma", "lam")} == \
            {"alpha": 2.0, "tau": 1.5, "kappa": 1.0, "rho": 0.5, "sigma": 0.2, "lam": 0.1}
        assert set(doc["errors"]) == {"tm", "idg", "odg"}
    assert isinstance(solve_doc["errors"]["idg"], float)
    assert set(sim_doc["errors"]["idg"]) == {"mean", "sem", "n", "values"} and len(sim_doc["errors"]["idg"]["values"]) == 3
    assert set(sim_doc["order_parameters"]) == {"q", "m", "q_bar", "m_bar", "q0", "m0"}
    assert sim_doc["parameters"]["seeds"] == [0, 1, 2] and sim_doc["parameters"]["dim"] == 8


def test_simulate_kappa_inf_on_the_cli(capsys):
    doc = run_json(["simulate", "--dim", "8", "--alpha", "2", "--tau", "1.5", "--kappa", "inf", "--rho", "0.5",
                    "--seeds", "0-1", "--quiet", "--no-cache", "--json"], capsys)
    assert doc["parameters"]["kappa"] == "inf" and doc["sizes"]["M0"] == "inf"
    assert doc["errors"]["tm"] == doc["errors"]["idg"]


def test_one_seed_gives_null_sem_not_nan(capsys):
    doc = run_json(["simulate", "--dim", "6", *FORWARD, "--seeds", "3", "--quiet", "--no-cache", "--json"], capsys)
    assert doc["errors"]["tm"]["sem"] is None


def test_phase_json_and_defaults_follow_the_api(capsys):
    import inspect

    from lowrank_icl.numerics import phase_boundary
    api = inspect.signature(phase_boundary).parameters
    doc = run_json(["phase", "--rho", "0.5", "--tau", "2", "--alpha", "1e2,1e3", "--json"], capsys)
    assert doc["parameters"] == {"alpha": [100.0, 1000.0], "tau": 2.0, "rho": 0.5, "sigma": api["sigma"].default,
                                 "lam": api["lam"].default, "protocol": "idg"}
    explicit = run_json(["phase", "--rho", "0.5", "--tau", "2", "--alpha", "1e2,1e3", "--sigma",
                         repr(api["sigma"].default), "--json"], capsys)
    assert explicit == doc


def test_bench_smoke_json(capsys):
    doc = run_json(["bench", "--quick", "--json"], capsys)
    assert doc["parameters"]["dims"] == [8] and doc["parameters"]["ratio_dim"] == 8 and "version" in doc
    assert doc["spectrum"] and doc["spectrum_vs_sampled_resolvent"]
    assert doc["speed_ratio"]["idg_difference"] < 1e-8
    (row,) = doc["sizes"]
    assert row["D"] == 8 and row["converged"] is True


def test_bench_table_smoke(capsys):
    assert main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "speed ratio dense/auto" in out and "general spectrum:" in out
    assert any(line.split()[:1] == ["8"] for line in out.splitlines())      # the D = 8 row of the table


def test_inverse_bench_smoke_json(capsys):
    """Per-evaluation times of every kernel, and both trainers run to their stated criterion."""
    doc = run_json(["bench", "--inverse", "--inverse-tasks", "40", "--no-converge", "--json"], capsys)
    assert doc["parameters"]["n_s"] == 40 and doc["parameters"]["threads"] == 2
    assert set(doc["per_evaluation_s"]) == {"reference", "fast_float64", "fast_float32", "fast_float32_2_threads"}
    assert all(t > 0 for t in doc["per_evaluation_s"].values())
    from lowrank_icl.validation.bench import run_inverse_bench
    conv = run_inverse_bench(n_s=40, rtol=1e-4, repeats=1, as_json=True)["to_convergence"]
    assert conv["baseline"]["converged"] and conv["default"]["converged"]
    assert conv["ratio"] > 0 and conv["default"]["init"] == "lt1" and conv["baseline"]["init"] == "gd"


def test_solve_kappa_inf_passes_through_the_cli(capsys):
    from lowrank_icl.numerics import solve
    doc = run_json(["solve", "--alpha", "2", "--tau", "2", "--kappa", "inf", "--rho", "0.5", "--sigma", "0.3",
                    "--json"], capsys)
    assert doc["parameters"]["kappa"] == "inf"
    api = solve(alpha=2.0, tau=2.0, kappa=float("inf"), rho=0.5, sigma=0.3).errors()
    assert doc["errors"] == {k: float(getattr(api, k)) for k in ("tm", "idg", "odg")}


def test_solve_and_simulate_cli_defaults_equal_the_api_defaults():
    import inspect

    from lowrank_icl.numerics import solve
    from lowrank_icl.validation.cli.main import build_parser
    from lowrank_icl.validation.forward.simulate import simulate
    parser = build_parser()
    for command, function in (("solve", solve), ("simulate", simulate)):
        extra = ["--dim", "8"] if command == "simulate" else []
        args = parser.parse_args([command, *extra, "--alpha", "1", "--tau", "1", "--kappa", "1"])
        api = inspect.signature(function).parameters
        for name in ("rho", "sigma", "lam", "alpha_test", "sigma_test", "method"):
            if name in api:
                assert getattr(args, name) == api[name].default, (command, name)
    sim_args = parser.parse_args(["simulate", "--dim", "8", "--alpha", "1", "--tau", "1", "--kappa", "1"])
    assert sim_args.workers == inspect.signature(simulate).parameters["workers"].default


def test_simulate_spectrum_on_the_cli(capsys):
    """`simulate --spectrum`: the API's numbers, and the test noise entering as e = s_t^2 (1 + q_bar/a_t) + ..."""
    from lowrank_icl.numerics import TaskSpectrum
    from lowrank_icl.validation.forward.spectrum_simulate import simulate_spectrum
    base = ["simulate", "--dim", "8", "--alpha", "2", "--tau", "1.5", "--kappa", "1", "--sigma", "0.2",
            "--lam", "0.1", "--spectrum", "spiked:4,0.5", "--seeds", "0-2", "--json"]
    quiet = run_json(base, capsys)
    noisy = run_json(base + ["--sigma-test", "0.7", "--alpha-test", "3"], capsys)
    api = simulate_spectrum(dim=8, alpha=2.0, tau=1.5, kappa=1.0, sigma=0.2, lam=0.1,
                            spectrum=TaskSpectrum.spiked(4.0, 0.5), seeds=range(3))
    assert quiet["parameters"]["spectrum"] == "spiked:4,0.5" and quiet["sizes"] == {"D": 8, "L": 16, "M": 96, "M0": 8}
    assert quiet["converged"] is True and 0 <= quiet["residual"] < 1e-6
    assert quiet["errors"]["odg"]["values"] == list(api.errors().odg.values)
    # sigma_t^2 enters as sigma_t^2 (1 + q_bar / alpha_t): the two documents differ by that per seed
    q_bar = np.array([r["q_bar"] for r in api.per_seed])
    lt = 24 / 8
    quiet3 = api.errors(alpha_test=3.0)
    for k in ("tm", "idg", "odg"):
        expected = np.array(getattr(quiet3, k).values) + (0.7**2 - 0.2**2) * (1 + q_bar / lt)
        np.testing.assert_allclose(noisy["errors"][k]["values"], expected, rtol=1e-12)
    theory = api.theory()
    th_q_bar = float(theory.q_bar)
    for k in ("tm", "idg", "odg"):
        base_th = float(getattr(theory.errors(alpha_test=lt, sigma_test=0.2), k))
        assert noisy["theory"]["errors"][k] == pytest.approx(base_th + (0.7**2 - 0.2**2) * (1 + th_q_bar / lt),
                                                             rel=1e-12)
