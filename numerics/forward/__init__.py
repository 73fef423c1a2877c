"""Forward ICL: the saddle-point solver, its parameters and results, the crossover, prediction and design tools."""
from lowrank_icl.numerics.forward.crossover import PhaseBoundary, ScalingFit, crossover_scaling, fit_power_law, phase_boundary
from lowrank_icl.numerics.forward.design import DesignOptimum, optimal_context_length, optimal_token_allocation
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.forward.prediction import PredictionLaw, prediction_law
from lowrank_icl.numerics.forward.results import (ORDER_PARAMETERS, Decomposition, ForwardErrors, ForwardSolution,
                                                  PartSplit)
from lowrank_icl.numerics.forward.spectrum import TaskSpectrum
from lowrank_icl.numerics.forward.solver import solve

__all__ = ["ForwardParams", "solve", "ForwardSolution", "ForwardErrors", "Decomposition", "PartSplit",
           "ORDER_PARAMETERS", "phase_boundary", "PhaseBoundary", "crossover_scaling", "fit_power_law",
           "ScalingFit", "prediction_law", "PredictionLaw", "optimal_context_length",
           "optimal_token_allocation", "DesignOptimum", "TaskSpectrum"]
