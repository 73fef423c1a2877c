"""``lowrank-icl simulate``: Monte Carlo of the trained reduced attention at one parameter point.

With --json, one JSON object: ``parameters`` (the inputs), ``version``, ``errors`` and
``order_parameters`` (each quantity as {"mean", "sem", "n", "values"}), ``sizes``, ``converged``,
``residual``, ``iterations``, ``methods``, ``seconds``. Per-seed results are cached in the user
cache folder (``--cache-dir``, ``$LOWRANK_ICL_CACHE_DIR``; ``--no-cache`` to skip).
"""
from __future__ import annotations

import time

from lowrank_icl.validation.cli._shared import (add_cache_arguments, add_forward_arguments, add_quiet_argument,
                                                check_cache_folder, forward_parameters, parse_seeds, plus_minus,
                                                positive_int, print_json, result_document, stderr_progress)


def configure(sim):
    """Add the arguments of ``simulate`` to its parser."""
    sim.description = ("Train Gamma_hat at dimension D for each seed (same parameter conventions as "
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
    sim.add_argument("--y2-column", action="store_true",
                     help="also train the model with the extra feature (1/L) sum y^2 x_q (same prompts) and "
                          "print both models' errors and the excess")
    sim.add_argument("--spectrum", default=None, metavar="SPEC",
                     help="general task spectrum instead of --rho, as in `solve --spectrum` (D <= 256; one "
                          "process, no cache); also prints the finite-D theory at the same sizes")
    sim.add_argument("--time", default=None, metavar="T1,T2,...",
                     help="training times of exact gradient flow from zero (inf allowed): the finite-D "
                          "learning curves (docs/learning_curves.md); one process, no cache")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args) -> int:
    from lowrank_icl.validation.cache import default_cache_dir
    from lowrank_icl.validation.forward.simulate import simulate
    from lowrank_icl.numerics.utils import check_sizes
    seeds = parse_seeds(args.seeds)
    check_sizes(args.dim, alpha=args.alpha, alpha_test=args.alpha_test, tau=args.tau, kappa=args.kappa,
                rho=None if args.spectrum is not None else args.rho)
    if args.time is not None:
        return _cmd_simulate_time(args, simulate, seeds)
    if args.spectrum is not None:
        return _cmd_simulate_spectrum(args, seeds)
    if args.y2_column:
        return _cmd_simulate_y2_column(args, simulate, seeds)
    cache_dir = None if args.no_cache else (check_cache_folder(args.cache_dir) or default_cache_dir())
    start = time.perf_counter()
    res = simulate(dim=args.dim, **forward_parameters(args), alpha_test=args.alpha_test,
                   sigma_test=args.sigma_test, seeds=seeds, method=args.method, workers=args.workers,
                   cache_dir=cache_dir, progress=stderr_progress(args.quiet))
    out = result_document(res.to_dict(), seconds=time.perf_counter() - start)
    if args.json:
        print_json(out)
        return 0
    s = out["sizes"]
    print(f"D={s['D']} L={s['L']} M={s['M']} M0={s['M0']} r={s['r']}  {_seeds_text(seeds)}  "
          f"({out['seconds']:.1f} s, solver {','.join(out['methods'])}, max residual {res.residual:.1e})")
    err = res.errors()
    for k in ("tm", "idg", "odg"):
        print(f"  e_{k.upper():<4} = {getattr(err, k)}")
    for k in ("q", "m", "q_bar", "m_bar", "q0", "m0"):
        print(f"  {k:<6} = {getattr(res, k)}")
    return 0


def _cmd_simulate_time(args, simulate, seeds) -> int:
    from lowrank_icl.validation.forward.flow import parse_times, print_curves
    if args.spectrum is not None or args.y2_column or args.workers != 1 or args.method != "auto":
        raise ValueError("--time takes no --spectrum, --y2-column, --workers or --method")
    times = parse_times(args.time)
    res = simulate(dim=args.dim, **forward_parameters(args), seeds=seeds, time=times)
    out = res.to_dict(alpha_test=args.alpha_test, sigma_test=args.sigma_test)
    if args.json:
        print_json(out)
        return 0
    s = out["sizes"]
    print_curves(times, res.errors(args.alpha_test, args.sigma_test),
                 f"D={s['D']} L={s['L']} M={s['M']} M0={s['M0']} r={s['r']}  seeds={out['parameters']['seeds']}  "
                 f"({res.seconds:.1f} s, {','.join(res.methods)}, max residual {res.residual:.1e})")
    return 0


def _cmd_simulate_y2_column(args, simulate, seeds) -> int:
    """--y2-column: the model with the label-power column beside the reduced one (same prompts)."""
    res = simulate(dim=args.dim, **forward_parameters(args), seeds=seeds, method=args.method,
                   progress=not args.quiet, y2_column=True)
    if args.json:
        print_json(res.to_dict())
        return 0
    print(f"label-power column vs reduced model, D={res.sizes.dim} M0={res.sizes.n_tasks} {_seeds_text(seeds)} "
          f"({res.message})")
    for k in ("tm", "idg", "odg"):
        exc = getattr(res.excess, k)
        print(f"  e_{k.upper():<4} reduced {getattr(res.reduced, k).mean:.6f}  with column "
              f"{getattr(res.y2_column, k).mean:.6f}  excess {plus_minus(exc.mean, exc.sem, '+.6f')}"
              f"  (infinite pretraining {getattr(res.population_excess, k).mean:+.6f})")
    return 0


def _seeds_text(seeds) -> str:
    """The seeds in a few characters (a run may have thousands)."""
    seeds = list(seeds)
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds={seeds[0]}-{seeds[-1]} ({len(seeds)})"
    return f"seeds={','.join(map(str, seeds[:8]))}{',...' if len(seeds) > 8 else ''} ({len(seeds)})"


def _cmd_simulate_spectrum(args, seeds) -> int:
    """--spectrum: tasks from a general spectrum in a Haar eigenbasis; exact errors beside the theory."""
    from lowrank_icl.numerics import TaskSpectrum
    from lowrank_icl.validation.forward.simulate import simulate
    clash = [flag for flag, bad in (("--rho", args.rho != 1.0), ("--y2-column", args.y2_column),
                                    ("--workers", args.workers != 1)) if bad]
    if clash:
        raise ValueError(f"--spectrum takes no {', '.join(clash)} (the spectrum sets the task law; one process)")
    spectrum = TaskSpectrum.parse(args.spectrum)
    params = forward_parameters(args)
    params.pop("rho")
    res = simulate(dim=args.dim, **params, spectrum=spectrum, seeds=seeds, method=args.method)
    # the spec as given (the atoms are reproducible from it)
    out = result_document(res.to_dict(alpha_test=args.alpha_test, sigma_test=args.sigma_test),
                          {"spectrum": args.spectrum})
    if args.json:
        print_json(out)
        return 0
    z = out["sizes"]
    print(f"spectrum {args.spectrum}: D={z['D']} L={z['L']} M={z['M']} M0={z['M0']}  {_seeds_text(seeds)}  "
          f"({res.seconds:.1f} s, converged {res.converged}, max residual {res.residual:.1e})")
    err = res.errors(args.alpha_test, args.sigma_test)
    for k in ("tm", "idg", "odg"):
        print(f"  e_{k.upper():<4} = {getattr(err, k)}   theory {out['theory']['errors'][k]:.6g}")
    return 0
