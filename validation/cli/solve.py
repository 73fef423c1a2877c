"""``lowrank-icl solve``: the forward saddle point at one parameter point.

Contract (scripts depend on it): with --json, one JSON object with keys ``order_parameters``
(q, m, chi, q_bar, chi_bar, q_hat, m_hat, chi_hat, q_bar_hat, chi_bar_hat, m_bar, q0, m0, nu),
``errors`` (tm, idg, odg), ``converged``, ``residual`` (plus ``branch``, ``method``); floats are
written with full precision (repr round-trips); exit code 0. Bad input: one line on stderr, exit 2.
"""
from __future__ import annotations

import json
import math

from lowrank_icl.numerics import solve


def register(subparsers):
    p = subparsers.add_parser("solve", help="solve the forward saddle point (order parameters, TM/IDG/ODG errors)",
                              description="Solve the replica saddle point of low-rank linear-attention ICL.")
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
    p.set_defaults(func=_cmd_solve)


def add_forward_arguments(p):
    """The model parameters shared by solve and simulate (same names and conventions)."""
    p.add_argument("--alpha", type=float, required=True, help="context length ratio L/D (> 0)")
    p.add_argument("--tau", type=float, required=True, help="pretraining prompts M/D^2 (> 0)")
    p.add_argument("--kappa", type=float, required=True, help="task diversity M0/D (> 0)")
    p.add_argument("--rho", type=float, default=1.0, help="task rank ratio r/D (0 < rho <= 1; default 1)")
    p.add_argument("--sigma", type=float, default=0.0, help="label-noise std (>= 0; default 0)")
    p.add_argument("--lam", type=float, default=0.0, help="ridge strength, penalty lam M0 ||Gamma||^2 (>= 0)")
    p.add_argument("--alpha-test", type=float, default=None, help="test context ratio (default: alpha)")
    p.add_argument("--sigma-test", type=float, default=None, help="test noise std (default: sigma)")


def _cmd_solve(args) -> int:
    spectrum = None
    if args.spectrum is not None:
        from lowrank_icl.numerics import TaskSpectrum
        spectrum = TaskSpectrum.parse(args.spectrum)
    res = solve(args.alpha, args.tau, args.kappa, args.rho, args.sigma, args.lam, method=args.method,
                precision=args.precision, spectrum=spectrum)
    out = res.to_dict(alpha_test=args.alpha_test, sigma_test=args.sigma_test)
    if args.json:
        print(json.dumps(_finite_json(out), allow_nan=False))
        return 0
    print(f"branch: {out['branch']}   method: {out['method']}   converged: {out['converged']}   "
          f"residual: {out['residual']:.3g}")
    print("order parameters:")
    for k, v in out["order_parameters"].items():
        print(f"  {k:12s} {v!r}")
    print("errors:")
    for k, v in out["errors"].items():
        print(f"  {k:12s} {v!r}")
    return 0


def _finite_json(obj):
    """JSON has no inf: +inf (interpolation threshold, chi at lam = 0, tau < 1) becomes "inf"."""
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    return obj
