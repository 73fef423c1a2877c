"""``lowrank-icl solve``: the forward saddle point at one parameter point.

Contract (scripts depend on it): with --json, one JSON object with keys ``parameters`` (the
inputs), ``version``, ``order_parameters`` (q, m, chi, q_bar, chi_bar, q_hat, m_hat, chi_hat,
q_bar_hat, chi_bar_hat, m_bar, q0, m0, nu), ``errors`` (tm, idg, odg), ``converged``, ``residual``
(plus ``branch``, ``method``); floats are written with full precision (repr round-trips), NaN as
null and infinities as "inf"; exit code 0. Bad input: one line on stderr, exit 2.
``--kappa inf`` (a fresh task for every prompt) is passed to the solver as is.
"""
from __future__ import annotations

from lowrank_icl.validation.cli._shared import add_forward_arguments, forward_parameters, print_json, result_document


def configure(p):
    """Add the arguments of ``solve`` to its parser."""
    p.description = "Solve the replica saddle point of low-rank linear-attention ICL."
    add_forward_arguments(p)
    p.add_argument("--method", choices=("reduced", "damped"), default="reduced",
                   help="reduced scalar equation (default) or the published damped iteration")
    p.add_argument("--precision", type=int, default=None, help="mpmath digits (reduced method)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--spectrum", default=None, metavar="SPEC",
                   help="general task spectrum instead of --rho: lowrank:RHO, approx-lowrank:RHO,FLOOR, "
                        "power:EXPONENT[,ATOMS], spiked:STRENGTH,FRACTION, or a .json/.npz file with arrays "
                        "train, test (optional, default isotropic) and weights (optional); odg is then the "
                        "error on the test law")
    p.add_argument("--time", default=None, metavar="T1,T2,...",
                   help="training times of gradient flow from zero (inf allowed): the learning curves "
                        "(docs/learning_curves.md) instead of the end point")
    p.set_defaults(func=_cmd_solve)


def _cmd_solve(args) -> int:
    from lowrank_icl.numerics import solve
    params = forward_parameters(args)
    spectrum = None
    if args.spectrum is not None:
        from lowrank_icl.numerics import TaskSpectrum
        spectrum = TaskSpectrum.parse(args.spectrum)
    if args.time is not None:
        return _cmd_solve_time(args, params, spectrum)
    res = solve(**params, method=args.method, precision=args.precision,
                **({"spectrum": spectrum} if spectrum is not None else {}))
    doc = dict(res.to_dict(alpha_test=args.alpha_test, sigma_test=args.sigma_test))
    doc.pop("parameters", None)  # the document records the inputs as given (a spectrum replaces rho)
    given = {k: v for k, v in params.items() if not (k == "rho" and spectrum is not None)}
    out = result_document(doc, {**given, "alpha_test": args.alpha_test, "sigma_test": args.sigma_test,
                                "method": args.method, "precision": args.precision, "spectrum": args.spectrum},
                          precision=args.precision)
    if args.json:
        print_json(out)
        return 0
    print(f"branch: {out['branch']}   method: {out['method']}   converged: {out['converged']}   "
          f"residual: {_value(out['residual'], '.3g')}")
    if out.get("reason"):
        print(f"reason: {out['reason']}")
    print("order parameters:")
    for k, v in out["order_parameters"].items():
        print(f"  {k:12s} {_value(v)}")
    print("errors:")
    for k, v in out["errors"].items():
        print(f"  {k:12s} {_value(v)}")
    return 0


def _value(x, spec: str | None = None) -> str:
    """A JSON-ready value as text: full precision (repr, or the mpmath digits), NaN (null) as nan."""
    if x is None:
        return "nan"
    if isinstance(x, float):
        return format(x, spec) if spec else repr(x)
    return str(x)


def _cmd_solve_time(args, params, spectrum) -> int:
    from lowrank_icl.numerics import solve
    from lowrank_icl.validation.forward.flow import parse_times, print_curves
    times = parse_times(args.time)
    res = solve(**params, method=args.method, precision=args.precision, time=times,
                **({"spectrum": spectrum} if spectrum is not None else {}))
    out = res.to_dict(alpha_test=args.alpha_test, sigma_test=args.sigma_test)
    if args.json:
        out.pop("parameters", None)
        print_json(result_document(out, {**params, "alpha_test": args.alpha_test, "sigma_test": args.sigma_test,
                                         "time": args.time}))
        return 0
    print_curves(times, res.errors(args.alpha_test, args.sigma_test),
                 f"gradient flow: converged: {out['converged']}   quadrature residual: {_value(out['residual'], '.3g')}"
                 + (f"   reason: {out['reason']}" if out["reason"] else ""))
    return 0
