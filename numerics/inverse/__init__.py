"""Inverse ICL: the data model, the estimators (RE, TRE, ORE), the trained LT and their exact risks."""
from lowrank_icl.numerics.inverse.estimators import (ORE, RE, TRE, PriorEstimate, posterior_mean,
                                                     spectral_gap_rank)
from lowrank_icl.numerics.inverse.lt import (LT, LT_LOSSES, LTObjective, LTTrainResult, lt_forward,
                                             lt_loss_and_grad, lt_loss_and_grad_reference, warm_start_lt1)
from lowrank_icl.numerics.inverse.model import (Contexts, InverseModel, InverseParams, InverseRegimeWarning,
                                                haar_orthogonal, input_spectrum, mse_per_coordinate)
from lowrank_icl.numerics.inverse.risk import (fourth_moment, lt1_optimal, lt1_risk, lt1_risk_isotropic,
                                               lt1_theory, ore_moments, ore_risk, ore_risk_bound, ore_risk_mp,
                                               ore_risk_small_noise, ore_theory)

__all__ = ["InverseParams", "InverseModel", "InverseRegimeWarning", "Contexts", "input_spectrum",
           "haar_orthogonal", "RE", "TRE", "ORE", "PriorEstimate", "LT", "LT_LOSSES", "LTObjective",
           "LTTrainResult", "lt_forward", "lt_loss_and_grad", "lt_loss_and_grad_reference", "warm_start_lt1",
           "mse_per_coordinate", "posterior_mean", "spectral_gap_rank",
           "ore_risk", "ore_moments", "ore_risk_small_noise", "ore_risk_mp", "ore_risk_bound", "fourth_moment",
           "lt1_optimal", "lt1_risk", "lt1_risk_isotropic", "ore_theory", "lt1_theory"]
