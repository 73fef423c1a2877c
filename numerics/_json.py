"""The package's one JSON rule: how every result and every command output becomes strict JSON.

* numpy values become Python ones, arrays become lists;
* NaN becomes ``null`` and +-inf the strings ``"inf"`` / ``"-inf"`` (strict JSON has neither);
* an mpmath number becomes its decimal string with ``precision`` significant digits (all of its
  working precision when ``precision`` is None), since a JSON number would round it to float64;
* a document is ``{"parameters": inputs, "version": package version, **result}``.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping


def json_ready(obj, precision: int | None = None):
    """``obj`` made JSON-ready by the rule above (recursive over mappings, sequences and arrays)."""
    import numpy as np

    if isinstance(obj, Mapping):
        return {str(k): json_ready(v, precision) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, range)):
        return [json_ready(v, precision) for v in obj]
    if isinstance(obj, np.ndarray):   # tolist() gives a list, or a scalar for a 0-d array
        return json_ready(obj.tolist(), precision)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if type(obj).__module__.startswith("mpmath"):
        import mpmath
        if mpmath.isnan(obj):
            return None
        if mpmath.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return mpmath.nstr(obj, precision) if precision else str(obj)
    if hasattr(obj, "to_dict"):
        return json_ready(obj.to_dict(), precision)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def package_version() -> str:
    """The installed version of lowrank-icl (``lowrank_icl.__version__``)."""
    from lowrank_icl._version import __version__
    return __version__


def json_document(parameters: Mapping, result: Mapping, precision: int | None = None) -> dict:
    """The package's JSON layout: ``{"parameters": inputs, "version": ..., **result}`` (JSON-ready)."""
    reserved = {"parameters", "version"} & set(result)
    if reserved:
        raise ValueError(f"result keys {sorted(reserved)} are reserved for the JSON layout")
    return json_ready({"parameters": dict(parameters), "version": package_version(), **result}, precision)
