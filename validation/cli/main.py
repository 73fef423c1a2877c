"""The ``lowrank-icl`` command line: solve, simulate, figures, phase, inverse, bench.

Each subcommand lives in its own module, imported only when that subcommand runs (``--help`` and
``--version`` import none of them), and exposes ``configure(parser)``, which adds its arguments
and its ``func``. Exit codes: 0 success; 2 a user error
(bad arguments, a ValueError from the library, an unusable file or folder, not enough memory),
reported as ONE line on stderr; 130 interrupted by Ctrl-C (one line); 1 an internal error (one line;
set ``LOWRANK_ICL_DEBUG=1`` for the traceback). The command never prints a traceback otherwise.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# subcommand -> one-line help; its module is lowrank_icl.validation.cli.<subcommand>
COMMANDS = {
    "solve": "solve the forward saddle point (order parameters, TM/IDG/ODG errors)",
    "simulate": "Monte Carlo of the trained reduced attention: exact TM/IDG/ODG errors",
    "figures": "regenerate every figure (PNG, PDF, CSV) and print the tables",
    "phase": "locate the kappa = rho transition (kappa*, width) for each alpha",
    "inverse": "inverse ICL: RE, TRE, trained LT and ORE on fresh test contexts",
    "bench": "speed of one trained Gamma vs the dense direct solve; time and memory up to D=256",
    "bayes": "Bayes baselines: dMMSE (pool prior) or GMMSE (Gaussian prior) test errors",
    "transformer": "train a linear / softmax / MLP transformer (JAX) and compare with the theory",
    "sweep": "theory and Monte Carlo over a parameter grid -> netCDF (resumable; local or Dask)",
}
PROG = "lowrank-icl"
DEBUG_ENV_VAR = "LOWRANK_ICL_DEBUG"


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors on one line (and exit code 2), pointing at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _version() -> str:
    from lowrank_icl._version import __version__   # the light version module (no numerics import)
    return __version__


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG} {_version()}")
        parser.exit()


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in ``argv`` (all of them when ``argv`` is None) gets its
    arguments, so that a run imports one subcommand module."""
    parser = OneLineParser(
        prog=PROG,
        description="Analytic theory and Monte Carlo of in-context learning by linear attention.")
    parser.add_argument("--version", action=_VersionAction, help="print the package version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = COMMANDS if argv is None else {_command_of(argv)}
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        if name in chosen:
            importlib.import_module(f"lowrank_icl.validation.cli.{name}").configure(p)
    return parser


def _command_of(argv) -> str | None:
    """The subcommand: the first argument that is not an option (the top level has no valued options)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe_os_error(exc: OSError) -> str:
    where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"{exc.strerror or exc}:{where}" if exc.strerror else str(exc)


def main(argv=None) -> int:
    command = PROG
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        command = f"{PROG} {args.command}"
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, with stdout pointed at /dev/null so
        # that the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ValueError as exc:
        print(f"{command}: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 2
    except OSError as exc:
        print(f"{command}: error: {_one_line(_describe_os_error(exc))}", file=sys.stderr, flush=True)
        return 2
    except MemoryError:
        print(f"{command}: error: out of memory; reduce the sizes (dim, tau) or the number of workers",
              file=sys.stderr, flush=True)
        return 2
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get(DEBUG_ENV_VAR):
            raise
        print(f"{command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              f"(set {DEBUG_ENV_VAR}=1 for the traceback)", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
