"""Inverse ICL theory: oracle Bayes (``bayes``), the linear transformer (``linear_transformer``), the
reduction of the optimal one-layer LT risk (``high_dim``) and the population-optimal K-layer LT in
the prior's polynomial class (``deep``).

Derivations and the closed forms made from them; the Monte Carlo and root searches that evaluate
them live in :mod:`lowrank_icl.numerics.inverse`. Names load on first use (PEP 562).
"""
from lowrank_icl._lazy import attach

_BAYES = "lowrank_icl.theory.inverse.bayes"
_LT = "lowrank_icl.theory.inverse.linear_transformer"
_DEEP = "lowrank_icl.theory.inverse.deep"

__getattr__, __dir__, __all__ = attach(__name__, {
    "ore_error_covariance_symbolic": _BAYES, "inverse_chi2_mean_symbolic": _BAYES, "mp_stieltjes_symbolic": _BAYES,
    "posterior_covariance": _BAYES, "ore_conditional_risk": _BAYES, "ore_risk_bound": _BAYES,
    "ore_risk_small_noise": _BAYES, "mp_stieltjes_negative": _BAYES, "ore_risk_mp_isotropic": _BAYES,
    "fourth_moment_symbolic": _LT, "lt1_risk_symbolic": _LT, "fourth_moment": _LT, "lt1_risk": _LT,
    "lt1_optimal": _LT, "lt1_risk_isotropic": _LT,
    "lt1_risk_reduced": "lowrank_icl.theory.inverse.high_dim",
    "marchenko_pastur_nodes": _DEEP, "optimal_polynomial": _DEEP, "deep_lt_risk": _DEEP, "deep_lt_limits": _DEEP,
    "polynomial_lt_risk": _DEEP,
})
