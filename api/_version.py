"""The package version, read from the installed distribution's metadata.

Its one home is ``[project] version`` in pyproject.toml; the installed metadata carries it and
``lowrank_icl.__version__`` re-exports it. Importing this module loads nothing heavy.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lowrank-icl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
