"""Forward ICL: the saddle-point solver, its parameters, the crossover and design tools."""
from lowrank_icl.numerics.forward.crossover import (DesignOptimum, PhaseBoundary, PredictionLaw, ScalingFit,
                                                    crossover_scaling, fit_power_law, optimal_context_length,
                                                    optimal_token_allocation, phase_boundary, prediction_law)
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.spectrum import TaskSpectrum
from lowrank_icl.numerics.forward.solver import (ORDER_PARAMETERS, Decomposition, ForwardErrors, ForwardSolution,
                                                PartSplit, solve)

__all__ = ["ForwardParams", "solve", "ForwardSolution", "ForwardErrors", "Decomposition", "PartSplit",
           "ORDER_PARAMETERS", "phase_boundary", "PhaseBoundary", "crossover_scaling", "fit_power_law",
           "ScalingFit", "prediction_law", "PredictionLaw", "optimal_context_length",
           "optimal_token_allocation", "DesignOptimum", "TaskSpectrum"]
