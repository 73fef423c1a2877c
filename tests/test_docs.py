"""Every ```python block in README.md and docs/*.md runs (blocks of one file share a namespace)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_doc_examples_run(path, tmp_path, monkeypatch):
    blocks = BLOCK.findall(path.read_text())
    if not blocks:
        pytest.skip(f"{path.name} has no python examples")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"doc_{path.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - re-raise with the block that failed
            raise AssertionError(f"{path.name} block {i} failed: {exc!r}\n{code}") from exc


# --- the generated API reference -------------------------------------------------------------------
def _public_objects():
    """(dotted name, object) of every public function and class: the front door and li.inverse."""
    import inspect

    import lowrank_icl as li
    out = []
    for namespace, module in (("lowrank_icl", li), ("lowrank_icl.inverse", li.inverse)):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                out.append((f"{namespace}.{name}", obj))
    return out


def test_every_public_name_has_a_numpydoc_docstring():
    """Functions: Parameters and Returns sections. Classes: Parameters (what the constructor takes) or
    Attributes (the fields of a result). Warnings: a docstring."""
    import inspect

    from numpydoc.docscrape import NumpyDocString

    missing = []
    for name, obj in _public_objects():
        text = inspect.getdoc(obj) or ""
        doc = NumpyDocString(text)
        if inspect.isclass(obj) and issubclass(obj, Warning):
            ok = bool(text.strip())
        elif inspect.isclass(obj):
            ok = bool(doc["Parameters"] or doc["Attributes"])
        else:
            ok = bool(doc["Parameters"]) and bool(doc["Returns"])
        if not ok:
            missing.append(name)
    assert missing == []


def test_sphinx_site_builds_with_warnings_as_errors(tmp_path):
    """The docs pages (Markdown) and the reference generated from the docstrings of every public
    name build with no warning: ``python -m sphinx -W --keep-going -b html docs <out>``."""
    import subprocess
    import sys
    import time

    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                          str(ROOT / "docs"), str(tmp_path / "html")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    pages = {p.name for p in (tmp_path / "html" / "generated").glob("*.html")}
    for name, _ in _public_objects():
        assert f"{name}.html" in pages, name
    assert (tmp_path / "html" / "inverse.html").exists()        # the Markdown pages are in the site
    assert time.perf_counter() - start < 180, "the docs build is meant to take well under a minute"
