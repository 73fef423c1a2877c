"""Solvers and closed-form predictors of the forward and inverse ICL theory."""
from lowrank_icl.numerics.params import ForwardParams

__all__ = ["ForwardParams"]
