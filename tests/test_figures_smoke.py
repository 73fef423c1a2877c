"""Smoke tests at tiny sizes: every registered figure builder and ``lowrank-icl phase`` run end
to end and write what they promise (``lowrank-icl bench --quick`` is smoke-tested in test_cli_json.py).

The numbers at these sizes mean nothing; the physics is checked elsewhere. What is pinned here:
each builder runs, writes PNG/PDF/CSV, its CSV has the header it returns and one cell per column
in every row, and the columns that carry its result are finite numbers.
"""
from __future__ import annotations

import csv
import inspect
import json
import math

import pytest
from lowrank_icl.validation.cli.main import main
from lowrank_icl.validation.figures.registry import all_figures

# Per figure: the CSV columns that must hold finite numbers, and which rows to check
# (full_attention also has summary rows whose D column is "inf(model)" or "excess~D^-b").
FORWARD_COLUMNS = ("e_inf", "se", "theory", "mean_at_max_D", "sem_at_max_D")
RESULT_COLUMNS = {
    "learning_curves": ("theory", "sim_extrapolated", "se"),
    "forward_alpha_test": FORWARD_COLUMNS,
    "forward_order_parameters": FORWARD_COLUMNS,
    "forward_rank_transition": FORWARD_COLUMNS,
    "forward_double_descent": FORWARD_COLUMNS,
    "forward_decomposition": FORWARD_COLUMNS,
    "full_attention": ("attention", "attention_se", "ridge", "ridge_se", "excess", "gamma_distance", "theory"),
    "phase_transition": ("alpha", "kappa_star", "width_ln_kappa", "slope_at_star", "e_idg_at_star"),
    "phase_diagram_kappa_rho": ("alpha", "rho", "kappa_star"),
    "prediction_distribution": ("theory", "e_inf", "se", "ks_pvalue_at_max_D"),
    "phase_diagram_tau_kappa": ("tau_on_contour", "kappa_on_contour"),
    "pretraining_design": ("rho", "kappa", "alpha_star", "tau", "token_budget", "e_idg"),
    "crossover_simulation": ("kappa_star_sim", "se_bootstrap", "kappa_star_theory_on_grid", "kappa_star_theory"),
    "inverse_noise": ("sigma", "mse", "sem_seeds", "sem_test", "ore_theory", "lt1_theory", "median_mse"),
    "inverse_prior": ("mean_rel_error", "cov_rel_error", "eig1"),
    "inverse_rank": ("r", "mse", "sem", "slope_r_over_N"),
    "inverse_scaling": ("slope_mse", "ci95_lo", "ci95_hi", "se"),
}
ROW_FILTER = {"full_attention": lambda row: row["D"].isdigit()}
# Figures whose tiny-size smoke test lives in their own test module.
OWN_SMOKE_TEST = {"bayes_crossover": "tests/test_figure_bayes.py",
                  **{name: "tests/test_spectra_figures.py"
                     for name in ("spectra_transition", "spectra_power_law", "spectra_alignment")},
                  "inverse_depth": "tests/test_inverse_figures.py",
                  **{name: "tests/test_transformers.py"
                     for name in ("transformers_kappa", "transformers_rho", "transformers_alpha_test")}}


def _tiny_inverse_scale(monkeypatch):
    """The inverse builders size themselves by a named scale: register a tiny one."""
    from lowrank_icl.validation.inverse import experiments
    tiny = experiments.Scale(d=10, N=6, r=2, n_s=120, n_test=60, K=1, seeds=(0, 1), sigmas=(0.1, 0.3),
                             ranks=(1, 2, 3, 6), sigma_sweep=(0.1, 0.3, 1.0), conds=(1, 3, 10), n_prior=200)
    monkeypatch.setitem(experiments.SCALES, "tiny", tiny)
    return "tiny"


def _build_tiny(name, out_dir, monkeypatch):
    """Run a builder at its smoke-test size: ``tiny=True``, or the tiny scale for the inverse family."""
    import matplotlib
    matplotlib.use("Agg")
    entry = all_figures()[name]
    messages = []
    if name.startswith("inverse_"):
        return entry.build(out_dir, False, messages.append, scale=_tiny_inverse_scale(monkeypatch))
    if "tiny" not in inspect.signature(entry.build).parameters:
        pytest.fail(f"figure {name!r}: its builder needs a tiny=False keyword (smoke-test size)")
    return entry.build(out_dir, False, messages.append, tiny=True)


@pytest.fixture(scope="module")
def tiny_figures(tmp_path_factory):
    """Build each figure once per module run: {name: (FigureOutput, its folder)}."""
    built = {}

    def get(name):
        if name not in built:
            out_dir = tmp_path_factory.mktemp(name)
            with pytest.MonkeyPatch.context() as mp:
                built[name] = (_build_tiny(name, out_dir, mp), out_dir)
        return built[name]
    return get


@pytest.mark.parametrize("name", list(all_figures()))
def test_figure_builds_at_tiny_size(name, tiny_figures):
    if name in OWN_SMOKE_TEST:
        pytest.skip(f"smoke-tested in {OWN_SMOKE_TEST[name]}")
    out, tmp_path = tiny_figures(name)
    assert out.name == name
    for ext in ("png", "pdf", "csv"):
        path = tmp_path / f"{name}.{ext}"
        assert path in out.files and path.stat().st_size > 0, path
    assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.rows and all(len(row) == len(out.header) for row in out.rows)

    with open(tmp_path / f"{name}.csv", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert set(out.header) <= set(header)
    assert len(rows) >= len(out.rows) and all(len(row) == len(header) for row in rows)
    records = [dict(zip(header, row)) for row in rows]
    checked = [r for r in records if ROW_FILTER.get(name, lambda r: True)(r)]
    assert checked
    assert name in RESULT_COLUMNS, f"list the result columns of the new figure {name!r} in RESULT_COLUMNS"
    for column in RESULT_COLUMNS[name]:
        values = [float(r[column]) for r in checked]
        assert all(math.isfinite(v) for v in values), (column, values)


def test_pretraining_design_allocations_spend_the_token_budget(tiny_figures):
    """Each optimal split (alpha*, tau*) of a fixed token budget B = tau alpha spends exactly B."""
    out, _ = tiny_figures("pretraining_design")
    budget_rows = [dict(zip(out.header, row)) for row in out.rows if row[0] == "token_budget"]
    assert {round(r["token_budget"], 6) for r in budget_rows} == {10.0, 30.0, 100.0}


def test_phase_cli_json(capsys):
    assert main(["phase", "--rho", "0.3", "--tau", "2", "--sigma", "0.1", "--alpha", "1e2,1e3,1e4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"]["alpha"] == [100.0, 1000.0, 10000.0]
    assert all(out["converged"])
    kappa_star, width = out["kappa_star"], out["width"]
    assert len(kappa_star) == len(width) == 3
    # the crossover approaches kappa = rho and narrows as alpha grows
    assert all(abs(k - 0.3) < 0.05 for k in kappa_star)
    assert width[0] > width[1] > width[2] > 0
    assert 0 < out["width_exponent"]["exponent"] < 1


def test_phase_cli_text(capsys):
    assert main(["phase", "--rho", "0.3", "--tau", "2", "--alpha", "1e3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "kappa*" in lines[1]
    (row,) = [line.split() for line in lines[2:]]
    assert float(row[0]) == 1e3 and abs(float(row[1]) - 0.3) < 0.05 and row[-1] == "True"


def test_figures_needing_a_missing_extra_are_skipped_or_refused(monkeypatch, tmp_path, capsys):
    """Without jax, an all-figures run skips the [nn] figures with a note; naming one is refused."""
    import importlib.util

    from lowrank_icl.validation.figures import registry
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("jax", "optax") else real_find_spec(name, *a))
    needing = [n for n, spec in all_figures().items() if spec.extra == "nn"]
    assert needing == ["transformers_kappa", "transformers_rho", "transformers_alpha_test"]
    assert main(["figures", "--quick", "--only", "transformers_rho", "--out", str(tmp_path), "--no-cache"]) == 2
    assert "pip install 'lowrank-icl[nn]'" in capsys.readouterr().err
    built = []
    monkeypatch.setattr(registry, "_REGISTRY", {n: s for n, s in registry._REGISTRY.items()
                                                if n in needing or n == "pretraining_design"})
    monkeypatch.setattr(registry, "FIGURE_MODULES", ())
    original = registry._REGISTRY["pretraining_design"]
    registry._REGISTRY["pretraining_design"] = registry.FigureSpec(
        original.name, lambda out, quick, progress: built.append(out) or registry.FigureOutput("pretraining_design"),
        original.description)
    registry.run_figures(tmp_path, quick=True, only=None)
    captured = capsys.readouterr()
    assert len(built) == 1
    assert captured.err.count("needs the [nn] extra") == 3
