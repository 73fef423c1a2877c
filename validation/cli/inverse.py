"""``lowrank-icl inverse``: RE, TRE, LT and ORE on one inverse-ICL problem, scored on fresh contexts.

    lowrank-icl inverse --dim 100 --context 50 --rank 10 --sigma 0.1 --cond 1 --tasks 10000 \\
        --layers 4 --loss supervised --seed 0 [--json]

mse = ||w_hat - w||^2 / d on --test fresh contexts (mean and standard error); LT is the one trained
with --loss ('all' trains the three); ore_theory / lt1_theory are the theory risks per coordinate
(null where they do not apply: lt1_theory only for --layers 1 --loss supervised). The JSON also
records the inputs under ``parameters`` and the package ``version``.
"""
from __future__ import annotations

import sys

from lowrank_icl.validation.cli._shared import print_json


def register(subparsers):
    """Add the ``inverse`` subcommand."""
    p = subparsers.add_parser("inverse", help="inverse ICL: RE, TRE, trained LT and ORE on fresh test contexts")
    p.add_argument("--dim", type=int, default=100, help="d, dimension of x and w (default 100)")
    p.add_argument("--context", type=int, default=50, help="N, context length (default 50)")
    p.add_argument("--rank", type=int, default=10, help="r, rank of the task covariance (default 10)")
    p.add_argument("--sigma", type=float, default=0.1, help="label-noise standard deviation (default 0.1)")
    p.add_argument("--cond", type=float, default=1.0, help="condition number of Sigma_x (default 1)")
    p.add_argument("--tasks", type=int, default=10000, help="n_s, training contexts (default 10000)")
    p.add_argument("--layers", type=int, default=4, help="K, LT layers (default 4)")
    p.add_argument("--loss", default="supervised", choices=("supervised", "unsupervised", "heldout", "all"),
                   help="LT training loss (default supervised)")
    p.add_argument("--test", type=int, default=2000, help="fresh test contexts (default 2000)")
    p.add_argument("--maxiter", type=int, default=250, help="L-BFGS iterations for the LT (default 250)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bases, training and test draws")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import warnings

    from lowrank_icl.numerics import LT_LOSSES, InverseParams, InverseRegimeWarning, check_int
    from lowrank_icl.validation.inverse.experiments import compare_estimators

    check_int("test", args.test, lower=2)
    check_int("layers", args.layers, lower=1)
    check_int("maxiter", args.maxiter, lower=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InverseRegimeWarning)
        params = InverseParams(d=args.dim, N=args.context, r=args.rank, sigma=args.sigma, cond=args.cond,
                               n_s=args.tasks)
    for w in caught:
        print(f"lowrank-icl inverse: warning: {w.message}", file=sys.stderr)
    losses = LT_LOSSES if args.loss == "all" else (args.loss,)
    res = compare_estimators(params, K=args.layers, losses=losses, n_test=args.test, seed=args.seed,
                             maxiter=args.maxiter,
                             progress=None if args.json else (lambda m: print(m, file=sys.stderr)))
    out = res.to_json()
    if args.loss != "all":
        out["mse"]["LT"] = out["mse"][f"LT-{args.loss}"]
        out["train"]["LT"] = out["train"][f"LT-{args.loss}"]
    if not (args.layers == 1 and "supervised" in losses):
        out["lt1_theory"] = None
    if args.json:
        from lowrank_icl.validation.io import json_document
        out.pop("parameters", None)
        out.pop("version", None)
        print_json(json_document({"dim": args.dim, "context": args.context, "rank": args.rank, "sigma": args.sigma,
                                  "cond": args.cond, "tasks": args.tasks, "layers": args.layers, "loss": args.loss,
                                  "test": args.test, "maxiter": args.maxiter, "seed": args.seed}, out))
        return 0
    print(f"inverse ICL  d={params.d} N={params.N} r={params.r} sigma={params.sigma:g} cond={params.cond:g} "
          f"n_s={params.n_s} K={args.layers} seed={args.seed}")
    print(f"{'estimator':>16}  {'mse':>11}  {'sem':>9}  {'train s':>8}  {'iters':>5}")
    for name, s in res.scores.items():
        print(f"{name:>16}  {s.mean:11.4e}  {s.sem:9.2e}  {s.train_seconds:8.2f}  {s.iterations:5d}")
    print(f"ore_theory = {out['ore_theory']}   lt1_theory = {out['lt1_theory']}   "
          f"rank_recovered = {out['rank_recovered']}   seconds = {out['seconds']:.1f}")
    c = out["ore_conditional_risk"]
    print(f"ORE exact risk given the test designs, mean tr(Sigma_post)/d = {c['mean']:.4e} +- {c['sem']:.1e}")
    return 0
