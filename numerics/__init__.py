"""Solvers and closed-form predictors of the forward and inverse ICL theory.

Public names of both sciences are re-exported here; the validation layer imports only these.
"""
from lowrank_icl.numerics._blas import single_threaded_blas
from lowrank_icl.numerics._checks import check_int, check_real
from lowrank_icl._version import __version__  # noqa: F401
from lowrank_icl.numerics.forward import *  # noqa: F401,F403
from lowrank_icl.numerics.forward import __all__ as _forward_all
from lowrank_icl.numerics.inverse import *  # noqa: F401,F403
from lowrank_icl.numerics.inverse import __all__ as _inverse_all

__all__ = [*_forward_all, *_inverse_all, "check_real", "check_int", "single_threaded_blas"]
