r"""Run a sweep: theory at every grid point, simulation at every (point, D, seed) cell.

The theory side is one vectorized :func:`lowrank_icl.numerics.solve` over the whole grid in this
process (microseconds per point: cheaper than dispatching any task). The simulation side is one
cell per (point, D, seed) (:mod:`.cells`), run by an engine (:mod:`.engine`: the local process
pool, or :mod:`.dask_engine`). Before anything is submitted:

1. cells already in the content-addressed cache are loaded (``reused``); a rerun, or a run after
   Ctrl-C or a crash, computes only the missing ones;
2. the memory of every missing cell is estimated and a cell that cannot fit one worker's share is
   refused with the estimate and the limit.

Each finished cell is stored by the process that computed it before it reports back, and again
here if the worker's folder is not shared with this machine. Seeds determine every random draw
and cells run with single-threaded BLAS, so any engine gives the same bits.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowrank_icl.numerics import ForwardParams, solve
from lowrank_icl.numerics.utils import check_int, check_real, check_seeds, check_sizes
from lowrank_icl.validation.cache import default_cache_dir, package_version
from lowrank_icl.validation.io import dumps_json
from lowrank_icl.validation.forward.sampling import Sizes
from lowrank_icl.validation.forward.simulate import collect
from lowrank_icl.validation.sweeps.cells import cell_cache, cell_job, cell_memory_bytes, run_cell
from lowrank_icl.validation.sweeps.engine import LocalEngine
from lowrank_icl.validation.sweeps.grid import Grid
from lowrank_icl.numerics.results import PROTOCOLS
from lowrank_icl.validation.sweeps.results import build_dataset, require_xarray


MAX_CELLS = 100_000          # simulation cells (point x D x seed) one sweep may hold
MAX_GRID_POINTS = 1_000_000  # theory points one sweep may hold
ANNOUNCE_AT = 10_000         # a sweep with this many points or cells says its size before preparing them


@dataclass
class SweepRun:
    """A finished sweep: the Dataset and how its cells were obtained.

    Attributes
    ----------
    dataset : xarray.Dataset
        The result.
    cells, computed, reused : int
        Cells in the grid, computed now and read from the cache.
    seconds : float
        Wall-clock time.
    """

    dataset: object
    cells: int
    computed: int
    reused: int
    seconds: float


def sweep(grid, dims=None, seeds=range(5), client=None, *, workers=None, cache_dir=None, method="auto",
          tol=1e-8, progress=False, worker_timeout=120.0):
    r"""Theory and Monte Carlo over a parameter grid, as an xarray Dataset.

    ``grid`` maps each of alpha, tau, kappa (required), rho, sigma, lam (defaults 1, 0, 0) to a number
    (held fixed) or a list (swept: a dimension of the result). ``dims`` are the token dimensions D
    simulated (None: theory only), ``seeds`` the pretraining draws per (point, D). ``client``: None
    for local processes (``workers`` of them, default min(2, CPUs)), a ``dask.distributed.Client``,
    or a scheduler address ``"tcp://host:port"``. ``cache_dir``: the cell cache (default
    ``$LOWRANK_ICL_CACHE_DIR`` or the user cache folder). ``method``, ``tol``: the ridge solver of
    :func:`lowrank_icl.validation.forward.ridge.fit_ridge`. ``progress``: cells done / total and
    the time left on stderr.

    The Dataset's variables and the extrapolation are described in
    :mod:`lowrank_icl.validation.sweeps.results`; ``attrs`` hold ``version``, ``call`` (the full
    call) and ``parameters`` (JSON). Example (theory only):

    >>> ds = sweep(dict(alpha=[1, 2], kappa=0.5, tau=2, rho=0.5))
    >>> ds.theory_idg.dims
    ('alpha',)

    Parameters
    ----------
    grid : dict
        Parameter name -> number or list.
    dims : sequence of int, optional
        Simulated D.
    seeds : iterable of int
        Pretraining draws per (point, D).
    client : None, dask.distributed.Client or str
        Where the cells run.
    workers : int, optional
        Local processes.
    cache_dir : path, optional
        The cell cache.
    method, tol : str, float
        The ridge solver.
    progress : bool
        Progress on stderr.
    worker_timeout : float
        Seconds before a silent worker is declared lost.

    Returns
    -------
    xarray.Dataset
        The theory errors e_X(point) of :func:`lowrank_icl.solve` and, per D, the Monte Carlo mean and
        SE over seeds, with the D -> infinity extrapolation.
    """
    return run_sweep(grid, dims, seeds, client, workers=workers, cache_dir=cache_dir, method=method,
                     tol=tol, progress=progress, worker_timeout=worker_timeout).dataset


def run_sweep(grid, dims=None, seeds=range(5), client=None, *, workers=None, cache_dir=None, method="auto",
              tol=1e-8, progress=False, worker_timeout=120.0, stream=None) -> SweepRun:
    """:func:`sweep`, returning a :class:`SweepRun` (Dataset plus cells computed / reused, seconds)."""
    start = time.perf_counter()
    require_xarray()
    grid = Grid.from_mapping(grid)
    dims = _parse_dims(dims)
    seeds = check_seeds(seeds)
    if not isinstance(method, str):
        raise ValueError(f"method must be a string (got {method!r})")
    tol = float(check_real("tol", tol, lower=0.0, upper=1.0))
    _check_size(grid, dims, seeds, progress, stream)
    smallest = {k: min(np.atleast_1d(v)) for k, v in grid.to_dict().items() if k in ("alpha", "tau", "kappa", "rho")}
    for D in dims:
        check_sizes(D, **smallest)          # no size may round to 0 (it would silently become 1)
    call = {"grid": grid.to_dict(), "dims": list(dims) if dims else None,
            "seeds": list(seeds) if dims else None, "method": method, "tol": float(tol)}
    attrs = {"title": "lowrank-icl parameter sweep", "version": package_version(),
             "call": f"sweep(grid={grid.to_dict()!r}, dims={call['dims']!r}, seeds={call['seeds']!r}, "
                     f"method={method!r}, tol={float(tol)!r})",
             "parameters": dumps_json(call, sort_keys=True),
             "conventions": "L = round(alpha D), M = round(tau D^2), M0 = round(kappa D), r = round(rho D); "
                            "errors are exact test errors of the trained reduced attention Gamma"}
    theory = _theory(grid, dims)
    if not dims:
        ds = build_dataset(grid, None, None, theory, None, attrs)
        return SweepRun(ds, grid.size, grid.size, 0, time.perf_counter() - start)

    points = grid.points()
    jobs = [cell_job(p, D, s, method, tol) for p in points for D in dims for s in seeds]
    cache_root = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser().resolve()
    cache = cell_cache(cache_root)              # also refuses an unusable folder
    results: list = [None] * len(jobs)
    for i, job in enumerate(jobs):
        hit = cache.load(job)
        if hit is not None:
            results[i] = hit[0]
    missing = [i for i, r in enumerate(results) if r is None]
    reused = len(jobs) - len(missing)

    if missing:
        engine, own_engine = _engine(client, workers, worker_timeout)
        try:
            _check_memory([jobs[i] for i in missing], engine)
            report = _Progress(len(jobs), reused, len(missing), stream or sys.stderr, progress)
            report.start(engine)

            def on_done(k, result):
                job = jobs[missing[k]]
                if job not in cache:       # the worker's cache folder may not be this machine's
                    cache.store(job, result)
                report.cell_done()

            args = [(jobs[i], str(cache_root)) for i in missing]
            if hasattr(engine, "client"):
                keys = [f"lowrank-icl-cell-{cache.key(jobs[i])[:40]}" for i in missing]
                computed = engine.map(run_cell, args, on_done, keys=keys)
            else:
                computed = engine.map(run_cell, args, on_done)
            for i, r in zip(missing, computed):
                results[i] = r
        finally:
            if own_engine:
                engine.close()
    elif progress:
        print(f"sweep: all {len(jobs)} cells are in the cache {cache.directory}", file=stream or sys.stderr,
              flush=True)

    cells = _cell_arrays(grid, dims, seeds, points, results)
    ds = build_dataset(grid, dims, seeds, theory, cells, attrs)
    return SweepRun(ds, len(jobs), len(missing), reused, time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------

def _parse_dims(dims) -> tuple:
    if dims is None:
        return ()
    if isinstance(dims, (int, np.integer)):
        dims = [dims]
    out = tuple(check_int("dim", d, lower=1) for d in dims)
    if not out:
        raise ValueError("dims must be None (theory only) or a non-empty list of integers >= 1")
    if len(set(out)) != len(out):
        raise ValueError(f"dims has repeated values {list(out)}")
    return out


def _check_size(grid: Grid, dims, seeds, progress, stream) -> None:
    """Refuse, before any work, a sweep beyond :data:`MAX_GRID_POINTS` or :data:`MAX_CELLS`; announce
    the size of a large one (the theory and the cache lookup take seconds before the first cell)."""
    sizes = " x ".join(f"{len(v)} {k}" for k, v in grid.to_dict().items() if isinstance(v, list)) or "1 point"
    if grid.size > MAX_GRID_POINTS:
        raise ValueError(f"the grid has {grid.size} points ({sizes}), more than {MAX_GRID_POINTS}; split the sweep")
    cells = grid.size * len(dims) * len(seeds) if dims else 0
    if cells > MAX_CELLS:
        raise ValueError(f"the sweep has {cells} cells ({sizes} x {len(dims)} D x {len(seeds)} seeds), more than "
                         f"{MAX_CELLS}; split it, or use fewer values, dims or seeds")
    if progress and max(grid.size, cells) >= ANNOUNCE_AT:
        print(f"sweep: {grid.size} grid points" + (f", {cells} simulation cells" if dims else " (theory only)"),
              file=stream or sys.stderr, flush=True)


def _theory(grid: Grid, dims) -> dict:
    """solve() over the grid; with dims also at the integer sizes of each (point, D)."""
    sol = solve(**grid.arrays())
    err = sol.errors()
    out = {k: np.broadcast_to(getattr(err, k), grid.shape) for k in PROTOCOLS}
    out["converged"] = np.broadcast_to(sol.converged, grid.shape)
    out["residual"] = np.broadcast_to(sol.residual, grid.shape)
    if dims:
        eff = {name: np.empty(grid.shape + (len(dims),)) for name in ("alpha", "tau", "kappa", "rho")}
        base = {name: np.broadcast_to(a, grid.shape) for name, a in grid.arrays().items()}
        for idx in np.ndindex(*grid.shape):
            for j, D in enumerate(dims):
                s = Sizes.from_ratios(D, *(float(base[n][idx]) for n in ("alpha", "tau", "kappa", "rho")))
                for name in eff:
                    eff[name][idx + (j,)] = getattr(s, name)
        sized = solve(**eff, sigma=base["sigma"][..., None], lam=base["lam"][..., None]).errors()
        out.update({f"sized_{k}": getattr(sized, k) for k in PROTOCOLS})
    return out


def _cell_arrays(grid, dims, seeds, points, results) -> dict:
    """Per-seed errors and fit diagnostics, shape grid.shape + (len(dims), len(seeds))."""
    shape = grid.shape + (len(dims), len(seeds))
    out = {k: np.empty(shape) for k in PROTOCOLS}
    out["converged"] = np.empty(shape, dtype=bool)
    out["residual"] = np.empty(shape)
    it = iter(results)
    for idx, point in zip(np.ndindex(*grid.shape), points):
        for j, D in enumerate(dims):
            rs = [next(it) for _ in seeds]
            err = collect(dim=D, params=ForwardParams(**point), seeds=seeds, results=rs).errors()
            for k in PROTOCOLS:
                out[k][idx + (j,)] = getattr(err, k).values
            out["converged"][idx + (j,)] = [r["converged"] for r in rs]
            out["residual"][idx + (j,)] = [r["residual"] for r in rs]
    return out


def _engine(client, workers, worker_timeout):
    """(engine, whether this call owns it)."""
    if client is None:
        return LocalEngine(workers), True
    if workers is not None:
        raise ValueError("workers= is for the local pool; a Dask cluster's size is set by its workers")
    if hasattr(client, "map") and hasattr(client, "cell_memory_limit"):
        return client, False                     # an engine object
    try:
        from lowrank_icl.validation.sweeps.dask_engine import DaskEngine
    except ImportError:
        raise ValueError("a Dask client or scheduler needs the distributed extra: "
                         "pip install 'lowrank-icl[distributed]'") from None
    engine = DaskEngine(client, worker_timeout=worker_timeout)
    return engine, True


def _check_memory(jobs, engine) -> None:
    limit = engine.cell_memory_limit()
    if limit is None:
        return
    worst = max(jobs, key=cell_memory_bytes)
    need = cell_memory_bytes(worst)
    if need > limit:
        point = ", ".join(f"{k}={worst[k]:g}" for k in ("alpha", "tau", "kappa", "rho", "sigma", "lam"))
        raise ValueError(f"the cell D={worst['dim']} ({point}) needs about {need / 2**30:.2f} GiB, more than the "
                         f"{limit / 2**30:.2f} GiB one cell may use on the {engine.describe()}; use smaller D "
                         f"or tau, fewer local workers, or workers with more memory")


class _Progress:
    """cells done / total and the time left, on stderr, at most once a second (and at the end)."""

    def __init__(self, total, reused, to_compute, stream, enabled):
        self.total, self.done, self.to_compute = total, reused, to_compute
        self.computed = 0
        self.stream, self.enabled = stream, enabled
        self.t0 = time.perf_counter()
        self.last = 0.0

    def start(self, engine):
        if self.enabled:
            print(f"sweep: {self.total} cells, {self.done} in the cache, {self.to_compute} to compute "
                  f"on the {engine.describe()}", file=self.stream, flush=True)

    def cell_done(self):
        self.done += 1
        self.computed += 1
        now = time.perf_counter()
        if self.enabled and (now - self.last >= 1.0 or self.computed == self.to_compute):
            self.last = now
            elapsed = now - self.t0
            left = elapsed / self.computed * (self.to_compute - self.computed)
            print(f"sweep: {self.done}/{self.total} cells done, elapsed {_clock(elapsed)}, "
                  f"about {_clock(left)} left", file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
