"""Inverse ICL: the data model, the estimators (RE, TRE, ORE), the trained K-layer linear transformer
(LT) and the exact and high-dimensional risks.

Names load on first use (PEP 562). ``prior_variance`` is lam in Lambda = lam I_r (the forward
solver's ``lam`` is a ridge: a different quantity, in a different namespace).
"""
from lowrank_icl._lazy import attach

_MODEL = "lowrank_icl.numerics.inverse.model"
_EST = "lowrank_icl.numerics.inverse.estimators"
_LT = "lowrank_icl.numerics.inverse.lt"
_RISK = "lowrank_icl.numerics.inverse.risk"
_HIGH = "lowrank_icl.numerics.inverse.high_dim"

__getattr__, __dir__, __all__ = attach(__name__, {
    "InverseParams": _MODEL, "InverseModel": _MODEL, "InverseContexts": _MODEL, "InverseRegimeWarning": _MODEL,
    "input_spectrum": _MODEL, "haar_orthogonal": _MODEL, "mse_per_coordinate": _MODEL,
    "RE": _EST, "TRE": _EST, "ORE": _EST, "PriorEstimate": _EST, "posterior_mean": _EST, "spectral_gap_rank": _EST,
    "LT": _LT, "LT_LOSSES": _LT, "LTObjective": _LT, "LTTrainResult": _LT, "lt_forward": _LT,
    "lt_loss_and_grad": _LT, "warm_start_lt1": _LT,
    "ore_risk": _RISK, "OreRisk": _RISK, "ore_moments": _RISK, "OreMoments": _RISK,
    "ore_risk_small_noise": _RISK, "ore_risk_mp": _RISK, "ore_risk_bound": _RISK, "fourth_moment": _RISK,
    "lt1_optimal": _RISK, "Lt1Optimal": _RISK, "lt1_risk": _RISK, "lt1_risk_isotropic": _RISK,
    "ore_risk_per_coordinate": _RISK, "lt1_risk_per_coordinate": _RISK,
    "ore_deterministic_equivalent": _HIGH, "compressed_stieltjes": _HIGH, "lt1_risk_deterministic": _HIGH,
    "lt1_risk_limit": _HIGH,
})
