"""lowrank-icl: analytic theory of in-context learning by linear attention.

``import lowrank_icl as li`` is the front door; heavy modules load on first use.
"""
from lowrank_icl._version import __version__

__all__ = ["__version__"]
