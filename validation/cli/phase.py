"""``lowrank-icl phase``: location and width of the kappa = rho crossover for each alpha.

With --json: {"parameters": {...}, "version", "alpha": [...], "kappa_star": [...], "width": [...],
"kappa_lo", "kappa_hi", "slope", "error_at_star", "converged", "residual", "protocol",
"width_exponent": {...} (when >= 3 alphas)}. Without --sigma or --lam the defaults of
:func:`lowrank_icl.numerics.phase_boundary` apply (read from its signature, so the command and the
function cannot disagree); the JSON records the values used.
"""
from __future__ import annotations

from lowrank_icl.validation.cli._shared import default_of, print_json


def _api_default(name: str):
    from lowrank_icl.numerics import phase_boundary
    return default_of(phase_boundary, name)


def register(subparsers):
    p = subparsers.add_parser("phase", help="locate the kappa = rho transition (kappa*, width) for each alpha")
    p.add_argument("--rho", type=float, required=True, help="task rank ratio r/D (0 < rho <= 1)")
    p.add_argument("--tau", type=float, required=True, help="pretraining prompts M/D^2 (> 1 at lam = 0)")
    p.add_argument("--sigma", type=float, default=None,
                   help="label-noise std (default: that of numerics.phase_boundary)")
    p.add_argument("--lam", type=float, default=None, help="ridge strength (default: that of numerics.phase_boundary)")
    p.add_argument("--alpha", required=True, help="comma-separated context ratios, e.g. 1e2,1e4,1e6")
    p.add_argument("--protocol", choices=("idg", "odg", "tm"), default="idg", help="which error (default idg)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from lowrank_icl.numerics import fit_power_law, phase_boundary
    try:
        alphas = [float(a) for a in args.alpha.split(",") if a.strip()]
    except ValueError:
        raise ValueError(f"alpha must be a comma-separated list of numbers (got {args.alpha!r})") from None
    if not alphas:
        raise ValueError("alpha must list at least one value")
    for name in ("sigma", "lam"):
        if getattr(args, name) is None:
            setattr(args, name, _api_default(name))
    pb = phase_boundary(alpha=alphas, tau=args.tau, rho=args.rho, sigma=args.sigma, lam=args.lam,
                        protocol=args.protocol)
    out = pb.to_dict()
    fit = fit_power_law(pb.alpha, pb.width) if len(alphas) >= 3 else None
    if fit is not None:
        out["width_exponent"] = {"exponent": fit.exponent, "ci95": [fit.ci_low, fit.ci_high]}
    if args.json:
        from lowrank_icl.validation.io import json_document
        print_json(json_document({"alpha": alphas, "tau": args.tau, "rho": args.rho, "sigma": args.sigma,
                                  "lam": args.lam, "protocol": args.protocol}, out))
        return 0
    print(f"kappa = rho crossover of e_{args.protocol.upper()} (rho={args.rho}, tau={args.tau}, sigma={args.sigma}, lam={args.lam})")
    print(f"{'alpha':>10} {'kappa*':>12} {'width(ln k)':>12} {'slope':>10} {'e at k*':>10} converged")
    for i, a in enumerate(pb.alpha):
        print(f"{a:10.3g} {pb.kappa_star[i]:12.8f} {pb.width[i]:12.6g} {pb.slope[i]:10.4g} "
              f"{pb.error_at_star[i]:10.4g} {bool(pb.converged[i])}")
    if fit is not None:
        print(f"width ~ alpha^-b with b = {fit}")
    return 0
