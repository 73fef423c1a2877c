"""``lowrank-icl sweep``: theory and Monte Carlo over a parameter grid, written as netCDF.

With --json, the package layout: ``parameters`` (grid, dims, seeds, method, scheduler), ``version``,
then ``cells``, ``computed``, ``reused``, ``seconds``, ``out``.
"""
from __future__ import annotations

import sys

from lowrank_icl.validation.cli._shared import parse_seeds, print_json

_HELP = {
    "alpha": "context length ratio L/D (> 0)",
    "tau": "pretraining prompts M/D^2 (> 0)",
    "kappa": "task diversity M0/D (> 0)",
    "rho": "task rank ratio r/D (0 < rho <= 1; default 1)",
    "sigma": "label-noise std (>= 0; default 0)",
    "lam": "ridge strength, penalty lam M0 ||Gamma||^2 (>= 0; default 0)",
}


def parse_values(name: str, text: str):
    """"2" -> 2.0 (held fixed); "1,2,4" -> [1.0, 2.0, 4.0] (a swept dimension)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--{name} must be a number or a comma-separated list such as 1,2,4 (got {text!r})") from None
    if len(set(values)) != len(values):
        raise ValueError(f"--{name} must not repeat a value (got {text!r})")
    return values[0] if len(values) == 1 else values


def parse_dims(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--dim must be a comma-separated list of integers such as 24,32 (got {text!r})") from None


def _cmd_sweep(args) -> int:
    from lowrank_icl.validation.io import check_replaceable, json_document
    from lowrank_icl.validation.sweeps import run_sweep
    from lowrank_icl.validation.sweeps.results import check_output_path, write_netcdf

    grid = {name: parse_values(name, getattr(args, name)) for name in _HELP if getattr(args, name) is not None}
    dims = parse_dims(args.dim) if args.dim else None
    seeds = parse_seeds(args.seeds)
    out = check_replaceable(check_output_path(args.out), "--out")
    if args.scheduler is not None:
        from lowrank_icl.validation.sweeps.engine import check_scheduler_address
        check_scheduler_address(args.scheduler)
    try:
        run = run_sweep(grid, dims, seeds, client=args.scheduler, workers=args.workers, cache_dir=args.cache_dir,
                        method=args.method, progress=not args.quiet)
    except KeyboardInterrupt:
        print("lowrank-icl sweep: interrupted; finished cells are in the cache, rerun the same command to "
              "resume", file=sys.stderr)
        return 130
    write_netcdf(run.dataset, out)
    summary = {"cells": run.cells, "computed": run.computed, "reused": run.reused,
               "seconds": round(run.seconds, 3), "out": str(out)}
    if args.json:
        params = {"grid": grid, "dims": dims, "seeds": seeds if dims else None, "method": args.method,
                  "scheduler": args.scheduler}
        print_json(json_document(params, summary))
    else:
        print(f"wrote {out}: {run.cells} {'cells' if dims else 'grid points (theory only)'}, "
              f"{run.computed} computed, {run.reused} reused, {run.seconds:.1f} s")
    return 0


def configure(p):
    """Add the arguments of ``sweep`` to its parser."""
    p.description = ("Each parameter takes a number (held fixed) or a comma-separated list (swept). Theory "
                     "(solve) at every grid point; with --dim, one simulation cell per (point, D, seed), "
                     "each stored in the cache as it finishes, so a rerun computes only missing cells. "
                     "Writes a netCDF file for xarray.open_dataset.")
    for name, text in _HELP.items():
        p.add_argument(f"--{name}", required=name in ("alpha", "tau", "kappa"), default=None, help=text)
    p.add_argument("--dim", default=None, help="token dimensions D, e.g. 24,32 (default: theory only)")
    p.add_argument("--seeds", default="0-4", help="seeds per (point, D), e.g. 0-4 or 1,3,7 (default 0-4)")
    p.add_argument("--out", required=True, help="netCDF file to write, e.g. results.nc")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler (tcp://HOST:PORT): one task per cell (default: local processes)")
    p.add_argument("--workers", type=int, default=None, help="local processes (default min(2, CPUs))")
    p.add_argument("--cache-dir", default=None,
                   help="cell cache folder (default $LOWRANK_ICL_CACHE_DIR or the user cache folder)")
    p.add_argument("--method", default="auto", choices=("auto", "primal", "dual", "cg", "dual-cg"),
                   help="ridge solver (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=_cmd_sweep)
