"""``lowrank-icl simulate`` (Monte Carlo of the trained Gamma) and ``lowrank-icl bench``."""
from __future__ import annotations

import json
import time

from lowrank_icl.validation.cli.solve import add_forward_arguments


def parse_seeds(text: str) -> list[int]:
    """"0-4" -> [0, 1, 2, 3, 4]; "1,3,7" -> [1, 3, 7]; "5" -> [5]; ranges and lists combine."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(f"--seeds must look like 0-4 or 1,3,7 (got {text!r})") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds must be non-negative integers (got {text!r})")
    return seeds


def _cmd_simulate(args) -> int:
    from lowrank_icl.validation.forward.simulate import simulate
    start = time.perf_counter()
    if args.y2_column:
        return _cmd_simulate_y2_column(args, simulate)
    res = simulate(args.dim, args.alpha, args.tau, args.kappa, args.rho, args.sigma, args.lam,
                   alpha_test=args.alpha_test, sigma_test=args.sigma_test, seeds=parse_seeds(args.seeds),
                   method=args.method, workers=args.workers, cache_dir=args.cache_dir,
                   progress=not args.quiet)
    out = res.to_dict()
    out["seconds"] = time.perf_counter() - start
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        s = out["sizes"]
        print(f"D={s['D']} L={s['L']} M={s['M']} M0={s['M0']} r={s['r']}  seeds={out['seeds']}  "
              f"({out['seconds']:.1f} s, solver {','.join(out['methods'])}, max residual {out['residual']:.1e})")
        for k in ("tm", "idg", "odg"):
            print(f"  e_{k.upper():<4} = {out[k]['mean']:.6f} +- {out[k]['sem']:.6f}")
        for k, v in out["order_parameters"].items():
            print(f"  {k:<6} = {v:.6f} +- {out['order_parameter_sems'][k]:.6f}")
    return 0


def _cmd_simulate_y2_column(args, simulate) -> int:
    """--y2-column: the model with the label-power column beside the reduced one (same prompts)."""
    from lowrank_icl.validation.cli.bayes import _null_nan, _version
    res = simulate(args.dim, args.alpha, args.tau, args.kappa, args.rho, args.sigma, args.lam,
                   seeds=parse_seeds(args.seeds), method=args.method, progress=not args.quiet, y2_column=True)
    out = _null_nan({**res.to_dict(), "parameters": {"dim": args.dim, **{k: float(getattr(res.params, k)) for k in res.params.field_names()},
                                    "seeds": list(res.seeds), "y2_column": True},
                     "version": _version()})
    if args.json:
        print(json.dumps(out, allow_nan=False))
        return 0
    print(f"label-power column vs reduced model, D={out['sizes']['D']} M0={out['sizes']['M0']} seeds={out['seeds']}")
    for k in ("tm", "idg", "odg"):
        print(f"  e_{k.upper():<4} reduced {out['reduced'][k]['mean']:.6f}  with column {out['y2_column'][k]['mean']:.6f}"
              f"  excess {out['excess'][k]['mean']:+.6f} +- {out['excess'][k]['sem'] or float('nan'):.6f}"
              f"  (infinite pretraining {out['population_excess'][k]['mean']:+.6f})")
    return 0


def _cmd_bench(args) -> int:
    if args.inverse:
        from lowrank_icl.validation.bench import run_inverse_bench
        run_inverse_bench(n_s=args.inverse_tasks, loss=args.inverse_loss, converge=not args.no_converge,
                          as_json=args.json)
        return 0
    from lowrank_icl.validation.bench import run_bench
    run_bench(large=args.large, as_json=args.json)
    return 0


def register(subparsers):
    """Add ``simulate`` and ``bench`` to the lowrank-icl parser."""
    sim = subparsers.add_parser(
        "simulate", help="Monte Carlo of the trained reduced attention: exact TM/IDG/ODG errors",
        description="Train Gamma_hat at dimension D for each seed (same parameter conventions as "
                    "`solve`: L = round(alpha D), M = round(tau D^2), M0 = round(kappa D), r = round(rho D)) "
                    "and print the exact finite-D test errors and order parameters (mean, sem, values).")
    sim.add_argument("--dim", type=int, required=True, help="token dimension D")
    add_forward_arguments(sim)  # the same model arguments and conventions as `solve`
    sim.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 1,3,7 (default 0-4)")
    sim.add_argument("--method", default="auto", choices=("auto", "primal", "dual", "cg", "dual-cg"))
    sim.add_argument("--workers", type=int, default=1, help="parallel processes (at most 2)")
    sim.add_argument("--cache-dir", default=None, help="folder for per-seed JSON cache")
    sim.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sim.add_argument("--y2-column", action="store_true",
                     help="also train the model with the extra feature (1/L) sum y^2 x_q (same prompts) and "
                          "print both models' errors and the excess")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(func=_cmd_simulate)

    bench = subparsers.add_parser(
        "bench", help="speed of one trained Gamma vs the dense direct solve; time and memory up to D=256",
        description="D=64, tau=2: automatic solver vs dense direct primal in the same run (ratio); "
                    "then D=128, 256 (512 with --large) in fresh processes: seconds and peak memory.")
    bench.add_argument("--large", action="store_true", help="also D = 512")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--inverse", action="store_true",
                       help="inverse ICL instead: the LT training kernel, previous vs fast (per evaluation and "
                            "to convergence, d=100 N=50 K=4)")
    bench.add_argument("--inverse-tasks", type=int, default=10000, help="n_s for --inverse (default 10000)")
    bench.add_argument("--inverse-loss", default="supervised", choices=("supervised", "unsupervised", "heldout"),
                       help="LT loss for --inverse (default supervised)")
    bench.add_argument("--no-converge", action="store_true", help="--inverse: per-evaluation times only")
    bench.set_defaults(func=_cmd_bench)


