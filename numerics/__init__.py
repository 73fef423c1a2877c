"""Solvers and closed-form predictors of the forward and inverse ICL theory (may import
:mod:`lowrank_icl.theory`, never :mod:`lowrank_icl.validation`).

The forward names are here (``from lowrank_icl.numerics import solve, TaskSpectrum``); the inverse
ones live in their own namespace, :mod:`lowrank_icl.numerics.inverse`, so that no name means two
things. Utilities shared with the other layers (input checks, BLAS threads, the JSON rule) are in
:mod:`lowrank_icl.numerics.utils`, outside the public list. Names load on first use (PEP 562).
"""
from lowrank_icl._lazy import attach

_FORWARD = ["ForwardParams", "solve", "TaskSpectrum", "ForwardSolution", "SpectrumSolution", "ForwardErrors",
            "Decomposition", "PartSplit", "ORDER_PARAMETERS", "phase_boundary", "PhaseBoundary",
            "crossover_scaling", "fit_power_law", "ScalingFit", "prediction_law", "PredictionLaw",
            "optimal_context_length", "optimal_token_allocation", "DesignOptimum", "ProtocolErrors", "PROTOCOLS"]

__getattr__, __dir__, __all__ = attach(__name__, {
    **{name: f"lowrank_icl.numerics.forward:{name}" for name in _FORWARD},
    "forward": "lowrank_icl.numerics.forward:",
    "inverse": "lowrank_icl.numerics.inverse:",
    "__version__": "lowrank_icl._version",
})
