"""``lowrank-icl simulate``: Monte Carlo of the trained reduced attention at one parameter point.

With --json, one JSON object: ``parameters`` (the inputs), ``version``, ``errors`` and
``order_parameters`` (each quantity as {"mean", "sem", "values"}), ``sizes``, ``converged``,
``residual``, ``iterations``, ``methods``, ``seconds``. Per-seed results are cached in the user
cache folder (``--cache-dir``, ``$LOWRANK_ICL_CACHE_DIR``; ``--no-cache`` to skip).
"""
from __future__ import annotations

import time

from lowrank_icl.validation.cli._shared import (add_cache_arguments, add_forward_arguments, add_quiet_argument,
                                                check_cache_folder, forward_parameters, parse_seeds,
                                                positive_int, print_json, stderr_progress)


def register(subparsers):
    """Add ``simulate`` to the lowrank-icl parser."""
    sim = subparsers.add_parser(
        "simulate", help="Monte Carlo of the trained reduced attention: exact TM/IDG/ODG errors",
        description="Train Gamma_hat at dimension D for each seed (same parameter conventions as "
                    "`solve`: L = round(alpha D), M = round(tau D^2), M0 = round(kappa D), r = round(rho D)) "
                    "and print the exact finite-D test errors and order parameters (mean, sem, values).")
    sim.add_argument("--dim", type=positive_int, required=True, help="token dimension D")
    add_forward_arguments(sim)  # the same model arguments and conventions as `solve`
    sim.add_argument("--seeds", default="0-4", help="distinct seeds, e.g. 0-4 or 1,3,7 (default 0-4)")
    sim.add_argument("--method", default="auto", choices=("auto", "primal", "dual", "cg", "dual-cg"))
    sim.add_argument("--workers", type=positive_int, default=1,
                     help="parallel processes (at most the number of available cores)")
    add_cache_arguments(sim)
    add_quiet_argument(sim)
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args) -> int:
    from lowrank_icl.validation.cache import default_cache_dir
    from lowrank_icl.validation.forward.simulate import simulate
    seeds = parse_seeds(args.seeds)
    cache_dir = None if args.no_cache else (check_cache_folder(args.cache_dir) or default_cache_dir())
    start = time.perf_counter()
    res = simulate(dim=args.dim, **forward_parameters(args), alpha_test=args.alpha_test,
                   sigma_test=args.sigma_test, seeds=seeds, method=args.method, workers=args.workers,
                   cache_dir=cache_dir, progress=stderr_progress(args.quiet))
    out = res.to_dict()
    out["seconds"] = time.perf_counter() - start
    if args.json:
        print_json(out)
        return 0
    s = out["sizes"]
    print(f"D={s['D']} L={s['L']} M={s['M']} M0={s['M0']} r={s['r']}  seeds={out['parameters']['seeds']}  "
          f"({out['seconds']:.1f} s, solver {','.join(out['methods'])}, max residual {res.residual:.1e})")
    err = res.errors()
    for k in ("tm", "idg", "odg"):
        print(f"  e_{k.upper():<4} = {getattr(err, k)}")
    for k in ("q", "m", "q_bar", "m_bar", "q0", "m0"):
        print(f"  {k:<6} = {getattr(res, k)}")
    return 0
