"""Forward ICL: the saddle-point solver, its parameters and results, the phase boundary, the
prediction law and the design tools.

Names load on first use (PEP 562), so ``import lowrank_icl.numerics.forward`` is cheap.
"""
from lowrank_icl._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "ForwardParams": "lowrank_icl.numerics.forward.params",
    "solve": "lowrank_icl.numerics.forward.solver",
    "TaskSpectrum": "lowrank_icl.numerics.forward.spectrum",
    "ForwardSolution": "lowrank_icl.numerics.forward.results",
    "SpectrumSolution": "lowrank_icl.numerics.forward.general",
    "ForwardErrors": "lowrank_icl.numerics.forward.results",
    "Decomposition": "lowrank_icl.numerics.forward.results",
    "PartSplit": "lowrank_icl.numerics.forward.results",
    "ORDER_PARAMETERS": "lowrank_icl.numerics.forward.results",
    "phase_boundary": "lowrank_icl.numerics.forward.crossover",
    "PhaseBoundary": "lowrank_icl.numerics.forward.crossover",
    "crossover_scaling": "lowrank_icl.numerics.forward.crossover",
    "fit_power_law": "lowrank_icl.numerics.forward.crossover",
    "ScalingFit": "lowrank_icl.numerics.forward.crossover",
    "prediction_law": "lowrank_icl.numerics.forward.prediction",
    "PredictionLaw": "lowrank_icl.numerics.forward.prediction",
    "optimal_context_length": "lowrank_icl.numerics.forward.design",
    "optimal_token_allocation": "lowrank_icl.numerics.forward.design",
    "DesignOptimum": "lowrank_icl.numerics.forward.design",
    "ProtocolErrors": "lowrank_icl.numerics.results",
    "PROTOCOLS": "lowrank_icl.numerics.results",
})
