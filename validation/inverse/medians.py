"""Typical test error of the inverse estimators: the median over test contexts, from cached runs.

The mean test MSE of a deep LT can be dominated by rare contexts: the learned polynomial in
X^T X / N grows outside the spectrum seen in training, and one test context in a thousand can carry
most of the mean. The median over test contexts is the typical error. It is recomputed, not cached:
LTs from their cached weights (b, Gamma_k) on the same test contexts as their runs; ORE from the
model; TRE and RE refitted (TRE on the run's training contexts).
"""
from __future__ import annotations

import numpy as np

from lowrank_icl.numerics.inverse import ORE, RE, TRE, lt_forward, mse_per_coordinate
from lowrank_icl.validation.inverse.experiments import (
    RE_SETTINGS,
    TRE_SETTINGS,
    EstimatorComparison,
    test_contexts,
    training_contexts,
)


def median_test_errors(comparison: EstimatorComparison, n_test: int, names=None) -> dict:
    """{estimator: (mean over training seeds of the per-seed median test MSE, its SE across seeds)}.

    ``names``: estimators to evaluate (default: every one in the comparison); LTs need their
    cached arrays in ``comparison.arrays``. The SE is nan for one seed.
    """
    model = comparison.model
    names = tuple(comparison.scores) if names is None else tuple(names)
    out = {}
    for name in names:
        if name.startswith("LT-"):      # each LT run with its own seed and cached weights
            seeds = [run.seed for run in comparison.runs.get(name, [])]
            weights = comparison.arrays.get(name, [])
        else:
            seeds, weights = list(comparison.seeds), [None] * len(comparison.seeds)
        medians = []
        for seed, arr in zip(seeds, weights):
            test = test_contexts(model, seed, n_test)
            if name.startswith("LT-"):
                w = lt_forward(arr["b"], arr["Gammas"], test.X, test.Y)[0][-1]
            elif name == "ORE":
                w = ORE.from_model(model).predict(test.X, test.Y)
            elif name == "TRE":
                w = TRE(**TRE_SETTINGS).fit(*_train(model, seed)).predict(test.X, test.Y)
            elif name == "RE":
                w = RE(**RE_SETTINGS).predict(test.X, test.Y)
            else:
                raise ValueError(f"unknown estimator {name!r}")
            medians.append(float(np.median(mse_per_coordinate(w, test.W))))
        if medians:
            v = np.asarray(medians)
            out[name] = (float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"))
    return out


def _train(model, seed):
    c = training_contexts(model, seed)
    return c.X, c.Y
