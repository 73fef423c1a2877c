"""``lowrank-icl bayes``: test errors of the Bayes baselines dMMSE (finite pool prior) and GMMSE
(Gaussian population prior), by sampled test prompts.

Contract: with --json, the result's ``to_dict()``: {"parameters": {...}, "version": ...,
"errors": {"tm": {"mean", "sem", "n", "values"}, "idg": ..., "odg": ...}, "estimator", "sizes",
"seeds", "prompts", "converged", "residual", "reason", "message", "iterations", "seconds"}; a NaN
(the SE of a single seed) is written as null. ``--kappa inf`` is accepted with --estimator gmmse.
"""
from __future__ import annotations

import json

from lowrank_icl.validation.cli.simulate import parse_seeds


def _kappa(text: str):
    if text.strip().lower() in ("inf", "infinity"):
        return float("inf")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--kappa must be a positive number or 'inf' (got {text!r})") from None


def _cmd_bayes(args) -> int:
    from lowrank_icl.validation.forward.bayes import bayes_errors
    res = bayes_errors(dim=args.dim, alpha=args.alpha, kappa=_kappa(args.kappa), rho=args.rho, sigma=args.sigma,
                       estimator=args.estimator, seeds=parse_seeds(args.seeds), prompts=args.prompts,
                       alpha_test=args.alpha_test, sigma_test=args.sigma_test)
    out = res.to_dict()
    if args.json:
        print(json.dumps(out, allow_nan=False))
        return 0
    s = out["sizes"]
    print(f"{args.estimator}: D={s['D']} L={s['L']} M0={s['M0'] if s['M0'] is not None else 'inf'} r={s['r']}  "
          f"{len(out['seeds'])} seeds x {out['prompts']} prompts ({out['seconds']:.1f} s)")
    for k in ("tm", "idg", "odg"):
        sem = out["errors"][k]["sem"]
        print(f"  e_{k.upper():<4} = {out['errors'][k]['mean']:.6f} +- " + ("n/a (one seed)" if sem is None else f"{sem:.6f}"))
    return 0


def register(subparsers):
    """Add ``bayes`` to the lowrank-icl parser."""
    p = subparsers.add_parser(
        "bayes", help="Bayes baselines: dMMSE (pool prior) or GMMSE (Gaussian prior) test errors",
        description="Posterior-mean predictors of in-context regression, measured on sampled test prompts "
                    "(TM: a pool task, IDG: a fresh task of the subspace, ODG: an isotropic task). "
                    "L = round(alpha D), M0 = round(kappa D), r = round(rho D); mean +- SE over seeds.")
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
