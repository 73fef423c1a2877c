"""Inverse ICL: the data model, the estimators (RE, TRE, ORE, LT) and their exact risks."""
from lowrank_icl.numerics.inverse.estimators import (LT, LT_LOSSES, ORE, RE, TRE, InverseModel, InverseParams,
                                                     InverseRegimeWarning, lt_forward, lt_loss_and_grad,
                                                     mse_per_coordinate, posterior_mean, spectral_gap_rank)
from lowrank_icl.numerics.inverse.risk import (fourth_moment, lt1_optimal, lt1_risk, lt1_risk_isotropic,
                                               lt1_theory, ore_moments, ore_risk, ore_risk_bound, ore_risk_mp,
                                               ore_risk_small_noise, ore_theory)

__all__ = ["InverseParams", "InverseModel", "InverseRegimeWarning", "RE", "TRE", "ORE", "LT", "LT_LOSSES",
           "lt_forward", "lt_loss_and_grad", "mse_per_coordinate", "posterior_mean", "spectral_gap_rank",
           "ore_risk", "ore_moments", "ore_risk_small_noise", "ore_risk_mp", "ore_risk_bound", "fourth_moment",
           "lt1_optimal", "lt1_risk", "lt1_risk_isotropic", "ore_theory", "lt1_theory"]
