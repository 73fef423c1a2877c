r"""One sweep cell: a (grid point, D, seed) simulation, cached, and its memory estimate.

A cell is the seed job of :func:`lowrank_icl.validation.forward.simulate.make_jobs` (a plain dict:
the six parameters, D, the seed, the ridge method and tolerance). :func:`run_cell` returns its
stored result from the content-addressed cache (:class:`lowrank_icl.validation.cache.Cache`, keyed
on the whole job and a fingerprint of the code that computes it) or trains it and stores it at once,
before returning. It runs with single-threaded BLAS, so its floating-point reductions, hence its
result, are the same bits in any process on any worker. The cache folder is passed explicitly, so a
remote worker stores where the caller asked, not where its own environment points.

Memory of a cell (:func:`cell_memory_bytes`): the simulator's own estimate of one seed from its
sizes and ridge method (:mod:`lowrank_icl.validation.forward.resources`), plus
:data:`PROCESS_OVERHEAD_BYTES` for the interpreter and libraries of a worker process.
"""
from __future__ import annotations

import sys

from lowrank_icl.numerics import ForwardParams
from lowrank_icl.numerics.utils import single_threaded_blas
from lowrank_icl.validation.cache import Cache
from lowrank_icl.validation.forward.resources import estimate_seed
from lowrank_icl.validation.forward.sampling import Sizes
from lowrank_icl.validation.forward.simulate import make_jobs, run_seed

CACHE_NAMESPACE = "forward-seed"
# Everything run_seed reads: the samplers and ridge (validation.forward), the order summaries and
# exact errors (theory), the argument checks and BLAS control (numerics).
CACHE_CODE = ("lowrank_icl.validation.forward", "lowrank_icl.theory", "lowrank_icl.numerics")
PROCESS_OVERHEAD_BYTES = 200 * 2**20


def cell_job(point: dict, dim: int, seed: int, method: str = "auto", tol: float = 1e-8) -> dict:
    """The seed job of one cell (the same dict ``simulate`` runs, so both share cache entries)."""
    return make_jobs(dim=dim, params=ForwardParams(**point), seeds=[seed], method=method, tol=tol)[0]


def cell_cache(cache_dir) -> Cache:
    return Cache(CACHE_NAMESPACE, CACHE_CODE, directory=cache_dir, stream=sys.stderr)


def run_cell(job_and_cache_dir) -> dict:
    """Result of one cell: from the cache, or trained (single-threaded BLAS) and stored at once.

    Top-level, one picklable argument ``(job, cache_dir)``: runs in spawned processes and on Dask
    workers. A worker on which ``cache_dir`` cannot be created or written (not a shared folder)
    computes without storing; the caller stores what it receives. The returned dict is that of
    :func:`lowrank_icl.validation.forward.simulate.run_seed`.
    """
    job, cache_dir = job_and_cache_dir
    try:
        cache = cell_cache(cache_dir)
    except ValueError:      # a worker that cannot reach the caller's folder: the caller stores the cell
        cache = None
    hit = cache.load(job) if cache is not None else None
    if hit is not None:
        return hit[0]
    with single_threaded_blas():
        result = run_seed(job)
    if cache is not None:
        cache.store(job, result)
    return result


def cell_memory_bytes(job: dict) -> int:
    """Estimated peak memory of one cell in bytes: the simulator's estimate of one seed
    (:func:`lowrank_icl.validation.forward.resources.estimate_seed`) plus the process overhead."""
    s = Sizes.from_ratios(job["dim"], job["alpha"], job["tau"], job["kappa"], job["rho"])
    _, seed_bytes, _ = estimate_seed(s, job.get("method", "auto"), int(job.get("pool_repeats", 1)))
    return int(seed_bytes + PROCESS_OVERHEAD_BYTES)
