"""Registry and driver of every figure ``lowrank-icl figures`` regenerates.

A figure module decorates a builder with :func:`figure`; the builder receives the output
folder, the ``quick`` flag and a progress callback, writes its PNG/PDF/CSV through
:func:`save_figure` and returns a :class:`FigureOutput` whose table is printed.
"""
from __future__ import annotations

import importlib
import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from lowrank_icl.validation.io import atomic_savefig, atomic_write_csv

# Modules holding figure builders, in the order the figures are regenerated.
FIGURE_MODULES = (
    "lowrank_icl.validation.figures.forward",
    "lowrank_icl.validation.figures.attention",
    "lowrank_icl.validation.figures.phase",
    "lowrank_icl.validation.figures.inverse",
    "lowrank_icl.validation.figures.bayes",
)


@dataclass
class FigureOutput:
    """What a figure builder produced: its files and the numbers behind it."""

    name: str
    files: list[Path] = field(default_factory=list)
    header: Sequence[str] = ()
    rows: list[Sequence] = field(default_factory=list)
    caption: str = ""

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


_REGISTRY: dict[str, FigureSpec] = {}


def figure(name: str, description: str):
    """Decorator registering ``build(out_dir: Path, quick: bool, progress) -> FigureOutput``."""
    def wrap(build):
        _REGISTRY[name] = FigureSpec(name, build, description)
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
                stream=sys.stdout, scale: str | None = None) -> list[FigureOutput]:
    """Regenerate the selected figures (all by default), printing progress and each table.

    ``scale`` is passed to the builders that take a ``scale`` argument (the inverse-ICL figures).
    """
    import matplotlib
    matplotlib.use("Agg")
    registry = all_figures()
    names = list(registry) if not only else list(only)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; choose from {sorted(registry)}")
    outputs = []
    for i, name in enumerate(names, 1):
        spec = registry[name]
        start = time.perf_counter()
        print(f"[{i}/{len(names)}] {name}: {spec.description}", file=stream, flush=True)

        def progress(msg: str, _name=name):
            print(f"    {_name}: {msg}", file=stream, flush=True)

        extra = {"scale": scale} if scale is not None and "scale" in inspect.signature(spec.build).parameters else {}
        out = spec.build(Path(out_dir), quick, progress, **extra)
        outputs.append(out)
        print(f"    wrote {', '.join(str(f) for f in out.files)} ({time.perf_counter() - start:.1f} s)",
              file=stream, flush=True)
        if out.header:
            print(out.table(), file=stream, flush=True)
        print(file=stream, flush=True)
    return outputs


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)
