"""Sphinx configuration: the docs pages (Markdown, through myst-parser) and the API reference
generated from the docstrings (autodoc + autosummary, numpydoc style).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (``pip install -e ".[docs]"``).
"""
from lowrank_icl import __version__

project = "lowrank-icl"
author = "lowrank-icl authors"
copyright = "lowrank-icl authors"
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = ["_templates"]

autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"            # the numpydoc Parameters section carries the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False   # one page per public name; methods documented in the class text
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
suppress_warnings = ["myst.header"]   # the pages start at '#', and some use '###' under '#'

html_theme = "alabaster"
html_title = f"lowrank-icl {__version__}"
