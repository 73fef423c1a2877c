"""Symbolic derivations of the forward and inverse ICL theory (sympy).

Every derivation is a function that *builds* its sympy expression from stated premises and
exports a fast numeric callable of it (lambdified once, cached). This layer imports nothing
from the rest of ``lowrank_icl``. ``forward/`` holds the forward problem, ``inverse/`` the inverse one.
"""
from lowrank_icl.theory.forward import *  # noqa: F401,F403
from lowrank_icl.theory.forward import __all__ as _forward_all

__all__ = list(_forward_all)
