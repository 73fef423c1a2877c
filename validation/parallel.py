"""Run independent jobs in up to two spawned processes, results in input order.

Workers are spawned with single-threaded BLAS (the thread-count variables are set while they start
and restored after): two processes on two cores, no oversubscription.

``with use_engine(engine): ...`` sends every :func:`run_parallel` call of the block to ``engine``
instead (any object with ``map(fn, args, on_done) -> list``), e.g. the Dask engine of
:mod:`lowrank_icl.validation.sweeps`, so simulations and figures run on a cluster unchanged.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextvars
import multiprocessing as mp
import os
import signal
from contextlib import contextmanager
from typing import Callable, Sequence

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_ENGINE: contextvars.ContextVar = contextvars.ContextVar("lowrank_icl_engine", default=None)


@contextmanager
def use_engine(engine):
    """Inside the block, :func:`run_parallel` delegates to ``engine.map(fn, args, on_done)``."""
    token = _ENGINE.set(engine)
    try:
        yield engine
    finally:
        _ENGINE.reset(token)


def current_engine():
    """The engine set by :func:`use_engine`, or None (the local process pool)."""
    return _ENGINE.get()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_parallel(fn: Callable, args: Sequence, workers: int, on_done: Callable[[int, object], None] | None = None) -> list:
    """``[fn(a) for a in args]`` in ``workers`` processes (1: in this process); ``on_done(i, result)``
    is called as each finishes. ``fn`` must be importable (a module-level function).
    Inside :func:`use_engine` the engine runs the jobs instead."""
    engine = _ENGINE.get()
    if engine is not None:
        return engine.map(fn, args, on_done)
    return run_in_processes(fn, args, workers, on_done)


def run_in_processes(fn: Callable, args: Sequence, workers: int,
                     on_done: Callable[[int, object], None] | None = None) -> list:
    """:func:`run_parallel` on the local spawned pool, whatever engine is in use. Workers ignore
    SIGINT; on an exception here (Ctrl-C included) they are terminated and the queued jobs cancelled
    before it propagates."""
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
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                      initializer=_ignore_sigint)
        try:
            futures = {pool.submit(fn, a): i for i, a in enumerate(args)}
            for fut in cf.as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if on_done:
                    on_done(i, results[i])
        except BaseException:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results
