"""Symbolic derivations of the forward and inverse ICL theory (sympy).

Every derivation is a function that *builds* its sympy expression from stated premises and
exports a fast numeric callable of it (lambdified once, cached). This layer imports nothing
from the rest of ``lowrank_icl``.
"""
