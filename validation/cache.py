r"""Content-addressed result cache shared by the simulator, the figures and the sweeps.

An entry is keyed on the *whole job* that produced it and on the code that computes it:

    key = sha256( canonical JSON of {namespace, job, code fingerprint} )

where the code fingerprint is the package version plus a sha256 of the source files of the
modules that compute the value (:func:`code_fingerprint`). Changing any parameter, seed or line of
the computing code therefore changes the key; nothing is bumped by hand.

Entries live in the user cache directory (:func:`default_cache_dir`), never inside a figure
output folder: the folder set by :func:`cache_settings` (the CLI's ``--cache-dir``), else
``$LOWRANK_ICL_CACHE_DIR`` if set, else the platform's user cache folder
(``$XDG_CACHE_HOME/lowrank-icl`` or ``~/.cache/lowrank-icl`` on Linux,
``~/Library/Caches/lowrank-icl`` on macOS, ``%LOCALAPPDATA%\lowrank-icl\Cache`` on Windows).
``cache_settings(enabled=False)`` (the CLI's ``--no-cache``) turns every :class:`Cache` that was
not given an explicit folder into a pass-through that neither reads nor writes.

An entry is a JSON document ``<key>.json`` and, optionally, arrays in ``<key>.npz``; the npz is
written first and the JSON last, both atomically, so a JSON file marks a complete entry. A
corrupt or partial entry is discarded with a note on stderr and recomputed by the caller.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from lowrank_icl.validation.io import atomic_savez, atomic_write_text
from lowrank_icl.numerics.utils import package_version  # noqa: F401  (the one version getter, re-exported)

ENV_VAR = "LOWRANK_ICL_CACHE_DIR"
_APP = "lowrank-icl"


# set by cache_settings() for the duration of a command (the CLI's --cache-dir / --no-cache)
_SETTINGS = {"directory": None, "enabled": True}


@contextmanager
def cache_settings(directory: str | os.PathLike | None = None, enabled: bool = True):
    """Within the block, caches without an explicit folder use ``directory`` (checked to be a
    usable folder; None keeps the default) and are switched off if ``enabled`` is False."""
    saved = dict(_SETTINGS)
    root = Path(directory).expanduser() if directory is not None else None
    if root is not None and enabled:
        _check_usable_directory(root)
    _SETTINGS.update(directory=root, enabled=bool(enabled))
    try:
        yield
    finally:
        _SETTINGS.update(saved)


def caching_enabled() -> bool:
    """False inside ``cache_settings(enabled=False)``."""
    return bool(_SETTINGS["enabled"])


def active_cache_dir() -> Path | None:
    """The folder caches use now (:func:`default_cache_dir`), or None when caching is switched off."""
    return default_cache_dir() if caching_enabled() else None


def default_cache_dir() -> Path:
    """The cache root: the :func:`cache_settings` folder, else ``$LOWRANK_ICL_CACHE_DIR``, else the
    platform's user cache folder."""
    if _SETTINGS["directory"] is not None:
        return _SETTINGS["directory"]
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / _APP
    if os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / _APP / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / _APP


@lru_cache(maxsize=None)
def code_fingerprint(*modules: str) -> str:
    """Package version plus a sha256 of the source files of ``modules`` (dotted names).

    A package name stands for every ``.py`` file below it, so ``code_fingerprint(
    "lowrank_icl.theory", "lowrank_icl.validation.forward")`` changes whenever any file of the
    forward simulator or of the theory changes.
    """
    if not modules:
        raise ValueError("code_fingerprint needs at least one module name")
    digest = hashlib.sha256(package_version().encode())
    for name in sorted(set(modules)):
        for path in _source_files(name):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _source_files(module_name: str) -> list[Path]:
    module = importlib.import_module(module_name)
    paths = getattr(module, "__path__", None)
    if paths:  # a package: every source file below it, in a stable order
        return sorted((p for root in paths for p in Path(root).rglob("*.py")), key=lambda p: p.as_posix())
    return [Path(module.__file__)]


def canonical_json(obj: Any) -> str:
    """Deterministic JSON of a job: sorted keys, floats by repr, numpy values as Python ones."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(obj):
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, range)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)  # "inf" / "nan": a valid JSON string, distinct from any number
    return obj


class CorruptEntry(Exception):
    """A cache entry that exists but cannot be read back."""


class Cache:
    """A folder of content-addressed entries for one kind of job (``namespace``).

    ``Cache(namespace, code=("lowrank_icl.validation.forward",))`` keys entries on the job and
    on the fingerprint of those modules. ``get_or_compute(job, compute)`` returns the stored
    value or computes, stores and returns it. ``directory=None`` uses :func:`default_cache_dir`
    and follows :func:`cache_settings` (``enabled`` is then False under ``--no-cache``).
    """

    def __init__(self, namespace: str, code: Iterable[str], directory: str | os.PathLike | None = None,
                 stream=None):
        if not namespace or not namespace.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"cache namespace must be a non-empty word (got {namespace!r})")
        self.namespace = namespace
        self.code = tuple(code)
        self.enabled = directory is not None or caching_enabled()
        self.root = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.directory = self.root / namespace
        self.stream = stream if stream is not None else sys.stderr
        if self.enabled:
            _check_usable_directory(self.root)

    @property
    def fingerprint(self) -> str:
        return code_fingerprint(*self.code)

    def key(self, job: Mapping) -> str:
        """sha256 of the job, the namespace and the code fingerprint."""
        text = canonical_json({"namespace": self.namespace, "job": job, "code": self.fingerprint})
        return hashlib.sha256(text.encode()).hexdigest()

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}.json", self.directory / f"{key}.npz"

    def load(self, job: Mapping, validate: Callable[[Any], Any] | None = None) -> tuple[dict, dict] | None:
        """(value, arrays) of a complete entry, or None. A corrupt entry is removed, with a note.

        ``validate(value)`` (optional) may raise ValueError, KeyError or TypeError to mark a stored
        value the caller cannot use; that entry is treated as corrupt too.
        """
        if not self.enabled:
            return None
        key = self.key(job)
        meta_path, arrays_path = self.paths(key)
        if not meta_path.exists():
            return None
        try:
            entry = json.loads(meta_path.read_text())
            if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
                raise CorruptEntry("malformed entry")
            arrays = {}
            if entry.get("arrays"):
                with np.load(arrays_path, allow_pickle=False) as data:
                    arrays = {name: data[name] for name in entry["arrays"]}
            if validate is not None:
                validate(entry["value"])
            return entry["value"], arrays
        except (OSError, ValueError, KeyError, TypeError, CorruptEntry, EOFError) as exc:
            print(f"lowrank-icl: discarding corrupt cache entry {meta_path} ({type(exc).__name__}: {exc}); "
                  "recomputing", file=self.stream, flush=True)
            for path in (meta_path, arrays_path):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
            return None

    def store(self, job: Mapping, value: Mapping, arrays: Mapping[str, np.ndarray] | None = None) -> Path:
        """Write an entry: arrays first, the JSON (which marks completeness) last, both atomic.

        Returns the JSON path (None when the cache is switched off)."""
        if not self.enabled:
            return None
        key = self.key(job)
        meta_path, arrays_path = self.paths(key)
        if arrays:
            atomic_savez(arrays_path, arrays)
        entry = {"key": key, "namespace": self.namespace, "code": self.fingerprint,
                 "version": package_version(), "job": _plain(job), "value": _plain(value),
                 "arrays": sorted(arrays) if arrays else []}
        return atomic_write_text(meta_path, json.dumps(entry, sort_keys=True, allow_nan=False) + "\n")

    def get_or_compute(self, job: Mapping, compute: Callable[[], Any], validate: Callable[[Any], Any] | None = None):
        """The cached value of ``job``, else ``compute()`` stored and returned.

        ``compute`` returns either a JSON-able mapping or a ``(mapping, arrays)`` pair; the
        return value has the same form. ``validate`` as in :meth:`load`.
        """
        hit = self.load(job, validate)
        if hit is not None:
            value, arrays = hit
            return (value, arrays) if arrays else value
        result = compute()
        value, arrays = result if isinstance(result, tuple) else (result, None)
        self.store(job, value, arrays)
        return result

    def __contains__(self, job: Mapping) -> bool:
        return self.enabled and self.paths(self.key(job))[0].exists()


def _check_usable_directory(root: Path) -> None:
    """Refuse, with the reason, a cache root that is a file or cannot be created / written."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"cache directory {root} exists and is not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cache directory {root} cannot be created ({exc.strerror})") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise ValueError(f"cache directory {root} is not writable")
