"""Inverse ICL theory: oracle Bayes (``bayes``), the linear transformer (``linear_transformer``) and the
high-dimensional limit of the optimal one-layer LT (``high_dim``) and the population-optimal K-layer LT in
the prior's polynomial class (``deep``)."""
from lowrank_icl.theory.inverse.bayes import *  # noqa: F401,F403
from lowrank_icl.theory.inverse.bayes import __all__ as _bayes_all
from lowrank_icl.theory.inverse.deep import *  # noqa: F401,F403
from lowrank_icl.theory.inverse.deep import __all__ as _deep_all
from lowrank_icl.theory.inverse.high_dim import *  # noqa: F401,F403
from lowrank_icl.theory.inverse.high_dim import __all__ as _high_dim_all
from lowrank_icl.theory.inverse.linear_transformer import *  # noqa: F401,F403
from lowrank_icl.theory.inverse.linear_transformer import __all__ as _lt_all

__all__ = [*_bayes_all, *_lt_all, *_high_dim_all, *_deep_all]
