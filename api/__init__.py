"""lowrank-icl: analytic theory of in-context learning by linear attention on low-rank regression tasks.

``import lowrank_icl as li`` is the front door. Forward problem: :func:`solve` (the saddle-point
solver, rank-r tasks or any :class:`TaskSpectrum`) and its sampled twin :func:`simulate`, the phase
boundary and design tools, the Bayes baselines, :func:`train_transformer` (the ``[nn]`` extra:
jax and optax, imported when it runs) and :func:`sweep`. Inverse problem: the :mod:`lowrank_icl.inverse`
namespace. Every name loads on first use (PEP 562), so ``import lowrank_icl`` imports only this file
and the version.

The package's code lives in three layers with one-way arrows: :mod:`lowrank_icl.theory`
(derivations), :mod:`lowrank_icl.numerics` (solvers; may import theory) and
:mod:`lowrank_icl.validation` (Monte Carlo, statistics, figures, CLI; may import both). This file
names where each public name lives and imports none of them.
"""
from lowrank_icl._lazy import attach
from lowrank_icl._version import __version__  # noqa: F401  (light: read at import)

_SOLVERS = "lowrank_icl.numerics.forward"
_SAMPLED = "lowrank_icl.validation"

__getattr__, __dir__, __all__ = attach(__name__, {
    **{name: _SOLVERS for name in (
        "ForwardParams", "solve", "TaskSpectrum", "ForwardSolution", "SpectrumSolution", "ForwardErrors",
        "Decomposition", "PartSplit", "ORDER_PARAMETERS", "phase_boundary", "PhaseBoundary", "crossover_scaling",
        "fit_power_law", "ScalingFit", "prediction_law", "PredictionLaw", "optimal_context_length",
        "optimal_token_allocation", "DesignOptimum", "ProtocolErrors", "PROTOCOLS")},
    **{name: _SAMPLED for name in (
        "simulate", "SimulationResult", "EstimatedErrors", "MonteCarloResult", "simulate_spectrum",
        "SpectrumSimulation", "simulate_y2_column", "Y2ColumnResult", "bayes_errors", "BayesResult", "dmmse_estimate", "gmmse_estimate",
        "train_transformer", "TransformerResult", "sweep", "SweepRun", "Estimate")},
    "inverse": "lowrank_icl.inverse:",
    "__version__": "lowrank_icl._version",
})
