"""Solvers and closed-form predictors of the forward and inverse ICL theory."""
from lowrank_icl.numerics.params import ForwardParams
from lowrank_icl.numerics.saddle import (Decomposition, ForwardErrors, ForwardSolution, PartSplit,
                                         solve)

__all__ = ["ForwardParams", "solve", "ForwardSolution", "ForwardErrors", "Decomposition", "PartSplit"]
