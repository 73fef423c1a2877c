"""Conventions every subcommand shares: one JSON layout (indent 2, inputs under "parameters", the
"version", TM/IDG/ODG nested under "errors"), "±" in text, one seed rule, the reasons of results
that did not converge, and a start-up that imports only the subcommand that runs."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from lowrank_icl.validation.cli.main import main

TOP_LEVEL_ERRORS = {"tm", "idg", "odg"}


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def layout(text: str) -> dict:
    """Parse one document and check the layout shared by every command."""
    doc = json.loads(text)
    assert list(doc)[:2] == ["parameters", "version"], list(doc)[:3]
    assert text.splitlines()[1] == '  "parameters": {', "indented by 2"
    assert not TOP_LEVEL_ERRORS & set(doc), "tm/idg/odg belong under 'errors'"
    return doc


def test_every_command_prints_one_json_layout(tmp_path, capsys):
    forward = ["--alpha", "2", "--tau", "1.5", "--kappa", "1", "--rho", "0.5", "--sigma", "0.2"]
    docs = {
        "solve": layout(run(["solve", *forward, "--json"], capsys)),
        "simulate": layout(run(["simulate", "--dim", "6", *forward, "--seeds", "0-1", "--quiet", "--no-cache",
                                "--json"], capsys)),
        "bayes": layout(run(["bayes", "--estimator", "gmmse", "--dim", "6", "--alpha", "2", "--kappa", "1",
                             "--rho", "0.5", "--seeds", "0-1", "--prompts", "20", "--json"], capsys)),
        "phase": layout(run(["phase", "--rho", "0.5", "--tau", "2", "--alpha", "1e2,1e3", "--json"], capsys)),
        "sweep": layout(run(["sweep", "--alpha", "1,2", "--tau", "2", "--kappa", "1", "--out",
                             str(tmp_path / "s.nc"), "--quiet", "--json"], capsys)),
        "inverse": layout(run(["inverse", "--dim", "6", "--context", "4", "--rank", "2", "--tasks", "40",
                               "--layers", "1", "--test", "20", "--seeds", "0-1", "--json"], capsys)),
        "figures --list": layout(run(["figures", "--list", "--json"], capsys)),
    }
    for name in ("solve", "simulate", "bayes"):
        assert set(docs[name]["errors"]) == TOP_LEVEL_ERRORS, name
    assert docs["bayes"]["parameters"]["dim"] == 6 or docs["bayes"]["parameters"].get("D") == 6
    # each input once: phase's alphas only under parameters
    assert docs["phase"]["parameters"]["alpha"] == [100.0, 1000.0] and "alpha" not in docs["phase"]
    assert docs["sweep"]["cells"] == 2 and docs["sweep"]["parameters"]["grid"]["alpha"] == [1.0, 2.0]
    # the trained LT has one name, that of its loss
    assert "LT-supervised" in docs["inverse"]["mse"] and "LT" not in docs["inverse"]["mse"]
    assert docs["inverse"]["parameters"]["seeds"] == [0, 1]
    assert {f["name"] for f in docs["figures --list"]["figures"]} >= {"phase_transition"}


def test_text_output_writes_plus_minus_one_way(capsys):
    out = run(["bayes", "--estimator", "gmmse", "--dim", "6", "--alpha", "2", "--kappa", "1", "--rho", "0.5",
               "--seeds", "0-1", "--prompts", "20"], capsys)
    assert "±" in out and "+-" not in out
    out = run(["simulate", "--dim", "6", "--alpha", "2", "--tau", "1.5", "--kappa", "1", "--rho", "0.5",
               "--seeds", "0-300", "--quiet", "--no-cache"], capsys)
    assert "+-" not in out and "seeds=0-300 (301)" in out and "299" not in out   # not every seed listed


def test_sweep_with_kappa_inf_writes_its_json(tmp_path, capsys):
    doc = layout(run(["sweep", "--alpha", "1,2", "--tau", "2", "--kappa", "inf", "--out", str(tmp_path / "k.nc"),
                      "--quiet", "--json"], capsys))
    assert doc["parameters"]["grid"]["kappa"] == "inf" and doc["cells"] == 2


def test_solve_text_prints_the_reason_and_nan(monkeypatch, capsys):
    """A result that did not converge: the text says why, and NaN reads nan (never None)."""
    import lowrank_icl.numerics as numerics
    real = numerics.solve

    class Failed:
        def __init__(self, res):
            self.res = res

        def to_dict(self, **kwargs):
            doc = dict(self.res.to_dict(**kwargs))
            doc.update(converged=False, residual=float("nan"), reason="the root search hit its iteration cap",
                       errors={k: float("nan") for k in ("tm", "idg", "odg")})
            return doc

    monkeypatch.setattr(numerics, "solve", lambda **kw: Failed(real(**kw)))
    out = run(["solve", "--alpha", "2", "--tau", "1.5", "--kappa", "1"], capsys)
    assert "reason: the root search hit its iteration cap" in out
    assert "None" not in out and "idg          nan" in out and "converged: False" in out


def test_a_spectrum_file_with_a_byte_order_mark_is_read(tmp_path, capsys):
    plain, bom = tmp_path / "plain.json", tmp_path / "bom.json"
    plain.write_text('{"train": [0.5, 2.0], "weights": [0.5, 0.5]}', encoding="utf-8")
    bom.write_text('{"train": [0.5, 2.0], "weights": [0.5, 0.5]}', encoding="utf-8-sig")
    docs = [json.loads(run(["solve", "--alpha", "2", "--tau", "2", "--kappa", "1", "--spectrum", str(f), "--json"],
                           capsys)) for f in (plain, bom)]
    assert docs[0]["errors"] == docs[1]["errors"] and docs[0]["converged"]


# ------------------------------------------------------------------------------------------- phase

def test_phase_reports_no_crossover_where_the_error_does_not_depend_on_kappa(capsys):
    from lowrank_icl.numerics import phase_boundary
    pb = phase_boundary(alpha=[0.01, 1e2], tau=2, rho=0.3)
    assert list(pb.converged) == [False, True]
    assert np.isnan(pb.kappa_star[0]) and np.isnan(pb.width[0]) and "no crossover" in pb.reason[0]
    assert pb.reason[1] == "" and abs(pb.kappa_star[1] - 0.3) < 0.01
    out = run(["phase", "--rho", "0.3", "--tau", "2", "--alpha", "0.01,1e2"], capsys)
    assert "alpha = 0.01: no crossover" in out and "None" not in out


def test_phase_tm_at_large_alpha_warns_nothing_and_says_why():
    # pytest turns warnings into errors: the 20 RuntimeWarnings of a flat error curve would fail here
    from lowrank_icl.numerics import phase_boundary
    pb = phase_boundary(alpha=1e4, tau=2, rho=0.3, protocol="tm")
    assert not pb.converged and np.isnan(pb.kappa_star) and np.isnan(pb.slope)
    assert "no crossover" in pb.reason and "e_tm" in pb.reason


@pytest.mark.parametrize("alpha, message", [([], "alpha must be a number or a non-empty"),
                                            ([1e2, 1e2], "alpha must not repeat")])
def test_phase_boundary_refuses_empty_or_repeated_alpha(alpha, message):
    from lowrank_icl.numerics import phase_boundary
    with pytest.raises(ValueError, match=message):
        phase_boundary(alpha=alpha, tau=2, rho=0.3)


# ------------------------------------------------------------------------------------------- seeds

def test_seed_parsing_is_linear():
    from lowrank_icl.numerics.utils import check_seeds
    start = time.perf_counter()
    seeds = check_seeds("0-200000", "--seeds")
    assert len(seeds) == 200001 and time.perf_counter() - start < 2.0   # a list.count check takes hours


def test_one_seed_rule_for_the_python_api():
    from lowrank_icl.numerics.inverse import InverseParams
    from lowrank_icl.validation.inverse.experiments import compare_estimators
    from lowrank_icl.validation.sweeps import run_sweep
    for call in (lambda: run_sweep(dict(alpha=1, tau=2, kappa=1), [6], [2, 2]),
                 lambda: compare_estimators(InverseParams(d=4, N=3, r=2, n_s=10), seeds=[2, 2])):
        with pytest.raises(ValueError, match=r"^seeds must be distinct \(repeats \[2\]\)"):
            call()


def test_inverse_takes_the_seed_syntax_of_every_command(capsys):
    doc = json.loads(run(["inverse", "--dim", "6", "--context", "4", "--rank", "2", "--tasks", "40", "--layers",
                          "1", "--test", "20", "--seeds", "0-2", "--loss", "supervised", "--json"], capsys))
    assert doc["parameters"]["seeds"] == [0, 1, 2] and doc["mse"]["RE"]["seeds"] == 3


def test_lt_maxiter_bounds_every_precision_phase():
    from lowrank_icl.numerics.inverse import LT
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8, 6))
    Y = rng.standard_normal((200, 8))
    fit = LT(K=2, loss="unsupervised", maxiter=5, dtype=np.float32).fit(X, Y)
    assert fit.train_.iterations <= 5 and not fit.train_.converged


# ---------------------------------------------------------------------------------------- start-up

def _modules_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_help_and_version_import_no_subcommand_and_no_numpy():
    for argv in (["--help"], ["--version"]):
        loaded = _modules_after("from lowrank_icl.validation.cli.main import main\n"
                                f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass")
        commands = {m for m in loaded if m.startswith("lowrank_icl.validation.cli.")} - {
            "lowrank_icl.validation.cli.main"}
        assert not commands and "numpy" not in loaded, (argv, commands)
    loaded = _modules_after("from lowrank_icl.validation.cli.main import main\n"
                            "try:\n    main(['solve', '--help'])\nexcept SystemExit:\n    pass")
    assert "lowrank_icl.validation.cli.solve" in loaded and "lowrank_icl.validation.cli.sweep" not in loaded


def test_numerics_import_leaves_scipy_stats_and_optimize_for_first_use():
    loaded = _modules_after("import lowrank_icl.numerics")
    assert not {"scipy.stats", "scipy.optimize"} & loaded


def test_transformer_json_follows_the_layout():
    # in a child process: JAX's threads would make every later fork of this test process warn
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    proc = subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli.main", "transformer", "--model", "linear",
                           "--dim", "4", "--alpha", "1", "--tau", "2", "--kappa", "1", "--steps", "5",
                           "--test-prompts", "20", "--quiet", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = layout(proc.stdout)
    assert set(doc["errors"]) == TOP_LEVEL_ERRORS and doc["parameters"]["dim"] == 4
