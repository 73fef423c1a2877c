"""Run a block with single-threaded OpenBLAS (when numpy's OpenBLAS can be found; else a no-op).

The inverse-ICL kernels are many small batched matrix products; with OpenBLAS threads on a busy
2-core machine they run up to 30x slower than single-threaded (threads spin while competing for
cores). ``with single_threaded_blas(): ...`` sets the thread count to 1 and restores it after.
"""
from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager

_LOCK = threading.Lock()
_API = None   # (get, set) or False when unavailable


def _find_api():
    global _API
    if _API is not None:
        return _API
    _API = False
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return _API
    names = [("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
             ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
             ("openblas_get_num_threads", "openblas_set_num_threads")]
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in names:
            if hasattr(lib, get_name) and hasattr(lib, set_name):
                get, set_ = getattr(lib, get_name), getattr(lib, set_name)
                get.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                _API = (get, set_)
                return _API
    return _API


@contextmanager
def single_threaded_blas():
    """Context manager: OpenBLAS uses one thread inside the block."""
    import numpy  # noqa: F401  (make sure numpy's OpenBLAS is loaded before looking for it)

    api = _find_api()
    if not api:
        yield
        return
    get, set_ = api
    with _LOCK:
        before = get()
        set_(1)
    try:
        yield
    finally:
        with _LOCK:
            set_(before)
