"""``lowrank-icl phase``: location and width of the kappa = rho crossover for each alpha.

With --json, the package layout: ``parameters`` (alpha, tau, rho, sigma, lam, protocol), ``version``,
then ``kappa_star``, ``width``, ``kappa_lo``, ``kappa_hi``, ``slope``, ``error_at_star``,
``converged``, ``residual``, ``reason`` (one entry per alpha) and ``width_exponent`` (when at least
3 alphas converged). A point without a certified crossover has converged false, null values and a
reason, also in the text output. Without --sigma or --lam the defaults of
:func:`lowrank_icl.numerics.phase_boundary` apply; the JSON records the values used.
"""
from __future__ import annotations

from lowrank_icl.validation.cli._shared import default_of, fmt, print_json, result_document


def _api_default(name: str):
    from lowrank_icl.numerics import phase_boundary
    return default_of(phase_boundary, name)


def configure(p):
    """Add the arguments of ``phase`` to its parser."""
    p.add_argument("--rho", type=float, required=True, help="task rank ratio r/D (0 < rho <= 1)")
    p.add_argument("--tau", type=float, required=True, help="pretraining prompts M/D^2 (> 1 at lam = 0)")
    p.add_argument("--sigma", type=float, default=None,
                   help="label-noise std (default: that of numerics.phase_boundary)")
    p.add_argument("--lam", type=float, default=None, help="ridge strength (default: that of numerics.phase_boundary)")
    p.add_argument("--alpha", required=True, help="comma-separated distinct context ratios, e.g. 1e2,1e4,1e6")
    p.add_argument("--protocol", choices=("idg", "odg", "tm"), default="idg", help="which error (default idg)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import numpy as np

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
    ok = np.asarray(pb.converged, bool)
    fit = fit_power_law(pb.alpha[ok], pb.width[ok]) if ok.sum() >= 3 else None
    extra = {} if fit is None else {"width_exponent": {"exponent": fit.exponent, "ci95": [fit.ci_low, fit.ci_high]}}
    if args.json:
        print_json(result_document(pb.to_dict(), **extra))
        return 0
    print(f"kappa = rho crossover of e_{args.protocol.upper()} (rho={args.rho}, tau={args.tau}, sigma={args.sigma}, lam={args.lam})")
    print(f"{'alpha':>10} {'kappa*':>12} {'width(ln k)':>12} {'slope':>10} {'e at k*':>10} converged")
    for i, a in enumerate(pb.alpha):
        print(f"{a:10.3g} {fmt(pb.kappa_star[i], '12.8f')} {fmt(pb.width[i], '12.6g')} {fmt(pb.slope[i], '10.4g')} "
              f"{fmt(pb.error_at_star[i], '10.4g')} {bool(pb.converged[i])}")
    for i, a in enumerate(pb.alpha):
        if not ok[i]:
            print(f"alpha = {a:g}: {pb.reason[i]}")
    if fit is not None:
        print(f"width ~ alpha^-b with b = {fit}" + ("" if ok.all() else " (converged points only)"))
    return 0
