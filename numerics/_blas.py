"""Run a block with single-threaded BLAS.

The inverse-ICL kernels, the ridge CG applies and the attention gradients are many small matrix
products; with BLAS threads on a busy 2-core machine they run several times slower than
single-threaded (threads spin while competing for cores). ``with single_threaded_blas(): ...``
limits every BLAS loaded in the process (numpy's and scipy's OpenBLAS, MKL, BLIS) to one thread and
restores the previous limits after, through threadpoolctl.
"""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def single_threaded_blas():
    """Context manager: BLAS libraries use one thread inside the block."""
    import numpy  # noqa: F401  (load numpy's BLAS before threadpoolctl enumerates the libraries)
    import scipy.linalg  # noqa: F401  (scipy ships its own OpenBLAS)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
