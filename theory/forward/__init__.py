"""Forward ICL derivations: pool Stieltjes transforms, the saddle point and its reduction, exact
finite-D errors, full-rank closed forms and asymptotic limits."""
from lowrank_icl.theory.forward.finite_size import (SecondMoment, conditional_moments_h, error_from_summaries,
                                                    exact_test_error, optimal_gamma, optimal_gamma_scale,
                                                    order_summaries)
from lowrank_icl.theory.forward.bayes import gmmse_limit_errors
from lowrank_icl.theory.forward.y2_column import (odg_excess_limit, population_excess, task_law_moments,
                                                  y2_column_test_error)

__all__ = ["SecondMoment", "conditional_moments_h", "error_from_summaries", "exact_test_error",
           "optimal_gamma", "optimal_gamma_scale", "order_summaries",
           "gmmse_limit_errors", "odg_excess_limit", "population_excess", "task_law_moments", "y2_column_test_error"]
