"""``lowrank-icl transformer``: train a linear, softmax or MLP transformer on the forward model's
pretraining prompts (JAX, Adam) and print its TM/IDG/ODG test errors beside the linear theory.

JSON contract (--json): the result's ``to_dict()``: ``parameters``, ``version``, ``errors`` {"tm",
"idg", "odg"} (numbers for the linear attention, whose errors are exact; {"mean", "sem", "n"} over
fresh prompts otherwise, ``error_method`` says which); ``theory`` (asymptotic,
:func:`lowrank_icl.numerics.solve`); ``reduced`` (the ridge-trained reduced model on the same
prompts, exact); the training's ``converged``, ``residual``, ``reason``, ``message``, ``iterations``,
``loss``; ``train`` (settings and timings); ``by_alpha_test``.
Progress goes to stderr. Without jax/optax: one line on stderr and exit 2.
"""
from __future__ import annotations

from lowrank_icl.validation.cli._shared import fmt, parse_seeds, plus_minus, print_json, result_document


def configure(p):
    """Add the arguments of ``transformer`` to its parser."""
    p.description = ("Train a model with Adam on the prompts of --seed (L = round(alpha D), M = round(tau D^2), "
                     "M0 = round(kappa D), r = round(rho D)) and print TM/IDG/ODG test errors with the "
                     "asymptotic theory. Needs the [nn] extra (jax, optax).")
    p.add_argument("--model", choices=("linear", "softmax", "mlp"), required=True)
    p.add_argument("--dim", type=int, required=True, help="token dimension D")
    p.add_argument("--alpha", type=float, required=True, help="context length ratio L/D (> 0)")
    p.add_argument("--tau", type=float, required=True, help="pretraining prompts M/D^2 (> 0)")
    p.add_argument("--kappa", type=float, required=True, help="task diversity M0/D (> 0)")
    p.add_argument("--rho", type=float, default=1.0, help="task rank ratio r/D (0 < rho <= 1; default 1)")
    p.add_argument("--sigma", type=float, default=0.0, help="label-noise std (>= 0; default 0)")
    p.add_argument("--lam", type=float, default=0.0, help="ridge (linear model only; default 0)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps (default: per model)")
    p.add_argument("--seed", type=int, default=0, help="data and initialization seed (default 0)")
    p.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: per model)")
    p.add_argument("--attention-dim", type=int, default=None, help="softmax: attention dimension (default D+1)")
    p.add_argument("--width", type=int, default=None, help="mlp: hidden width (default D+1)")
    p.add_argument("--layers", type=int, default=2, help="mlp: number of blocks (default 2)")
    p.add_argument("--batch-size", type=int, default=None, help="softmax/mlp: minibatch (default full batch)")
    p.add_argument("--alpha-test", type=float, default=None, help="test context ratio (default: alpha)")
    p.add_argument("--sigma-test", type=float, default=None, help="test noise std (default: sigma)")
    p.add_argument("--test-prompts", type=int, default=2000, help="fresh prompts per protocol (default 2000)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_transformer)


def _cmd_transformer(args) -> int:
    from lowrank_icl.validation.forward.transformers import train_transformer
    from lowrank_icl.validation.forward.transformers.training import stderr_progress
    from lowrank_icl.numerics.utils import check_sizes
    (seed,) = parse_seeds(str(args.seed), "--seed")
    check_sizes(args.dim, alpha=args.alpha, alpha_test=args.alpha_test, tau=args.tau, kappa=args.kappa, rho=args.rho)
    res = train_transformer(
        model=args.model, dim=args.dim, alpha=args.alpha, tau=args.tau, kappa=args.kappa, rho=args.rho, sigma=args.sigma,
        lam=args.lam, steps=args.steps, seed=seed, learning_rate=args.learning_rate,
        attention_dim=args.attention_dim, width=args.width, n_layers=args.layers, batch_size=args.batch_size,
        alpha_tests=None if args.alpha_test is None else [args.alpha_test], sigma_test=args.sigma_test,
        n_test_prompts=args.test_prompts, progress=None if args.quiet else stderr_progress)
    out = result_document(res.to_dict())
    if args.json:
        print_json(out)
        return 0
    print(res)
    return 0
