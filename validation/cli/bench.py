"""``lowrank-icl bench``: speed of one trained Gamma against the dense direct solve, and time and
memory at larger D (each size in a fresh process). ``--dims`` and ``--ratio-dim`` choose the
sizes; ``--quick`` is a seconds-long smoke run of every section. With --json, one JSON object with
``parameters``, ``version``, ``speed_ratio`` and ``sizes``."""
from __future__ import annotations

from lowrank_icl.validation.cli._shared import positive_int, print_json


def _dims(text: str) -> list[int]:
    try:
        dims = [positive_int(t) for t in text.split(",")]
    except Exception:
        raise ValueError(f"--dims must be comma-separated integers >= 1, e.g. 128,256 (got {text!r})") from None
    return dims


def configure(bench):
    """Add the arguments of ``bench`` to its parser."""
    bench.description = ("D=64, tau=2: automatic solver vs dense direct primal in the same run (ratio); "
                         "then D=128, 256 (512 with --large) in fresh processes: seconds and peak memory.")
    bench.add_argument("--large", action="store_true", help="also D = 512")
    bench.add_argument("--dims", default=None, help="sizes of the time/memory table (default 128,256)")
    bench.add_argument("--ratio-dim", type=positive_int, default=64,
                       help="D of the auto-vs-dense speed ratio (default 64)")
    bench.add_argument("--quick", action="store_true",
                       help="a seconds-long smoke run: D = 8 for the training sections, a 10 x 10 forward grid and small "
                            "spectrum sections; every line names the sizes it ran")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--inverse", action="store_true",
                       help="inverse ICL instead: the LT training kernel, reference vs fast, per evaluation and to "
                            "convergence (d=100, N=50, K=4)")
    bench.add_argument("--inverse-tasks", type=positive_int, default=10000, help="n_s for --inverse (default 10000)")
    bench.add_argument("--inverse-loss", default="supervised", choices=("supervised", "unsupervised", "heldout"),
                       help="LT loss for --inverse (default supervised)")
    bench.add_argument("--no-converge", action="store_true", help="--inverse: per-evaluation times only")
    bench.add_argument("--inverse-threads", type=positive_int, default=2,
                       help="--inverse: threads of the default trainer (default 2; the baseline trainer uses 1)")
    bench.set_defaults(func=_cmd_bench)


def _cmd_bench(args) -> int:
    if args.inverse:
        from lowrank_icl.validation.bench import run_inverse_bench
        report = run_inverse_bench(n_s=args.inverse_tasks, loss=args.inverse_loss, converge=not args.no_converge,
                                   threads=args.inverse_threads, as_json=args.json)
        if args.json:
            print_json(report)
        return 0
    from lowrank_icl.validation.bench import run_bench
    dims = _dims(args.dims) if args.dims is not None else [128, 256]
    if args.large:
        dims.append(512)
    from lowrank_icl.validation.bench import QUICK_SPECTRUM_SIZES
    ratio_dim = args.ratio_dim
    spectrum_sizes = None
    if args.quick:
        dims = dims if args.dims is not None else [8]
        ratio_dim, spectrum_sizes = 8, QUICK_SPECTRUM_SIZES
    report = run_bench(dims=dims, ratio_dim=ratio_dim, as_json=args.json, spectrum_sizes=spectrum_sizes)
    if args.json:
        print_json(report)
    return 0
