"""Where sweep cells run: the local process pool, or a Dask cluster (:mod:`.dask_engine`).

An engine has ``map(fn, args, on_done=None) -> list`` (results in input order, ``on_done(i, result)``
as each finishes), ``cell_memory_limit()`` (bytes one cell may use, or None if unknown) and
``describe()``. The same object can be given to :func:`lowrank_icl.validation.parallel.use_engine`,
which routes ``simulate`` and the figures through it.
"""
from __future__ import annotations

import os
import re
import socket
from contextlib import contextmanager

from lowrank_icl.validation.parallel import check_workers, run_in_processes, use_engine


def physical_memory_bytes() -> int | None:
    """Total RAM of this machine (None where the platform does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


class LocalEngine:
    """Spawned processes on this machine with single-threaded BLAS (``workers=1``: in this process).

    Each of the ``workers`` concurrent cells may use the machine's RAM divided by ``workers``.
    """

    def __init__(self, workers: int | None = None):
        self.workers = min(2, os.cpu_count() or 1) if workers is None else check_workers(workers)

    def map(self, fn, args, on_done=None) -> list:
        return run_in_processes(fn, list(args), self.workers, on_done)

    def cell_memory_limit(self) -> int | None:
        total = physical_memory_bytes()
        return None if total is None else total // self.workers

    def describe(self) -> str:
        return f"local pool of {self.workers} process{'es' if self.workers > 1 else ''}"

    def close(self) -> None:
        pass


_ADDRESS = re.compile(r"(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):(?P<port>\d{1,5})")


def check_scheduler_address(address, connect_timeout: float = 10.0) -> str:
    """Return ``address`` if it names a Dask scheduler that accepts connections; ValueError otherwise.

    Checked before a ``distributed.Client`` is made: a client that fails to start leaves a
    half-built object whose finalizer blocks for 40 s and prints a traceback at exit. ``tcp://``
    addresses (and ``HOST:PORT``) are probed with a plain socket within ``connect_timeout`` seconds.
    """
    text = str(address).strip()
    match = _ADDRESS.fullmatch(text)
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"the Dask scheduler address must look like tcp://HOST:PORT (got {address!r})")
    if (match["scheme"] or "tcp") == "tcp":
        host = match["host"].strip("[]")
        try:
            socket.create_connection((host, int(match["port"])), timeout=connect_timeout).close()
        except OSError as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {text!r} "
                             f"({exc.strerror or type(exc).__name__})") from None
    return text


@contextmanager
def scheduler_engine(address: str | None):
    """Inside the block, every :func:`lowrank_icl.validation.parallel.run_parallel` call (simulate,
    the figures) runs as Dask tasks on the scheduler at ``address``; None: the local pool, unchanged."""
    if not address:
        yield None
        return
    try:
        from lowrank_icl.validation.sweeps.dask_engine import DaskEngine
    except ImportError:
        raise ValueError("--scheduler needs the distributed extra: pip install 'lowrank-icl[distributed]'") from None
    engine = DaskEngine(address)
    try:
        with use_engine(engine):
            yield engine
    finally:
        engine.close()
