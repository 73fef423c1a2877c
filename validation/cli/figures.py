"""``lowrank-icl figures``: regenerate the figures (PNG, PDF, CSV) and print their tables.

Tables and the closing line (theory-vs-simulation points passed / checked) go to stdout; progress
to stderr (``--quiet`` silences it). ``--out`` receives only figures and CSVs; cached simulations
live in the user cache folder (``--cache-dir``, ``$LOWRANK_ICL_CACHE_DIR``; ``--no-cache``).
With --json, stdout holds one document instead of the tables: ``parameters``, ``version``,
``figures`` (each: name, files, rows, passed, checked), ``passed``, ``checked``, ``seconds``;
``--list --json`` gives ``figures`` as name, description and the extra each one needs.
"""
from __future__ import annotations

import io
import time
from pathlib import Path

from lowrank_icl.validation.cli._shared import (add_cache_arguments, add_quiet_argument, check_cache_folder,
                                                check_output_folder, print_json)


def configure(fig):
    """Add the arguments of ``figures`` to its parser."""
    fig.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: ./figures)")
    fig.add_argument("--quick", action="store_true", help="small sizes: a few minutes on 2 cores")
    fig.add_argument("--only", default=None, help="comma-separated figure names (default: all)")
    fig.add_argument("--list", action="store_true", help="list the figure names and exit")
    fig.add_argument("--scale", choices=("quick", "medium", "paper"), default=None,
                     help="sizes of the inverse-ICL figures: quick, medium, or paper (d=100, N=50, n_s=1e4, K=4, "
                          "5 training seeds); default quick with --quick, else paper")
    fig.add_argument("--threads", type=int, default=1, metavar="N",
                     help="threads per linear-transformer training in the inverse figures (default 1; the "
                          "trained weights do not depend on it)")
    fig.add_argument("--scheduler", default=None, metavar="ADDRESS",
                     help="run the simulations as tasks on this Dask scheduler (tcp://HOST:PORT)")
    add_cache_arguments(fig)
    add_quiet_argument(fig)
    fig.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    fig.set_defaults(func=_cmd_figures)


def _cmd_figures(args) -> int:
    from lowrank_icl.validation.figures.registry import all_figures, run_figures
    from lowrank_icl.validation.io import json_document
    if args.list:
        if args.json:
            print_json(json_document({"list": True}, {"figures": [
                {"name": name, "description": spec.description, "extra": spec.extra}
                for name, spec in all_figures().items()]}))
            return 0
        for name, spec in all_figures().items():
            print(f"{name:28s} {spec.description}")
        return 0
    only = None
    if args.only is not None:
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        if not only:
            raise ValueError(f"--only needs at least one figure name (got {args.only!r}); "
                             f"choose from {', '.join(all_figures())}")
        repeated = sorted({n for n in only if only.count(n) > 1})
        if repeated:
            raise ValueError(f"--only names {', '.join(repeated)} more than once (got {args.only!r})")
    if not 1 <= args.threads <= 64:
        raise ValueError(f"--threads must be in [1, 64] (got {args.threads})")
    out = check_output_folder(args.out)
    if args.scheduler is not None:
        from lowrank_icl.validation.sweeps.engine import check_scheduler_address
        check_scheduler_address(args.scheduler)
    cache_dir = None if args.no_cache else check_cache_folder(args.cache_dir)
    from lowrank_icl.validation.sweeps.engine import scheduler_engine
    from lowrank_icl.validation.figures.inverse import lt_threads
    tables = io.StringIO() if args.json else None     # --json: the document replaces the tables
    start = time.perf_counter()
    with scheduler_engine(args.scheduler), lt_threads(args.threads):   # scheduler None: the local pool
        outputs = run_figures(out, quick=args.quick, only=only, stream=tables, cache_dir=cache_dir,
                              use_cache=not args.no_cache, quiet=args.quiet, scale=args.scale)
    if args.json:
        rows = []
        for o in outputs:
            passed, checked = o.checks()
            rows.append({"name": o.name, "files": [str(f) for f in o.files], "rows": len(o.rows),
                         "passed": passed, "checked": checked})
        print_json(json_document(
            {"out": str(out), "quick": args.quick, "only": only, "scale": args.scale, "threads": args.threads,
             "scheduler": args.scheduler, "cache_dir": None if cache_dir is None else str(cache_dir),
             "no_cache": args.no_cache},
            {"figures": rows, "passed": sum(r["passed"] for r in rows), "checked": sum(r["checked"] for r in rows),
             "seconds": time.perf_counter() - start}))
    return 0
