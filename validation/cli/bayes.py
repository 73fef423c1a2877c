"""``lowrank-icl bayes``: test errors of the Bayes baselines dMMSE (finite pool prior) and GMMSE
(Gaussian population prior), by sampled test prompts.

With --json, the package layout: ``parameters``, ``version``, ``errors`` {"tm", "idg", "odg"} (each
{"mean", "sem", "values"}), then ``sizes``, ``seeds``, ``prompts``, ``seconds``; a NaN (the SE of
a single seed) is written as null. ``--kappa inf`` is accepted with --estimator gmmse. Before any
work the memory and compute of dMMSE (a posterior over the M0 pool tasks for every test prompt)
are estimated, and a run beyond the limits is refused.
"""
from __future__ import annotations

import math

from lowrank_icl.validation.cli._shared import check_budget, parse_seeds, plus_minus, print_json, result_document

PROTOCOL_COUNT = 3   # TM, IDG, ODG test prompts per seed


def _kappa(text: str):
    if text.strip().lower() in ("inf", "infinity"):
        return float("inf")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--kappa must be a positive number or 'inf' (got {text!r})") from None


def _check_budget(args, kappa: float, n_seeds: int) -> None:
    """dMMSE: the pool (M0 x D float64) plus the 32 MB chunk of residuals; per test prompt the
    residuals y - X W^T of every pool task, 2 L M0 D flops (GMMSE is a D x D solve per prompt)."""
    if args.estimator != "dmmse" or not math.isfinite(kappa) or kappa <= 0 or args.dim < 1 or args.alpha <= 0:
        return                                  # the library names any invalid value
    m0 = max(1.0, math.floor(kappa * args.dim + 0.5))
    context = max(1.0, math.floor(args.alpha * args.dim + 0.5))
    memory = 8.0 * m0 * args.dim + 2**25
    flops = 2.0 * n_seeds * PROTOCOL_COUNT * args.prompts * context * m0 * args.dim
    check_budget("the run", memory, flops, "use a smaller --kappa, --dim or --alpha, or fewer --prompts or --seeds")


def _cmd_bayes(args) -> int:
    from lowrank_icl.validation.forward.bayes import bayes_errors
    kappa = _kappa(args.kappa)
    seeds = parse_seeds(args.seeds)
    from lowrank_icl.numerics.utils import check_sizes
    check_sizes(args.dim, alpha=args.alpha, alpha_test=args.alpha_test, kappa=kappa, rho=args.rho)
    _check_budget(args, kappa, len(seeds))
    res = bayes_errors(dim=args.dim, alpha=args.alpha, kappa=kappa, rho=args.rho, sigma=args.sigma,
                       estimator=args.estimator, seeds=seeds, prompts=args.prompts,
                       alpha_test=args.alpha_test, sigma_test=args.sigma_test)
    out = result_document(res.to_dict(), getattr(res, "parameters", None))
    if args.json:
        print_json(out)
        return 0
    s = out["sizes"]
    print(f"{args.estimator}: D={s['D']} L={s['L']} M0={s['M0'] if s['M0'] is not None else 'inf'} r={s['r']}  "
          f"{len(seeds)} seeds x {args.prompts} prompts ({out['seconds']:.1f} s)")
    for k in ("tm", "idg", "odg"):
        e = out["errors"][k]
        print(f"  e_{k.upper():<4} = {plus_minus(e['mean'], e['sem'])}")
    return 0


def configure(p):
    """Add the arguments of ``bayes`` to its parser."""
    p.description = ("Posterior-mean predictors of in-context regression, measured on sampled test prompts "
                     "(TM: a pool task, IDG: a fresh task of the subspace, ODG: an isotropic task). "
                     "L = round(alpha D), M0 = round(kappa D), r = round(rho D); mean ± SE over seeds.")
    p.add_argument("--estimator", required=True, choices=("dmmse", "gmmse"))
    p.add_argument("--dim", type=int, required=True, help="token dimension D")
    p.add_argument("--alpha", type=float, required=True, help="context ratio L/D")
    p.add_argument("--kappa", required=True, help="task diversity M0/D, or inf (gmmse only)")
    p.add_argument("--rho", type=float, default=1.0, help="task rank ratio r/D (default 1)")
    p.add_argument("--sigma", type=float, default=0.0, help="label noise std (default 0)")
    p.add_argument("--alpha-test", type=float, default=None, help="test context ratio (default: alpha)")
    p.add_argument("--sigma-test", type=float, default=None, help="test label noise std (default: sigma)")
    p.add_argument("--seeds", default="0-7", help="seeds, e.g. 0-7 or 1,3,7 (default 0-7)")
    p.add_argument("--prompts", type=int, default=1000, help="test prompts per protocol and seed (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_bayes)
