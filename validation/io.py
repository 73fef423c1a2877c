"""File and JSON output shared by every writer in the package (figures, CSV, JSON, npz caches).

A file is written to a temporary sibling and renamed into place, so an interrupted run never
leaves a half-written figure or cache entry behind. The rename would replace whatever the path
names, so a path that exists and is not a regular file (a device such as /dev/null, a symlink, a
FIFO, a socket, a folder) is refused with a ValueError before anything is written.

Every JSON document the package prints or writes follows one rule set (:func:`json_ready`,
:func:`json_document`, :func:`dumps_json`): its inputs under ``"parameters"``, the package
``"version"``, numbers as full-precision JSON numbers (``repr`` round-trips every float64), NaN as
``null`` and an infinite value as the string ``"inf"`` / ``"-inf"`` -- never the bare ``NaN`` or
``Infinity`` that strict JSON parsers reject.
"""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from lowrank_icl.numerics.utils import json_document, json_ready  # noqa: F401  (re-exported)


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def check_replaceable(path: str | os.PathLike, option: str | None = None) -> Path:
    """Return ``path`` if it is absent or a regular file; ValueError otherwise.

    The atomic writers rename a temporary file onto ``path``; on anything but a regular file that
    would replace the object itself (``/dev/null`` would become a plain file, a symlink would stop
    pointing at its target). ``option`` (e.g. ``"--out"``) prefixes the message.
    """
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if stat.S_ISREG(mode):
        return path
    kind = next((text for test, text in _KINDS if test(mode)), "not a regular file")
    name = f"{option} {path}" if option else str(path)
    raise ValueError(f"{name} is {kind}, not a regular file; refusing to replace it (give a new file name)")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then rename).

    Raises ValueError, before writing, if ``path`` exists and is not a regular file
    (:func:`check_replaceable`).
    """
    path = check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """JSON with full float precision (``repr`` round-trips every float64), NaN as null, inf as "inf"."""
    return atomic_write_text(path, dumps_json(obj, indent=1, sort_keys=True) + "\n")


def dumps_json(obj, indent: int | None = None, sort_keys: bool = False) -> str:
    """Strict JSON text of ``obj`` after :func:`json_ready` (never bare NaN or Infinity)."""
    return json.dumps(json_ready(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def atomic_write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_csv_cell(x) for x in row])
    return atomic_write_text(path, buf.getvalue())


def atomic_savez(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """``np.savez`` atomically; load back with ``np.load(path, allow_pickle=False)``."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savefig(fig, path: str | os.PathLike, **kwargs) -> Path:
    """Save a matplotlib figure atomically; the format follows the file suffix."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip("."), **kwargs)
    return atomic_write_bytes(path, buf.getvalue())


def _csv_cell(x):
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return x

