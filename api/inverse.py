"""The inverse ICL problem behind one name: ``li.inverse.ORE``, ``li.inverse.ore_risk``,
``li.inverse.compare_estimators``.

Its own namespace because its words differ from the forward problem's: ``N`` tokens per context and
``d`` dimensions instead of ``alpha`` and ``D``, ``prior_variance`` for the prior scale, risks
summed over coordinates. Everything in :mod:`lowrank_icl.numerics.inverse` is here, plus the
estimator comparison of :mod:`lowrank_icl.validation.inverse`. Names load on first use (PEP 562).
"""
from lowrank_icl._lazy import attach
from lowrank_icl.numerics.inverse import __all__ as _numerics_names
from lowrank_icl.validation.inverse import __all__ as _validation_names

__getattr__, __dir__, __all__ = attach(__name__, {
    **{name: f"lowrank_icl.numerics.inverse:{name}" for name in _numerics_names},
    **{name: f"lowrank_icl.validation.inverse:{name}" for name in _validation_names},
})
