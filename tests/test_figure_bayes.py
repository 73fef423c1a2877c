"""Smoke test of the bayes_crossover figure at tiny sizes, with an extra series through add_series."""
import numpy as np

from lowrank_icl.validation.figures import bayes as fig_bayes


def test_bayes_crossover_figure_tiny(tmp_path, monkeypatch):
    monkeypatch.setattr(fig_bayes, "_settings", lambda quick: (6, np.array([0.3, 1.0, 3.0]), range(2), 20))
    monkeypatch.setattr(fig_bayes, "RANKS", (0.5,))
    extra = {"label": "constant model", **{q: [(0.9, 0.01)] * 3 for q in ("tm", "idg", "odg")}}
    monkeypatch.setattr(fig_bayes, "_EXTRA_SERIES", [lambda rho, kappas, quick, progress: extra])
    out = fig_bayes.build(tmp_path, True, lambda msg: None)
    names = {p.name for p in out.files}
    assert {"bayes_crossover.png", "bayes_crossover.csv", "bayes_crossover_distances.csv"} <= names
    series = {row[2] for row in out.rows}
    assert {"ridge theory", "ridge simulation", "dMMSE", "GMMSE theory", "constant model"} <= series
    assert all(np.isfinite(row[3]) for row in out.rows)


def test_crossover_rules():
    k = np.array([0.1, 1.0, 10.0])
    # distance to dMMSE below GMMSE's at 0.1, above at 10: crossing at kappa = 1 by symmetry in log kappa
    assert fig_bayes.distance_crossover(k, [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == 1.0
    assert fig_bayes.distance_crossover(k, [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    assert fig_bayes.transition_kappa(k, [4.0, 2.0, 1.0]) == 1.0
