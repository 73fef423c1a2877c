"""Forward ICL derivations: pool Stieltjes transforms, the saddle point and its reduction, exact
finite-D errors, full-rank closed forms and asymptotic limits.

The names below are the callables other layers use; they load on first use (PEP 562), so importing
this package does not import sympy.
"""
from lowrank_icl._lazy import attach

_FS = "lowrank_icl.theory.forward.finite_size"
_Y2 = "lowrank_icl.theory.forward.y2_column"

__getattr__, __dir__, __all__ = attach(__name__, {
    "SecondMoment": _FS, "conditional_moments_h": _FS, "error_from_summaries": _FS, "exact_test_error": _FS,
    "optimal_gamma": _FS, "optimal_gamma_scale": _FS, "order_summaries": _FS,
    "gmmse_limit_errors": "lowrank_icl.theory.forward.bayes",
    "odg_excess_limit": _Y2, "population_excess": _Y2, "task_law_moments": _Y2, "y2_column_test_error": _Y2,
})
