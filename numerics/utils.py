"""Utilities the other layers share with numerics: input checks, single-threaded BLAS blocks and
the package's JSON rule. Not part of the modelling API (``lowrank_icl.numerics.__all__``).

Each lives in one module of numerics and is re-exported here under its own name:
:func:`check_real`, :func:`check_int` (``ValueError`` naming the parameter and its range),
:func:`check_seeds` (the one seed rule), :func:`check_sizes` (integer sizes from the ratios),
:func:`single_threaded_blas`, :func:`json_ready`, :func:`json_document`, :func:`package_version`.
"""
from lowrank_icl.numerics._blas import single_threaded_blas
from lowrank_icl.numerics._checks import check_int, check_real, check_seeds, check_sizes
from lowrank_icl.numerics._json import json_document, json_ready, package_version

__all__ = ["check_real", "check_int", "check_seeds", "check_sizes", "single_threaded_blas", "json_ready",
           "json_document", "package_version"]
