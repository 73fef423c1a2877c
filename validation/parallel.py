"""Run independent jobs in up to two spawned processes, results in input order.

Workers are spawned with single-threaded BLAS (the thread-count variables are set while they start
and restored after): two processes on two cores, no oversubscription.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from typing import Callable, Sequence

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_parallel(fn: Callable, args: Sequence, workers: int, on_done: Callable[[int, object], None] | None = None) -> list:
    """``[fn(a) for a in args]`` in ``workers`` processes (1: in this process); ``on_done(i, result)``
    is called as each finishes. ``fn`` must be importable (a module-level function)."""
    results: list = [None] * len(args)
    if workers <= 1 or len(args) <= 1:
        for i, a in enumerate(args):
            results[i] = fn(a)
            if on_done:
                on_done(i, results[i])
        return results
    saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARIABLES}
    os.environ.update({k: "1" for k in BLAS_THREAD_VARIABLES})
    try:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(fn, a): i for i, a in enumerate(args)}
            for fut in cf.as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if on_done:
                    on_done(i, results[i])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results
