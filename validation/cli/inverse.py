"""``lowrank-icl inverse``: RE, TRE, LT and ORE on one inverse-ICL problem, scored on fresh contexts.

    lowrank-icl inverse --dim 100 --context 50 --rank 10 --sigma 0.1 --cond 1 --tasks 10000 \\
        --layers 4 --loss supervised --seeds 0,1,2,3,4 [--json]

Seeds use the syntax of every subcommand (``--seeds 0-4`` or ``1,3,7``; ``--seed 3`` for one). The
trained LT is reported under its loss's name (``LT-supervised``, ...). Before any work the memory
of the contexts is estimated and a run that cannot fit is refused.

mse = ||w_hat - w||^2 / d on --test fresh contexts per training seed; the mean over seeds and its
standard error across seeds (sem; for one seed, the test-context SE) and the mean test-context SE
(sem_test). LT is the one trained with --loss ('all' trains the three), to convergence (relative
loss decrease < --rtol over 10 L-BFGS iterations; --maxiter is a safety stop that reports
converged=false). ore_theory / lt1_theory are the theory risks per coordinate (null where they do
not apply: lt1_theory only for --layers 1 --loss supervised). The JSON also
records the inputs under ``parameters`` and the package ``version``.
"""
from __future__ import annotations

import sys

from lowrank_icl.validation.cli._shared import check_budget, plus_minus, print_json, result_document, seeds_option


def configure(p):
    """Add the arguments of ``inverse`` to its parser."""
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
    p.add_argument("--rtol", type=float, default=1e-6,
                   help="LT convergence: relative loss decrease over 10 L-BFGS iterations (default 1e-6)")
    p.add_argument("--maxiter", type=int, default=20000, help="safety stop of L-BFGS (default 20000)")
    p.add_argument("--seeds", default=None, help="training seeds, e.g. 0-4 or 1,3,7 (default 0)")
    p.add_argument("--seed", default=None, help="one training seed (same as --seeds SEED)")
    p.add_argument("--model-seed", type=int, default=0, help="seed of the bases Q and U (default 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per LT training (default 1; the trained weights do not depend on it)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import warnings

    from lowrank_icl.numerics.inverse import InverseParams, InverseRegimeWarning, LT_LOSSES
    from lowrank_icl.numerics.utils import check_int, check_real
    from lowrank_icl.validation.inverse.experiments import LTSettings, compare_estimators

    check_int("test", args.test, lower=2)
    check_int("layers", args.layers, lower=1)
    check_int("maxiter", args.maxiter, lower=1)
    check_real("rtol", args.rtol, lower=0.0)
    check_int("threads", args.threads, lower=1, upper=64)
    seeds = tuple(seeds_option(args, default="0"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InverseRegimeWarning)
        params = InverseParams(d=args.dim, N=args.context, r=args.rank, sigma=args.sigma, cond=args.cond,
                               n_s=args.tasks)
    for w in caught:
        print(f"lowrank-icl inverse: warning: {w.message}", file=sys.stderr)
    losses = LT_LOSSES if args.loss == "all" else (args.loss,)
    _check_memory(params, args.test)
    res = compare_estimators(params, K=args.layers, losses=losses, n_test=args.test, seeds=seeds,
                             model_seed=args.model_seed, lt=LTSettings(rtol=args.rtol, maxiter=args.maxiter, workers=args.threads),
                             progress=None if args.json else (lambda m: print(m, file=sys.stderr)))
    out = res.to_json()
    if not (args.layers == 1 and "supervised" in losses):
        out["lt1_theory"] = None
    if args.json:
        model = out.pop("parameters", {})
        print_json(result_document(out, {"dim": args.dim, "context": args.context, "rank": args.rank,
                                         "sigma": args.sigma, "cond": args.cond, "tasks": args.tasks,
                                         "layers": args.layers, "loss": args.loss, "test": args.test,
                                         "rtol": args.rtol, "maxiter": args.maxiter, "seeds": list(seeds),
                                         "model_seed": args.model_seed, "Lambda": model.get("Lambda"),
                                         "w0_norm": model.get("w0_norm")}))
        return 0
    print(f"inverse ICL  d={params.d} N={params.N} r={params.r} sigma={params.sigma:g} cond={params.cond:g} "
          f"n_s={params.n_s} K={args.layers} seeds={','.join(map(str, seeds))}")
    print(f"{'estimator':>16}  {'mse':>11}  {'sem':>9}  {'sem_test':>9}  {'train s':>8}  {'iters':>5}  converged")
    for name, s in res.scores.items():
        print(f"{name:>16}  {s.mean:11.4e}  {s.sem:9.2e}  {s.sem_test:9.2e}  {s.train_seconds:8.2f}  "
              f"{s.iterations:5d}  {s.converged}")
    print(f"ore_theory = {out['ore_theory']}   lt1_theory = {out['lt1_theory']}   "
          f"rank_recovered = {out['rank_recovered']}   seconds = {out['seconds']:.1f}")
    c = out["ore_conditional_risk"]
    print(f"ORE exact risk given the test designs, mean tr(Sigma_post)/d = {plus_minus(c['mean'], c['sem'], '.4e')}")
    return 0


def _check_memory(params, n_test: int) -> None:
    """The training and test contexts (x and y, float64) plus as much again for the LT kernel's
    float32 copy and its per-layer work arrays. (The time is not bounded up front: L-BFGS stops on
    its convergence rule, and progress goes to stderr.)"""
    data = 8.0 * (params.n_s + n_test) * params.N * (params.d + 1)
    check_budget("the run", 2 * data, 0.0, "use fewer --tasks or --test, a shorter --context or a "
                 "smaller --dim")
