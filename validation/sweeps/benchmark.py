"""Cost of the sweep engines: per-cell overhead of Dask against the local pool, and 2 workers over 1.

    python -m lowrank_icl.validation.sweeps.benchmark [--cells N] [--sim-cells N] [--json]

Starts a LocalCluster (2 worker processes, one thread each, loopback) and uses the local pool
(2 spawned processes; a new pool per sweep), and prints, for each engine:

- ``startup``: seconds before the first result of a map (pool spawn; Dask: task round trip);
- ``theory_wall_per_cell``: steady-state wall seconds per theory cell (one scalar ``solve`` per
  task; time between the first and the last result / (N - 1)), next to one vectorized ``solve``
  per point (what ``sweep`` does) and ``theory_cell_seconds``, the scalar solve alone; the
  overhead per cell = wall per cell - cell seconds / 2 workers;
- ``sim_D64``: the same steady-state wall time for D = 64 simulation cells, the mean seconds spent
  inside a cell, and the overhead per cell = wall per cell - cell seconds / 2 workers;
- ``speedup``: one 32-cell sweep (D = 48) on 2 and then on 1 Dask worker (after a warm-up sweep).

Cells are computed into fresh temporary caches, so nothing is reused.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from lowrank_icl.numerics import solve
from lowrank_icl.validation.sweeps.cells import cell_job, run_cell
from lowrank_icl.validation.sweeps.engine import LocalEngine
from lowrank_icl.validation.sweeps.runner import run_sweep

POINT = dict(alpha=2.0, tau=2.0, kappa=1.0, rho=0.5, sigma=0.3, lam=0.1)


def theory_cell(point: dict) -> float:
    """One grid point's IDG error by a scalar solve (the unit of a per-point task)."""
    return float(solve(**point).errors().idg)


def _steady_wall_per_cell(engine, fn, args):
    """(wall seconds per finished cell between the first and the last result, results): the
    steady-state rate, free of start-up (pool spawn, worker imports)."""
    stamps = []
    results = engine.map(fn, args, lambda i, r: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), results


def _engine_costs(engine, n_theory, n_sim, seed0, cache, theory_seconds) -> dict:
    points = [{**POINT, "alpha": 1.0 + i / n_theory} for i in range(n_theory)]
    t0 = time.perf_counter()
    theory_wall, _ = _steady_wall_per_cell(engine, theory_cell, points)
    startup = time.perf_counter() - t0 - theory_wall * (n_theory - 1)
    jobs = [(cell_job(POINT, 64, seed0 + s), cache) for s in range(n_sim)]
    sim_wall, results = _steady_wall_per_cell(engine, run_cell, jobs)
    inside = float(np.mean([r["seconds"] for r in results]))
    return {"startup": startup, "theory_wall_per_cell": theory_wall,
            "theory_overhead_per_cell": theory_wall - theory_seconds / 2,
            "sim_D64": {"wall_per_cell": sim_wall, "cell_seconds": inside,
                        "overhead_per_cell": sim_wall - inside / 2}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100, help="theory cells per measurement (default 100)")
    parser.add_argument("--sim-cells", type=int, default=6, help="D = 64 cells per measurement (default 6)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from distributed import Client, LocalCluster

    from lowrank_icl.validation.sweeps.dask_engine import DaskEngine
    n = args.cells
    theory_cell(POINT)                                     # warm: first-call set-up of solve
    t0 = time.perf_counter()
    solve(**{**POINT, "alpha": np.linspace(1, 2, n)})
    out = {"theory_vectorized_per_point": (time.perf_counter() - t0) / n}
    t0 = time.perf_counter()
    for i in range(20):
        theory_cell({**POINT, "alpha": 1.0 + i / 20})
    out["theory_cell_seconds"] = (time.perf_counter() - t0) / 20
    with tempfile.TemporaryDirectory() as tmp:
        out["local_pool"] = _engine_costs(LocalEngine(workers=2), n, args.sim_cells, 0, tmp + "/local",
                                          out["theory_cell_seconds"])
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                          host="127.0.0.1") as cluster, Client(cluster) as client:
            out["dask"] = _engine_costs(DaskEngine(client), n, args.sim_cells, 1000, tmp + "/dask",
                                        out["theory_cell_seconds"])
            grid = dict(alpha=[1.0, 2.0], kappa=[0.5, 1.0], tau=2.0, rho=0.5, sigma=0.3, lam=0.1)
            run_sweep(grid, [8], [0, 1], client=client, cache_dir=tmp + "/warm")   # imports, first dataset
            seeds = range(200, 208)
            two = run_sweep(grid, [48], seeds, client=client, cache_dir=tmp + "/w2").seconds
            cluster.scale(1)
            while len(client.scheduler_info()["workers"]) > 1:
                time.sleep(0.1)
            one = run_sweep(grid, [48], seeds, client=client, cache_dir=tmp + "/w1").seconds
            out["speedup_32_cells_D48"] = {"one_worker": one, "two_workers": two, "speedup": one / two}
    print(json.dumps(out, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return out


if __name__ == "__main__":
    # run from the importable module, not __main__: worker processes must be able to import the cells
    from lowrank_icl.validation.sweeps.benchmark import main as _importable_main
    _importable_main()
