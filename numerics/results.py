r"""The result language shared by every model: the TM/IDG/ODG error triple and the convergence words.

:class:`ProtocolErrors` is the one type family of ``errors()``: fields ``tm``, ``idg``, ``odg`` in the
order of :data:`PROTOCOLS`. Theory results hold numbers or arrays
(:class:`lowrank_icl.numerics.ForwardErrors`, which also keeps the working precision of an mpmath
solution); sampled models hold Monte Carlo estimates
(:class:`lowrank_icl.validation.stats.EstimatedErrors`, each field an ``Estimate`` with ``mean``,
``sem``, ``values``).

Convergence vocabulary (every result type, forward and inverse):

- ``converged`` -- the run met its documented stopping criterion and every value is finite (a NaN
  result is never converged);
- ``residual`` -- the quantity the criterion bounds (each type documents what it measures);
- ``reason`` -- "" when converged, otherwise what failed;
- ``message`` -- one human-readable line ("converged" or the reason with its remedy);
- ``iterations`` -- iterations (or steps) taken;
- ``loss`` -- the final value of a training objective, where there is one;
- ``params`` -- the model parameters (``ForwardParams``, ``InverseParams``); trained network
  parameter trees are ``weights``.

``to_dict()`` of every result is the JSON document of :func:`lowrank_icl.numerics._json.json_document`
(``"parameters"``, ``"version"``, ...); errors appear under ``"errors": {"tm", "idg", "odg"}``.
"""
from __future__ import annotations

import math

import numpy as np
from dataclasses import dataclass
from typing import Any

from lowrank_icl.theory.forward.protocols import PROTOCOLS


@dataclass(frozen=True)
class ProtocolErrors:
    """Test errors (squared label units) under the three protocols of :data:`PROTOCOLS`.

    ``tm`` task memorization (a pool task), ``idg`` in-distribution generalization (a fresh task of
    the training law), ``odg`` out-of-distribution generalization (an isotropic task or the test
    law). Subclasses fix what a field holds: numbers/arrays for theory, estimates for samples.

    Attributes
    ----------
    tm, idg, odg : float, array or Estimate
        e_X = E[(y - yhat)^2] on a test prompt of protocol X (squared label units), for X = TM, IDG, ODG.
    """

    tm: Any
    idg: Any
    odg: Any

    def items(self):
        """(protocol, value) pairs in the order tm, idg, odg."""
        return [(p, getattr(self, p)) for p in PROTOCOLS]

    def to_dict(self) -> dict:
        """{"tm", "idg", "odg"} made JSON-ready (numbers, lists, or each value's own ``to_dict``)."""
        from lowrank_icl.numerics._json import json_ready
        return {p: json_ready(v) for p, v in self.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{p}={_short(v)}" for p, v in self.items()) + ")"


class ConvergenceReport:
    """Mixin of the convergence words: a result with ``converged`` and ``reason`` (scalars, or arrays
    over parameter points) gets ``message``; ``_message_unit`` names the points in the array case."""

    _message_unit = "points"

    @property
    def message(self) -> str:
        """One line: "converged", or "not converged: <reason>"; for arrays, how many points did not
        converge and the first one's reason."""
        conv = np.asarray(self.converged, dtype=bool)
        if conv.ndim == 0:
            return convergence_message(bool(conv), str(self.reason))
        conv = conv.ravel()
        if conv.all():
            return "converged"
        first = np.ravel(np.asarray(self.reason, dtype=object))[~conv][0]
        return f"not converged at {int((~conv).sum())} of {conv.size} {self._message_unit}: {first}"


def convergence_message(converged: bool, reason: str) -> str:
    """The ``message`` line of a scalar result: "converged", or "not converged: <reason>"."""
    return "converged" if converged else f"not converged: {reason or 'unknown reason'}"


def is_finite_number(x) -> bool:
    """True for a finite real number (False for NaN, inf, None)."""
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _short(x) -> str:
    import numpy as np
    if type(x).__module__.startswith("mpmath"):
        import mpmath
        return mpmath.nstr(x, 12)
    if isinstance(x, (int, float, np.generic)) or (isinstance(x, np.ndarray) and x.ndim == 0):
        return f"{float(x):.10g}"
    if isinstance(x, np.ndarray):
        return f"array(shape={x.shape})"
    return str(x)


__all__ = ["PROTOCOLS", "ProtocolErrors", "ConvergenceReport", "convergence_message", "is_finite_number"]
