"""Run independent jobs in spawned worker processes, results in input order.

- Workers start with single-threaded BLAS (the thread-count variables are set while they start
  and restored after): one process per core, no oversubscription.
- Workers never import the caller's ``__main__`` (the job function must live in an importable
  module, as every job of this package does), so a plain script that calls
  ``simulate(..., workers=2)`` without an ``if __name__ == "__main__":`` guard works: the spawn
  start method would otherwise re-run the script in every worker.
- Workers ignore SIGINT; Ctrl-C reaches the parent, which terminates them and re-raises
  KeyboardInterrupt (no traceback from every worker).
- ``with use_engine(engine): ...`` sends every :func:`run_parallel` call of the block to ``engine``
  instead (any object with ``map(fn, args, on_done) -> list``), e.g. the Dask engine of
  :mod:`lowrank_icl.validation.sweeps`, so simulations and figures run on a cluster unchanged.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextvars
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import types
from typing import Callable, Sequence

from lowrank_icl.numerics.utils import check_int, single_threaded_blas

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_ENGINE: contextvars.ContextVar = contextvars.ContextVar("lowrank_icl_engine", default=None)


@contextlib.contextmanager
def use_engine(engine):
    """Inside the block, :func:`run_parallel` delegates to ``engine.map(fn, args, on_done)``."""
    token = _ENGINE.set(engine)
    try:
        yield engine
    finally:
        _ENGINE.reset(token)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_workers(workers) -> int:
    """``workers`` as an int in 1..available_cores(), else a ValueError naming the range."""
    return check_int("workers", workers, lower=1, upper=available_cores())


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _main_not_inherited():
    """While workers start, present a ``__main__`` without a file, so that spawn does not re-import
    the caller's script in each worker (multiprocessing reads ``__main__.__file__``/``__spec__``)."""
    main = sys.modules.get("__main__")
    if main is None or (getattr(main, "__file__", None) is None and getattr(main, "__spec__", None) is None):
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def run_parallel(fn: Callable, args: Sequence, workers: int, on_done: Callable[[int, object], None] | None = None) -> list:
    """:func:`run_in_processes`, or inside :func:`use_engine` the engine's ``map``."""
    engine = _ENGINE.get()
    if engine is not None:
        return engine.map(fn, args, on_done)
    return run_in_processes(fn, args, workers, on_done)


def run_in_processes(fn: Callable, args: Sequence, workers: int, on_done: Callable[[int, object], None] | None = None) -> list:
    """``[fn(a) for a in args]`` in ``workers`` processes (1: in this process); ``on_done(i, result)``
    is called in this process as each finishes. ``fn`` must be importable (a module-level function
    of a module other than ``__main__``)."""
    workers = check_int("workers", workers, lower=1)
    results: list = [None] * len(args)
    if workers <= 1 or len(args) <= 1:
        # one BLAS thread here too, as in the workers: the reduction order, hence every bit of the
        # result, must not depend on where a job runs
        with single_threaded_blas():
            for i, a in enumerate(args):
                results[i] = fn(a)
                if on_done:
                    on_done(i, results[i])
        return results
    if getattr(fn, "__module__", None) == "__main__":
        raise ValueError("run_parallel needs a job function defined in an importable module, not in __main__")
    saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARIABLES}
    os.environ.update({k: "1" for k in BLAS_THREAD_VARIABLES})
    pool = cf.ProcessPoolExecutor(max_workers=min(workers, len(args)), mp_context=mp.get_context("spawn"),
                                  initializer=_ignore_sigint)
    try:
        with _main_not_inherited():
            futures = {pool.submit(fn, a): i for i, a in enumerate(args)}
        for fut in cf.as_completed(futures):
            i = futures[fut]
            results[i] = fut.result()
            if on_done:
                on_done(i, results[i])
    except BaseException:
        # Ctrl-C or a failed job: stop the workers now rather than wait for their current jobs
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results
