"""Sweep cells as tasks on a Dask distributed cluster (needs the ``[distributed]`` extra).

``DaskEngine(client)`` wraps a ``distributed.Client``; ``DaskEngine("tcp://host:8786")`` connects
(and later closes) its own. Each job is one task. Tasks are pure functions of their arguments, so
when a worker dies the scheduler reruns its tasks elsewhere and the result is unchanged; a task that
kills workers ``distributed.scheduler.allowed-failures`` times (default 3) fails the sweep with a
``KilledWorker`` error. Every worker, including one that joins or restarts later, runs with one BLAS
thread (:class:`SingleThreadedBlas`, a worker plugin), so results are the same bits as locally.

A worker may die at any moment, start-up included: registering the plugin broadcasts it to every
worker the scheduler knows, and a worker killed during that broadcast makes it fail ("Stream is
closed") although the scheduler has stored the plugin for every later worker. The registration
is then repeated, to the workers still alive, until it reaches them all.
"""
from __future__ import annotations

import hashlib
import time

import distributed
from distributed.diagnostics.plugin import WorkerPlugin

from lowrank_icl.validation.cache import canonical_json

_PLUGIN_NAME = "lowrank-icl-single-threaded-blas"
REGISTER_ATTEMPTS = 8        # broadcasts of the plugin tried while workers die (0.25 s apart, then longer)


class SingleThreadedBlas(WorkerPlugin):
    """Limits every BLAS of the worker process to one thread for the worker's lifetime."""

    def setup(self, worker):
        from threadpoolctl import threadpool_limits
        import numpy  # noqa: F401  (load the BLAS libraries before limiting them)
        import scipy.linalg  # noqa: F401
        self._limits = threadpool_limits(limits=1, user_api="blas")


class DaskEngine:
    """Run jobs as Dask tasks (module docstring). ``worker_timeout``: seconds to wait for a first
    worker when the cluster has none yet (e.g. Slurm jobs still queued)."""

    def __init__(self, client, worker_timeout: float = 120.0):
        self._own = isinstance(client, str)
        if self._own:
            from lowrank_icl.validation.sweeps.engine import check_scheduler_address
            client = check_scheduler_address(client)
            try:
                client = distributed.Client(client, timeout="20s", set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {client!r} ({exc})") from None
        if not isinstance(client, distributed.Client):
            raise ValueError(f"client must be a dask.distributed Client or a scheduler address "
                             f"(got {type(client).__name__})")
        self.client = client
        self.worker_timeout = float(worker_timeout)
        self._register_plugin()

    def _register_plugin(self) -> None:
        """Broadcast :class:`SingleThreadedBlas`, again if a worker died mid-broadcast (module docstring)."""
        register = getattr(self.client, "register_plugin", None) or self.client.register_worker_plugin
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                register(SingleThreadedBlas(), name=_PLUGIN_NAME)
                return
            except OSError as exc:       # CommClosedError ("Stream is closed"), a refused connection
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise OSError(f"cannot install the single-threaded BLAS plugin on the Dask workers: "
                                  f"workers kept failing during {REGISTER_ATTEMPTS} attempts ({exc})") from None
                time.sleep(0.25 * (attempt + 1))   # the scheduler drops a dead worker within moments

    def _workers(self) -> dict:
        try:
            self.client.wait_for_workers(1, timeout=self.worker_timeout)
        except TimeoutError:
            raise ValueError(f"no Dask worker joined the scheduler {self.client.scheduler.address} "
                             f"within {self.worker_timeout:g} s") from None
        return _all_workers(self.client)

    def cell_memory_limit(self) -> int | None:
        """The smallest worker's memory limit divided by its threads (None: no worker has a limit)."""
        per_cell = [w["memory_limit"] // max(1, w.get("nthreads", 1))
                    for w in self._workers().values() if w.get("memory_limit")]
        return min(per_cell) if per_cell else None

    def map(self, fn, args, on_done=None, keys=None) -> list:
        """Submit one task per argument; results in input order. On any exception (Ctrl-C
        included) the tasks not yet finished are cancelled before it propagates."""
        args = list(args)
        if keys is None:
            keys = [f"{fn.__name__}-{hashlib.sha256(canonical_json(_keyable(a)).encode()).hexdigest()[:32]}"
                    for a in args]
        futures = [self.client.submit(fn, a, key=k, pure=True) for a, k in zip(args, keys)]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(args)
        try:
            for fut in distributed.as_completed(futures, loop=self.client.loop):
                i = index[fut.key]
                results[i] = fut.result()
                if on_done:
                    on_done(i, results[i])
        except BaseException:
            self.client.cancel([f for f in futures if not f.done()])
            raise
        finally:
            del futures
        return results

    def describe(self) -> str:
        n = len(_all_workers(self.client))
        return f"Dask scheduler {self.client.scheduler.address} ({n} worker{'s' if n != 1 else ''})"

    def close(self) -> None:
        if self._own:
            self.client.close()


def _all_workers(client) -> dict:
    """Every worker's info (recent distributed lists only the first few unless asked for all)."""
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:       # distributed before n_workers=
        return client.scheduler_info()["workers"]


def _keyable(arg):
    """A JSON-able view of a job argument (paths as strings) for a deterministic task key."""
    if isinstance(arg, (list, tuple)):
        return [_keyable(a) for a in arg]
    if isinstance(arg, dict):
        return {k: _keyable(v) for k, v in arg.items()}
    if isinstance(arg, (str, int, float, bool)) or arg is None:
        return arg
    return str(arg)
