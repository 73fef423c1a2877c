r"""Memory and time a simulation needs, estimated from its sizes before anything is allocated.

One trained seed holds (float64, 8 bytes a number):

- the task subspace A (D x r, drawn by a QR of a D x r Gaussian: about 2 D r numbers);
- the task pool (M0 x D; none for kappa = inf);
- the reduced data x, h (M x D each), y and the task index (M each);
- the solver's own memory (:func:`lowrank_icl.validation.forward.ridge.solver_cost`: the M x D^2
  design and D^2 x D^2 normal matrix of the dense primal, the M x M kernel of the dual, float32
  copies of x and h for mixed-precision CG, chunk-sized temporaries otherwise).

``workers`` processes each hold one seed at a time, so the peak is ``workers`` times the largest
seed. The time estimate counts floating-point operations (sampling ~20 M D, the QR 2 D r^2, the
solver's leading terms) at :data:`FLOP_RATE` per second; it is a rough guide (within a factor of a
few), used only to refuse what could not finish.

Limits: ``$LOWRANK_ICL_MEMORY_LIMIT`` (bytes, or with a suffix K, M, G, T: "8G") if set, else half
of the memory the operating system reports available; time: :data:`MAX_SECONDS`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from lowrank_icl.validation.forward.ridge import resolve_method, solver_cost
from lowrank_icl.validation.forward.sampling import Sizes

MEMORY_ENV_VAR = "LOWRANK_ICL_MEMORY_LIMIT"
FLOP_RATE = 2e9                 # sustained flop/s of one core on these BLAS-bound kernels (measured order)
MAX_SECONDS = 30 * 24 * 3600.0  # a simulation estimated to need longer than this is refused
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


@dataclass(frozen=True)
class ResourceEstimate:
    """Peak bytes and seconds of one seed (``bytes``, ``seconds``) and of the whole run."""

    method: str
    bytes: int
    seconds: float
    total_bytes: int
    total_seconds: float

    def describe(self) -> str:
        return (f"about {format_bytes(self.total_bytes)} of memory and {format_seconds(self.total_seconds)} "
                f"(solver {self.method})")


def format_bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def format_seconds(s: float) -> str:
    for unit, scale in (("years", 3.15e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s:.2g} s"


def memory_limit() -> int:
    """Bytes a simulation may use: ``$LOWRANK_ICL_MEMORY_LIMIT``, else half the available memory."""
    text = os.environ.get(MEMORY_ENV_VAR, "").strip()
    if text:
        match = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([KMGT]?)i?B?", text, flags=re.IGNORECASE)
        if not match:
            raise ValueError(f"{MEMORY_ENV_VAR} must be a size such as 8G or 500M (got {text!r})")
        return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    return _available_memory() // 2


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30  # unknown platform: assume a modest machine


def estimate_seed(sizes: Sizes, method: str = "auto", pool_repeats: int = 1) -> tuple[str, int, float]:
    """(resolved solver, peak bytes, seconds) of one seed at ``sizes``."""
    D, M, r = sizes.dim, sizes.n_prompts, sizes.rank  # L costs nothing: h is sampled in O(D) a prompt
    M0 = 0 if sizes.fresh_tasks else sizes.n_tasks
    chosen = resolve_method(method, M, D)
    solver_bytes, solver_flops = solver_cost(chosen, M, D)
    chunk = min(M, 1 << 14)
    data_bytes = 8 * (2 * D * r + r * r + M0 * D + 2 * M * D + 2 * M + 6 * chunk * D)
    flops = 2.0 * D * r * r + 2.0 * M0 * r * D + 20.0 * M * D + solver_flops
    seconds = pool_repeats * flops / FLOP_RATE
    return chosen, data_bytes + solver_bytes, seconds


def check_resources(sizes_list, method: str = "auto", pool_repeats: int = 1, workers: int = 1,
                    n_seeds: int = 1, what: str = "simulate") -> ResourceEstimate:
    """Estimate a run of ``n_seeds`` seeds at each of ``sizes_list``; refuse (ValueError with the
    estimate and the limit) what needs more memory than :func:`memory_limit` or longer than
    :data:`MAX_SECONDS`."""
    per = [(s, *estimate_seed(s, method, pool_repeats)) for s in sizes_list]
    big = max(per, key=lambda t: t[2])
    concurrent = min(workers, n_seeds * len(per))
    total_bytes = big[2] * max(1, concurrent)
    total_seconds = sum(t[3] for t in per) * n_seeds / max(1, concurrent)
    est = ResourceEstimate(method=big[1], bytes=big[2], seconds=max(t[3] for t in per),
                           total_bytes=total_bytes, total_seconds=total_seconds)
    limit = memory_limit()
    s = big[0]
    shape = f"D={s.dim}, M={s.n_prompts}, M0={'inf' if s.fresh_tasks else s.n_tasks}, r={s.rank}"
    if total_bytes > limit:
        split = f"{concurrent} workers x {format_bytes(big[2])}, " if concurrent > 1 else ""
        fewer = ", or use fewer workers" if concurrent > 1 else ""
        raise ValueError(f"{what} at {shape} needs about {format_bytes(total_bytes)} of memory "
                         f"({split}solver {big[1]}), more than the limit {format_bytes(limit)} "
                         f"(set {MEMORY_ENV_VAR} to change it); reduce dim or tau{fewer}")
    if total_seconds > MAX_SECONDS:
        raise ValueError(f"{what} at {shape} would take about {format_seconds(total_seconds)} "
                         f"(solver {big[1]}), more than the limit {format_seconds(MAX_SECONDS)}; "
                         f"reduce dim, tau or the number of seeds")
    return est
