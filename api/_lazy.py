"""Lazy public namespaces (PEP 562): a package lists its public names and where each lives; the
module that holds a name is imported the first time the name is read, so importing a package costs
only its ``__init__``.

Every package ``__init__`` of lowrank_icl calls :func:`attach` once; nothing else uses it.
"""
from __future__ import annotations

import importlib
import sys


def attach(package: str, exports: dict[str, str]):
    """Build the ``__getattr__``, ``__dir__`` and ``__all__`` of a lazy package.

    Parameters
    ----------
    package : str
        The package's dotted name (its ``__name__``).
    exports : dict of str to str
        Public name -> where it lives: ``"module"`` (the attribute of the same name in that module),
        ``"module:attribute"`` (a differently named attribute) or ``"module:"`` (the module itself,
        a namespace). Module names are absolute.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__, __all__)``: ``__getattr__`` imports the module holding a public name
        on its first read and caches the value in the package; ``__dir__`` and ``__all__`` list the
        public names, in the order given.
    """
    names = list(exports)

    def __getattr__(name: str):
        try:
            target = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module_name, colon, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        value = module if colon and not attribute else getattr(module, attribute or name)
        setattr(sys.modules[package], name, value)   # later reads skip __getattr__
        return value

    def __dir__():
        return list(names)

    return __getattr__, __dir__, names
