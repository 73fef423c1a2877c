"""Forward ICL derivations: pool Stieltjes transforms, the saddle point and its reduction, exact
finite-D errors, full-rank closed forms and asymptotic limits."""
from lowrank_icl.theory.forward.finite_size import (SecondMoment, conditional_moments_h, error_from_summaries,
                                                    exact_test_error, optimal_gamma, optimal_gamma_scale,
                                                    order_summaries)

__all__ = ["SecondMoment", "conditional_moments_h", "error_from_summaries", "exact_test_error",
           "optimal_gamma", "optimal_gamma_scale", "order_summaries"]
