"""Monte Carlo of the trained models, theory-vs-simulation statistics, figures and the CLI (may import
:mod:`lowrank_icl.theory` and :mod:`lowrank_icl.numerics`).

The sampled twins of the solvers are here: :func:`simulate` (the ridge-trained linear attention),
:func:`simulate_spectrum`, :func:`simulate_y2_column`, the Bayes baselines, the trained transformers
(the ``[nn]`` extra, imported by the functions, never by this package) and :func:`sweep`. The
inverse experiments are in :mod:`lowrank_icl.validation.inverse`. Names load on first use (PEP 562),
so importing the CLI or this package imports neither the theory layer nor the sweep engine.

Why some modules here read :mod:`lowrank_icl.theory` directly: a simulation measures each trained
Gamma by its exact finite-D test error, a formula of the theory layer
(:func:`lowrank_icl.theory.exact_test_error`, :class:`lowrank_icl.theory.SecondMoment`,
``error_from_summaries``, the label-power column's population excess, the GMMSE limit). These are
closed forms evaluated on sampled objects, not solvers, so numerics has nothing to add between them;
the arrows still point one way (validation -> numerics -> theory, and validation -> theory).
"""
from lowrank_icl._lazy import attach

_FWD = "lowrank_icl.validation.forward"

__getattr__, __dir__, __all__ = attach(__name__, {
    "simulate": f"{_FWD}.simulate", "SimulationResult": f"{_FWD}.simulate", "MonteCarloResult": f"{_FWD}.results",
    "simulate_spectrum": f"{_FWD}.spectrum_simulate", "SpectrumSimulation": f"{_FWD}.spectrum_simulate",
    "simulate_y2_column": f"{_FWD}.y2_column", "Y2ColumnResult": f"{_FWD}.y2_column",
    "bayes_errors": f"{_FWD}.bayes", "BayesResult": f"{_FWD}.bayes",
    "dmmse_estimate": f"{_FWD}.bayes", "gmmse_estimate": f"{_FWD}.bayes",
    "train_transformer": f"{_FWD}.transformers.experiment", "TransformerResult": f"{_FWD}.transformers.experiment",
    "sweep": "lowrank_icl.validation.sweeps.runner", "SweepRun": "lowrank_icl.validation.sweeps.runner",
    "Estimate": "lowrank_icl.validation.stats", "EstimatedErrors": "lowrank_icl.validation.stats",
    "inverse": "lowrank_icl.validation.inverse:",
    "__version__": "lowrank_icl._version",
})
