"""Run a block with single-threaded BLAS.

The inverse-ICL kernels, the ridge CG applies and the attention gradients are many small matrix
products; with BLAS threads on a busy 2-core machine they run several times slower than
single-threaded (threads spin while competing for cores). ``with single_threaded_blas(): ...``
limits every BLAS loaded in the process (numpy's and scipy's OpenBLAS, MKL, BLIS) to one thread and
restores the limits it found, through threadpoolctl.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0      # blocks currently open in this process (BLAS thread limits are process-wide)


@contextmanager
def single_threaded_blas():
    """Context manager: BLAS libraries use one thread inside the block.

    Re-entrant and cheap when nested: the limits are process-wide, so only the outermost block
    sets and restores them (threadpoolctl's enumeration costs a few milliseconds per entry, which
    would dominate a small evaluation called thousands of times inside one training).
    """
    global _depth
    with _lock:
        _depth += 1
        outer = _depth == 1
    try:
        if outer:
            import numpy  # noqa: F401  (load numpy's BLAS before threadpoolctl enumerates the libraries)
            import scipy.linalg  # noqa: F401  (scipy ships its own OpenBLAS)
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1, user_api="blas"):
                yield
        else:
            yield
    finally:
        with _lock:
            _depth -= 1
