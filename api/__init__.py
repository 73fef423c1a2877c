"""lowrank-icl: analytic theory of in-context learning by linear attention on low-rank regression tasks.

``import lowrank_icl as li`` is the front door. Forward problem: :func:`solve` (the saddle-point
solver, rank-r tasks or any :class:`TaskSpectrum`) and its sampled twin :func:`simulate`, the phase
boundary and design tools, the Bayes baselines, :func:`train_transformer` (the ``[nn]`` extra:
jax and optax, imported when it runs) and :func:`sweep`. Inverse problem: the :mod:`lowrank_icl.inverse`
namespace. Every name loads on first use (PEP 562), so ``import lowrank_icl`` imports only this file
and the version.

The package's code lives in three layers with one-way arrows: :mod:`lowrank_icl.theory`
(derivations), :mod:`lowrank_icl.numerics` (solvers; may import theory) and
:mod:`lowrank_icl.validation` (Monte Carlo, statistics, figures, CLI; may import both).
"""
from lowrank_icl._lazy import attach
from lowrank_icl._version import __version__
from lowrank_icl.numerics.forward import __all__ as _forward_names
from lowrank_icl.validation import __all__ as _validation_names

__getattr__, __dir__, __all__ = attach(__name__, {
    **{name: f"lowrank_icl.numerics.forward:{name}" for name in _forward_names},
    **{name: f"lowrank_icl.validation:{name}" for name in _validation_names if name not in ("inverse", "__version__")},
    "inverse": "lowrank_icl.inverse:",
    "__version__": "lowrank_icl._version",
})
