"""Registry and driver of every figure ``lowrank-icl figures`` regenerates.

A figure module decorates a builder with :func:`figure`; the builder receives the output
folder, the ``quick`` flag and a progress callback, writes its PNG/PDF/CSV through
:func:`save_figure` and returns a :class:`FigureOutput` whose table is printed.

:func:`run_figures` prints progress on one stream (stderr by default) and the tables and a closing
line on another (stdout), each line flushed whole, so the two never interleave within a line. The
closing line counts the theory-vs-simulation checks of every table: a column named ``pass...``
holding True/False, yes/no or pass/FAIL (empty cells are not checks). Builders find the cache
folder through :func:`lowrank_icl.validation.cache.active_cache_dir` (set here from ``cache_dir`` /
``use_cache``), never inside the output folder.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from lowrank_icl.validation.io import atomic_savefig, atomic_write_csv

# Modules holding figure builders, in the order the figures are regenerated.
FIGURE_MODULES = (
    "lowrank_icl.validation.figures.forward",
    "lowrank_icl.validation.figures.attention",
    "lowrank_icl.validation.figures.phase",
    "lowrank_icl.validation.figures.inverse",
    "lowrank_icl.validation.figures.bayes",
    "lowrank_icl.validation.figures.spectra",
    "lowrank_icl.validation.figures.transformers",
    "lowrank_icl.validation.figures.learning_curves",
)


@dataclass
class FigureOutput:
    """What a figure builder produced: its files and the numbers behind it."""

    name: str
    files: list[Path] = field(default_factory=list)
    header: Sequence[str] = ()
    rows: list[Sequence] = field(default_factory=list)
    caption: str = ""

    def checks(self) -> tuple[int, int]:
        """(passed, checked) over the table's ``pass...`` column (module docstring)."""
        columns = [i for i, h in enumerate(self.header) if str(h).lower().startswith("pass")]
        passed = checked = 0
        for row in self.rows:
            for i in columns:
                verdict = _verdict(row[i]) if i < len(row) else None
                if verdict is not None:
                    checked += 1
                    passed += verdict
        return passed, checked

    def table(self, max_rows: int = 40) -> str:
        """Plain-text table of the rows (numbers to 4 significant digits)."""
        if not self.header:
            return ""
        cells = [[_fmt(x) for x in row] for row in self.rows[:max_rows]]
        widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
                  for i, h in enumerate(self.header)]
        lines = ["  ".join(str(h).rjust(w) for h, w in zip(self.header, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
        if len(self.rows) > max_rows:
            lines.append(f"... {len(self.rows) - max_rows} more rows in the CSV")
        return "\n".join(lines)


@dataclass(frozen=True)
class FigureSpec:
    name: str
    build: Callable[..., FigureOutput]
    description: str
    extra: str | None = None            # the optional extra the builder needs (e.g. "nn")
    requires: tuple[str, ...] = ()      # the modules that extra provides

    def missing_modules(self) -> list[str]:
        """The modules of ``requires`` that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


_REGISTRY: dict[str, FigureSpec] = {}


def figure(name: str, description: str, *, extra: str | None = None, requires: Sequence[str] = ()):
    """Decorator registering ``build(out_dir: Path, quick: bool, progress) -> FigureOutput``.

    ``extra``/``requires``: a figure that needs an optional extra (its modules are not imported
    here); a run of all figures skips it, with a note, where those modules are not installed.
    """
    def wrap(build):
        _REGISTRY[name] = FigureSpec(name, build, description, extra, tuple(requires))
        return build
    return wrap


def all_figures() -> dict[str, FigureSpec]:
    """Import every figure module and return the registry in regeneration order."""
    for module in FIGURE_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def save_figure(fig, out_dir: Path, name: str, header: Sequence[str], rows: Sequence[Sequence],
                formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``name.png``, ``name.pdf`` and ``name.csv`` (the numbers behind it) atomically."""
    out_dir = Path(out_dir)
    files = [atomic_savefig(fig, out_dir / f"{name}.{ext}", dpi=150, bbox_inches="tight")
             for ext in formats]
    files.append(atomic_write_csv(out_dir / f"{name}.csv", header, rows))
    return files


def run_figures(out_dir: Path, quick: bool, only: Sequence[str] | None = None,
                stream=None, *, progress_stream=None, quiet: bool = False,
                cache_dir: Path | None = None, use_cache: bool = True,
                scale: str | None = None) -> list[FigureOutput]:
    """Regenerate the selected figures (all when ``only`` is None), printing progress and each table.

    Tables and the closing line go to ``stream`` (stdout), progress to ``progress_stream``
    (stderr; nothing when ``quiet``). ``cache_dir`` (None: the default cache folder) and
    ``use_cache`` set where builders cache simulations (:func:`~lowrank_icl.validation.cache.cache_settings`).
    """
    from lowrank_icl.validation.cache import cache_settings
    stream = stream if stream is not None else sys.stdout
    progress_stream = progress_stream if progress_stream is not None else sys.stderr
    import matplotlib
    matplotlib.use("Agg")
    registry = all_figures()
    if only is not None and not list(only):
        raise ValueError(f"only must name at least one figure; choose from {sorted(registry)}")
    names = list(registry) if only is None else list(only)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {sorted(registry)}")
    unavailable = {n: registry[n] for n in names if registry[n].missing_modules()}
    if only is not None and unavailable:
        name, spec = next(iter(unavailable.items()))
        raise ValueError(f"figure {name} needs the [{spec.extra}] extra ({', '.join(spec.missing_modules())} "
                         f"not installed): pip install 'lowrank-icl[{spec.extra}]'")
    names = [n for n in names if n not in unavailable]

    def note(line: str) -> None:
        if not quiet:
            progress_stream.write(line + "\n")
            progress_stream.flush()

    for name, spec in unavailable.items():
        note(f"skipping {name}: needs the [{spec.extra}] extra (pip install 'lowrank-icl[{spec.extra}]')")
    outputs = []
    begin = time.perf_counter()
    with cache_settings(cache_dir, enabled=use_cache):
        for i, name in enumerate(names, 1):
            spec = registry[name]
            start = time.perf_counter()
            note(f"[{i}/{len(names)}] {name}: {spec.description}")

            def progress(msg: str, _name=name):
                note(f"    {_name}: {msg}")

            takes_scale = "scale" in inspect.signature(spec.build).parameters
            extra = {"scale": scale} if scale is not None and takes_scale else {}
            out = spec.build(Path(out_dir), quick, progress, **extra)
            outputs.append(out)
            note(f"    wrote {', '.join(str(f) for f in out.files)} ({time.perf_counter() - start:.1f} s)")
            text = f"== {name}\n" + (out.table() + "\n" if out.header else "")
            stream.write(text + "\n")
            stream.flush()
    stream.write(closing_line(outputs, time.perf_counter() - begin) + "\n")
    stream.flush()
    return outputs


def closing_line(outputs: Sequence[FigureOutput], seconds: float) -> str:
    """'figures: N written in T s; theory vs simulation: P/C points passed (...)' (or: no points to check)."""
    passed = checked = 0
    failed = []
    for out in outputs:
        p, c = out.checks()
        passed, checked = passed + p, checked + c
        if p < c:
            failed.append(f"{out.name} {c - p}")
    tail = f"; failed: {', '.join(failed)}" if failed else ""
    if checked == 0:   # e.g. the inverse figures: no point carries a pass/fail column
        return f"figures: {len(outputs)} written in {seconds:.0f} s; no theory-vs-simulation points to check"
    return (f"figures: {len(outputs)} written in {seconds:.0f} s; theory vs simulation: {passed}/{checked} "
            f"points passed{tail}")


def _verdict(cell) -> int | None:
    if isinstance(cell, (bool, np.bool_)):
        return int(bool(cell))
    text = str(cell).strip().lower()
    if text in ("yes", "pass", "passed", "true", "ok"):
        return 1
    if text in ("no", "fail", "failed", "false"):
        return 0
    return None


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)
