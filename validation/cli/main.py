"""The ``lowrank-icl`` command line: solve, simulate, figures, phase, inverse, bench.

Every subcommand module exposes ``register(subparsers)``; a ValueError from the library
becomes a one-line message on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# Modules that add subcommands, each through register(subparsers).
COMMAND_MODULES = (
    "lowrank_icl.validation.cli.solve",
    "lowrank_icl.validation.cli.simulate",
    "lowrank_icl.validation.cli.phase",
    "lowrank_icl.validation.cli.inverse",
    "lowrank_icl.validation.cli.bayes",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lowrank-icl",
        description="Analytic theory and Monte Carlo of in-context learning by linear attention.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    fig = sub.add_parser("figures", help="regenerate every figure (PNG, PDF, CSV) and print the tables")
    fig.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default: ./figures)")
    fig.add_argument("--quick", action="store_true", help="small sizes: a few minutes on 2 cores")
    fig.add_argument("--only", default=None, help="comma-separated figure names (default: all)")
    fig.add_argument("--scale", choices=("quick", "medium", "paper"), default=None,
                     help="sizes of the inverse-ICL figures: quick, medium, or paper (d=100, N=50, n_s=1e4, K=4, "
                          "5 training seeds); default quick with --quick, else paper")
    fig.set_defaults(func=_cmd_figures)
    return parser


def _cmd_figures(args) -> int:
    from lowrank_icl.validation.figures.registry import run_figures
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    run_figures(args.out, quick=args.quick, only=only, scale=args.scale)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"lowrank-icl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
