"""Parameter sweeps: theory and Monte Carlo over a grid, as one xarray Dataset, resumable, on the
local process pool or a Dask distributed cluster.

    from lowrank_icl.validation import sweep
    ds = sweep(grid=dict(alpha=[1, 2, 4], kappa=[0.5, 1], tau=2, rho=0.5, sigma=0.3, lam=0.1),
               dims=[32, 64], seeds=range(5), client=None)

Modules: :mod:`.grid` (the parameter grid), :mod:`.cells` (one cached (point, D, seed) cell and its
memory estimate), :mod:`.engine` (local pool) and :mod:`.dask_engine` (Dask tasks), :mod:`.results`
(the Dataset layout and netCDF), :mod:`.runner` (:func:`sweep`).
"""
from lowrank_icl.validation.sweeps.engine import LocalEngine
from lowrank_icl.validation.sweeps.runner import SweepRun, run_sweep, sweep

__all__ = ["sweep", "run_sweep", "SweepRun", "LocalEngine", "DaskEngine"]


def __getattr__(name):
    if name == "DaskEngine":  # imports distributed: only on demand
        from lowrank_icl.validation.sweeps.dask_engine import DaskEngine
        return DaskEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
