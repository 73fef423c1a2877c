"""Inverse ICL experiments: estimator comparisons and the statistics behind the inverse figures.

:func:`compare_estimators` fits RE, TRE, ORE and the trained LTs over training seeds and returns an
:class:`EstimatorComparison`. Names load on first use (PEP 562).
"""
from lowrank_icl._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "compare_estimators": "lowrank_icl.validation.inverse.experiments",
    "EstimatorComparison": "lowrank_icl.validation.inverse.experiments",
    "EstimatorScore": "lowrank_icl.validation.inverse.experiments",
})
