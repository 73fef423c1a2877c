r"""One sweep cell: a (grid point, D, seed) simulation, cached, and its memory estimate.

A cell is the seed job of :func:`lowrank_icl.validation.forward.simulate.make_jobs` (a plain dict:
the six parameters, D, the seed, the ridge method and tolerance). :func:`run_cell` returns its
stored result from the content-addressed cache (:class:`lowrank_icl.validation.cache.Cache`, keyed
on the whole job and a fingerprint of the code that computes it) or trains it and stores it at once,
before returning. It runs with single-threaded BLAS, so its floating-point reductions, hence its
result, are the same bits in any process on any worker. The cache folder is passed explicitly, so a
remote worker stores where the caller asked, not where its own environment points.

Memory of a cell (:func:`cell_memory_bytes`), with M = round(tau D^2) prompts and 8-byte floats:
the data x, h (2 M D) plus the sampler's chunk temporaries (about 7 x 16384 x D), plus the solver's
working set (:func:`lowrank_icl.validation.forward.ridge.choose_method` picks it): primal
Phi (M D^2) and its Gram (D^4), twice each for the least-squares fallback; dual two M x M
kernels (three at lam = 0 for the pseudo-inverse); cg the float32 copy of the data from D >= 96 and
two 8192 x D blocks; dual-cg two 8192 x D blocks. Plus :data:`PROCESS_OVERHEAD_BYTES` for the
interpreter and libraries.
"""
from __future__ import annotations

import sys

from lowrank_icl.numerics import ForwardParams, single_threaded_blas
from lowrank_icl.validation.cache import Cache
from lowrank_icl.validation.forward.ridge import choose_method
from lowrank_icl.validation.forward.sampling import Sizes
from lowrank_icl.validation.forward.simulate import make_jobs, run_seed

CACHE_NAMESPACE = "forward-seed"
# Everything run_seed reads: the samplers and ridge (validation.forward), the order summaries and
# exact errors (theory), the argument checks and BLAS control (numerics).
CACHE_CODE = ("lowrank_icl.validation.forward", "lowrank_icl.theory", "lowrank_icl.numerics")
PROCESS_OVERHEAD_BYTES = 200 * 2**20
_FLOAT = 8
_SAMPLER_CHUNK = 1 << 14
_SOLVER_CHUNK = 8192
_MIXED_MIN_DIM = 96


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
    """Estimated peak memory of one cell in bytes (module docstring), process overhead included."""
    s = Sizes.from_ratios(job["dim"], job["alpha"], job["tau"], job["kappa"], job["rho"])
    M, D = s.n_prompts, s.dim
    data = 2 * M * D + 2 * M + s.n_tasks * D + 7 * min(M, _SAMPLER_CHUNK) * D
    method = choose_method(M, D) if job.get("method", "auto") == "auto" else job["method"]
    if method == "primal":
        work = 2 * (M * D * D + D**4)
    elif method == "dual":
        work = (3 if job["lam"] == 0 else 2) * M * M
    elif method == "cg":
        work = (M * D if D >= _MIXED_MIN_DIM else 0) + 2 * _SOLVER_CHUNK * D + 8 * D * D
        if job.get("method", "auto") == "auto" and D <= 64:
            work = max(work, 2 * (M * D * D + D**4))     # auto falls back to primal if cg stalls
    else:
        work = 2 * min(M, _SOLVER_CHUNK) * D + 4 * M
    return int(_FLOAT * (data + work) + PROCESS_OVERHEAD_BYTES)
