"""Symbolic derivations of the forward and inverse ICL theory (sympy) and the numeric callables made
from them.

Every derivation is a function that *builds* its sympy expression from stated premises and exports
a fast numeric callable of it (lambdified once, cached). Monte Carlo and root searches do not live
here: they are in :mod:`lowrank_icl.numerics` and :mod:`lowrank_icl.validation`. This layer imports
nothing from those layers. ``forward`` holds the forward problem, ``inverse`` the inverse one; the
forward callables the other layers use are also listed here. Names load on first use (PEP 562).
"""
from lowrank_icl._lazy import attach

_FORWARD = ["SecondMoment", "conditional_moments_h", "error_from_summaries", "exact_test_error", "optimal_gamma",
            "optimal_gamma_scale", "order_summaries", "gmmse_limit_errors", "odg_excess_limit", "population_excess",
            "task_law_moments", "y2_column_test_error"]

__getattr__, __dir__, __all__ = attach(__name__, {
    **{name: f"lowrank_icl.theory.forward:{name}" for name in _FORWARD},
    "forward": "lowrank_icl.theory.forward:",
    "inverse": "lowrank_icl.theory.inverse:",
})
