r"""What every Monte Carlo result of :func:`lowrank_icl.validation.forward.simulate.simulate` has in common.

``simulate`` returns a :class:`MonteCarloResult` in every mode: :class:`SimulationResult` (rank-r
task law), ``SpectrumSimulation`` (``spectrum=``) or ``Y2ColumnResult`` (``y2_column=True``). Each
has ``errors()`` (an :class:`lowrank_icl.validation.stats.EstimatedErrors` over seeds), the
convergence words of :mod:`lowrank_icl.numerics.results` (``converged``, ``residual``, ``reason``,
``message``, ``iterations``), ``seeds`` and ``to_dict()``. In all of them ``residual`` is the
largest relative normal-equation residual ||N(Gamma) - B||_F / ||B||_F of the seeds' ridge fits
(:func:`lowrank_icl.validation.forward.ridge.fit_ridge`), and ``converged`` means every fit met its
tolerance and every per-seed value is finite.
"""
from __future__ import annotations

import math
import sys

from lowrank_icl.numerics.results import ConvergenceReport


class MonteCarloResult(ConvergenceReport):
    """Base of the results of ``simulate`` (module docstring); subclasses are frozen dataclasses.

    Attributes
    ----------
    converged : bool
        Every ridge fit met its tolerance and every value is finite.
    residual : float
        The largest relative normal-equation residual of the seeds' ridge fits.
    reason : str
        What failed ("" when converged); ``message`` is the one-line verdict.
    iterations : int
        The largest iteration count of the seeds' ridge fits.
    """

    def errors(self, *args, **kwargs):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __str__(self) -> str:
        """Text form: the errors as mean ± sem with the number of seeds, and the convergence line."""
        return f"{type(self).__name__}: {self.errors()}; {self.message}"


def fit_report(rows) -> tuple[bool, float, int, str]:
    """(converged, residual, iterations, reason) of per-seed dicts with "seed", "converged",
    "residual" (and optionally "iterations") plus the finiteness of every float they hold."""
    bad_fit = [r["seed"] for r in rows if not r["converged"]]
    non_finite = [r["seed"] for r in rows
                  if any(isinstance(v, float) and not math.isfinite(v) for k, v in r.items() if k != "residual")]
    residual = max(float(r["residual"]) for r in rows)
    iterations = max(int(r.get("iterations", 0)) for r in rows)
    reasons = []
    if bad_fit:
        reasons.append(f"the ridge fit of seed(s) {_seed_list(bad_fit)} stopped above its tolerance "
                       f"(largest residual {residual:.2g}); lower tol or use method='primal'")
    if non_finite:
        reasons.append(f"non-finite value in seed(s) {_seed_list(non_finite)}")
    return not reasons, residual, iterations, "; ".join(reasons)


def _seed_list(seeds) -> str:
    return ", ".join(map(str, seeds[:5])) + (f" and {len(seeds) - 5} more" if len(seeds) > 5 else "")


def emit_progress(progress, text: str) -> None:
    """Send one progress line to ``progress``: a callable, True (stderr) or False (nowhere)."""
    if callable(progress):
        progress(text)
    elif progress:
        print(text, file=sys.stderr, flush=True)
