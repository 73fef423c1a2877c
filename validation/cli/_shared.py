"""Arguments and checks shared by several subcommands (model parameters, seeds, folders, JSON)."""
from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
from pathlib import Path


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {value})")
    return value


def add_forward_arguments(p, *, kappa_required: bool = True):
    """The model parameters shared by solve and simulate (same names and conventions)."""
    p.add_argument("--alpha", type=float, required=True, help="context length ratio L/D (> 0)")
    p.add_argument("--tau", type=float, required=True, help="pretraining prompts M/D^2 (> 0)")
    p.add_argument("--kappa", type=float, required=kappa_required,
                   help="task diversity M0/D (> 0; inf: a fresh task for every prompt)")
    p.add_argument("--rho", type=float, default=1.0, help="task rank ratio r/D (0 < rho <= 1; default 1)")
    p.add_argument("--sigma", type=float, default=0.0, help="label-noise std (>= 0; default 0)")
    p.add_argument("--lam", type=float, default=0.0, help="ridge strength, penalty lam M0 ||Gamma||^2 (>= 0)")
    p.add_argument("--alpha-test", type=float, default=None, help="test context ratio (default: alpha)")
    p.add_argument("--sigma-test", type=float, default=None, help="test noise std (default: sigma)")


def forward_parameters(args) -> dict:
    """The model parameters of parsed arguments, in the project's order."""
    return {k: getattr(args, k) for k in ("alpha", "tau", "kappa", "rho", "sigma", "lam")}


def add_cache_arguments(p):
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache folder (default: $LOWRANK_ICL_CACHE_DIR, else the user cache folder)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write cached results")


def add_quiet_argument(p):
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """"0-4" -> [0, 1, 2, 3, 4]; "1,3,7" -> [1, 3, 7]; "5" -> [5]; ranges and lists combine.

    The one seed rule of the package (:func:`lowrank_icl.numerics.utils.check_seeds`).
    """
    from lowrank_icl.numerics.utils import check_seeds
    return list(check_seeds(text, option))


def seeds_option(args, default: str) -> list[int]:
    """The seeds of ``--seeds`` or of ``--seed`` (never both), ``default`` when neither is given."""
    one, many = getattr(args, "seed", None), getattr(args, "seeds", None)
    if one is not None and many is not None:
        raise ValueError(f"give --seed or --seeds, not both (got --seed {one} and --seeds {many})")
    if one is not None:
        seeds = parse_seeds(one, "--seed")
        if len(seeds) != 1:
            raise ValueError(f"--seed takes one seed (got {one!r}); use --seeds for several")
        return seeds
    return parse_seeds(default if many is None else many)


def check_output_folder(path: Path, option: str = "--out") -> Path:
    """Create ``path`` if needed and check a file can be written in it; ValueError with the reason."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"{option} {path} is not a writable folder ({exc.strerror or exc})") from None
    return path


def check_cache_folder(path: Path | None) -> Path | None:
    """``--cache-dir``: None stays None (the default folder); else as :func:`check_output_folder`."""
    return None if path is None else check_output_folder(path, "--cache-dir")


def default_of(function, name: str):
    """The default of keyword ``name`` in ``function``'s signature (so CLI and API defaults agree)."""
    return inspect.signature(function).parameters[name].default


def print_json(document: dict, stream=None) -> None:
    """Every command's --json output: one document, indented by 2 (strict JSON)."""
    from lowrank_icl.validation.io import dumps_json
    print(dumps_json(document, indent=2), file=stream or sys.stdout, flush=True)


ERROR_KEYS = ("tm", "idg", "odg")


def result_document(result: dict, parameters: dict | None = None, *, precision: int | None = None,
                    **extra) -> dict:
    """A command's JSON document from a result's ``to_dict()``: the package layout
    (:func:`lowrank_icl.numerics.utils.json_document`), the command-only inputs added to
    ``"parameters"``, ``extra`` keys added, and the TM/IDG/ODG triple nested under ``"errors"``;
    ``precision``: the significant digits kept for mpmath numbers."""
    from lowrank_icl.numerics.utils import json_document
    out = dict(result)
    params = dict(out.pop("parameters", None) or {})
    out.pop("version", None)
    params.update(parameters or {})
    out.update(extra)
    if "errors" not in out and all(k in out for k in ERROR_KEYS):
        out = {"errors": {k: out.pop(k) for k in ERROR_KEYS}, **out}
    return json_document(params, out, precision)


def fmt(x, spec: str = ".6g") -> str:
    """A number for text output: ``nan`` for NaN and null (never ``None``), ``inf`` kept."""
    if x is None:
        return format("nan", ">" + spec.split(".")[0]) if spec[:1].isdigit() else "nan"
    try:
        return format(float(x), spec)
    except (TypeError, ValueError):
        return str(x)


def plus_minus(mean, sem, spec: str = ".6f") -> str:
    """``mean ± sem`` (the one text convention); ``± n/a`` when the SE is unknown (one seed)."""
    sem_text = "n/a" if sem is None or (isinstance(sem, float) and sem != sem) else fmt(sem, spec)
    return f"{fmt(mean, spec)} ± {sem_text}"


def stderr_progress(quiet: bool):
    """A progress callback writing whole lines to stderr (None when quiet)."""
    if quiet:
        return None

    def progress(line: str) -> None:
        sys.stderr.write(line.rstrip("\n") + "\n")
        sys.stderr.flush()
    return progress



def check_budget(what: str, memory_bytes: float, flops: float, advice: str) -> None:
    """Refuse, before any work, a run whose memory estimate exceeds the limit or whose compute
    estimate exceeds the simulation cap (the rules of ``simulate``:
    :mod:`lowrank_icl.validation.forward.resources`); ``advice`` names the options that shrink it.
    A run estimated at more than a minute prints its estimate on stderr first."""
    from lowrank_icl.validation.forward.resources import (FLOP_RATE, MAX_SECONDS, MEMORY_ENV_VAR, format_bytes,
                                                          format_seconds, memory_limit)
    limit = memory_limit()
    seconds = flops / FLOP_RATE
    if memory_bytes > limit:
        raise ValueError(f"{what} needs about {format_bytes(memory_bytes)} of memory, more than the limit "
                         f"{format_bytes(limit)} (${MEMORY_ENV_VAR}, default half the available memory); {advice}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{what} needs about {format_seconds(seconds)} of compute, more than the cap "
                         f"{format_seconds(MAX_SECONDS)}; {advice}")
    if seconds > 60:
        print(f"{what} needs about {format_seconds(seconds)} of compute and {format_bytes(memory_bytes)} of memory",
              file=sys.stderr, flush=True)
