"""Packaging contract: the layers import under lowrank_icl, the front door and every lazy namespace list
exactly their public names, imports stay light, no module reads another's private names, and the layer
arrows point one way."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest


def test_layers_import_under_namespace():
    import lowrank_icl.numerics
    import lowrank_icl.theory
    import lowrank_icl.validation  # noqa: F401


def test_theory_imports_nothing_internal():
    code = ("import sys, lowrank_icl.theory as t, pkgutil, importlib\n"
            "for m in pkgutil.walk_packages(t.__path__, 'lowrank_icl.theory.'): importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.startswith(('lowrank_icl.numerics', 'lowrank_icl.validation'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_numerics_does_not_import_validation():
    code = ("import sys, lowrank_icl.numerics as n, pkgutil, importlib\n"
            "for m in pkgutil.walk_packages(n.__path__, 'lowrank_icl.numerics.'): importlib.import_module(m.name)\n"
            "bad = [m for m in sys.modules if m.startswith('lowrank_icl.validation')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_help_exits_zero():
    out = subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli.main", "--help"],
                         capture_output=True, text=True, check=True)
    assert "solve" in out.stdout


def test_forward_params_rejects_out_of_domain():
    from lowrank_icl.numerics import ForwardParams
    with pytest.raises(ValueError, match="rho must be > 0 and <= 1"):
        ForwardParams(alpha=1, tau=1, kappa=1, rho=1.5)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        ForwardParams(alpha=1, tau=1, kappa=1, sigma=-0.1)
    with pytest.raises(ValueError, match="alpha must be finite"):
        ForwardParams(alpha=float("nan"), tau=1, kappa=1)


def test_full_rank_conversion_round_trips():
    from lowrank_icl.numerics import ForwardParams
    p = ForwardParams.from_full_rank(alpha=10, tau=2.0, kappa=0.5, rho_lu=0.01, lam_lu=1e-5)
    assert p.rho == 1.0 and p.sigma == pytest.approx(0.1, rel=1e-15)
    assert p.lam == pytest.approx(1e-5 * 2.0 / 0.5, rel=1e-15)  # lam = lam_Lu tau / kappa
    back = p.to_full_rank()
    assert back["rho_lu"] == pytest.approx(0.01, rel=1e-14)
    assert back["lam_lu"] == pytest.approx(1e-5, rel=1e-14)


def test_version_is_one_value_on_every_layer_and_the_cli():
    import importlib.metadata
    import tomllib
    from pathlib import Path

    import lowrank_icl
    import lowrank_icl.numerics
    import lowrank_icl.validation

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    installed = importlib.metadata.version("lowrank-icl")
    assert installed == project["version"], "the installed metadata is stale: reinstall (pip install -e .)"
    assert lowrank_icl.__version__ == lowrank_icl.numerics.__version__ == installed
    assert lowrank_icl.validation.__version__ == installed
    out = subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli.main", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout == f"lowrank-icl {installed}\n"


def test_single_threaded_blas_nests_and_restores():
    """Nested blocks keep one BLAS thread until the outermost one exits, which restores the limits."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from lowrank_icl.numerics.utils import single_threaded_blas

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        with single_threaded_blas():
            with single_threaded_blas():
                assert blas_threads() == {1}
            assert blas_threads() == {1}
        assert blas_threads() == before


# --- the front door and the lazy layers ---------------------------------------------------------
PUBLIC_NAMESPACES = ["lowrank_icl", "lowrank_icl.inverse", "lowrank_icl.theory", "lowrank_icl.theory.forward",
                     "lowrank_icl.theory.inverse", "lowrank_icl.numerics", "lowrank_icl.numerics.forward",
                     "lowrank_icl.numerics.inverse", "lowrank_icl.validation", "lowrank_icl.validation.inverse"]


@pytest.mark.parametrize("name", PUBLIC_NAMESPACES)
def test_all_and_dir_list_exactly_the_public_names_and_each_resolves(name):
    import importlib
    module = importlib.import_module(name)
    assert sorted(dir(module)) == sorted(module.__all__)
    assert len(set(module.__all__)) == len(module.__all__)
    for public in module.__all__:
        assert getattr(module, public) is not None, public
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        getattr(module, "not_a_name")


def test_front_door_lists_the_public_api():
    import lowrank_icl as li
    import lowrank_icl.numerics.forward as forward
    import lowrank_icl.validation as validation
    assert set(forward.__all__) <= set(li.__all__)
    assert set(validation.__all__) - {"inverse"} <= set(li.__all__)
    for name in ("solve", "simulate", "TaskSpectrum", "ForwardParams", "phase_boundary", "sweep", "bayes_errors",
                 "dmmse_estimate", "gmmse_estimate", "train_transformer", "inverse", "__version__"):
        assert name in li.__all__, name
    assert li.solve is forward.solve and li.simulate is validation.simulate
    # the inverse science has its own namespace: no inverse name sits beside the forward ones
    assert {"ORE", "RE", "TRE", "LT", "ore_risk", "InverseParams", "compare_estimators"} <= set(li.inverse.__all__)
    assert not set(li.inverse.__all__) & set(li.__all__)


def test_numerics_lists_models_not_utilities():
    import lowrank_icl.numerics as n
    assert {"forward", "inverse", "solve", "ForwardSolution", "SpectrumSolution", "ForwardErrors"} <= set(n.__all__)
    assert not {"check_real", "check_int", "single_threaded_blas", "lt_loss_and_grad_reference",
                "ORE", "ore_risk"} & set(n.__all__)
    assert "lt_loss_and_grad_reference" not in n.inverse.__all__


def test_every_public_name_has_one_meaning():
    """A name exported by two of the namespaces users call (the front door, numerics, validation) is the
    same object in each. (theory's callables are the raw formulas that numerics wraps with input
    checks, some under the same name.)"""
    import importlib
    seen = {}
    for name in (n for n in PUBLIC_NAMESPACES if not n.startswith("lowrank_icl.theory")):
        module = importlib.import_module(name)
        for public in module.__all__:
            value = getattr(module, public)
            if public in seen and public != "__version__" and not isinstance(value, type(module)):
                assert seen[public][1] is value, f"{public}: {seen[public][0]} and {name} differ"
            seen.setdefault(public, (name, value))


def _import_report(statement):
    code = (f"import sys, time\nt = time.perf_counter()\n{statement}\nt = time.perf_counter() - t\n"
            "heavy = sorted(m for m in ('sympy', 'scipy', 'scipy.stats', 'scipy.optimize', 'mpmath', 'jax', "
            "'matplotlib', 'xarray', 'dask') if m in sys.modules)\n"
            "print(t, ','.join(heavy))")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.split(" ")
    cumulative = [line for line in out.stderr.splitlines() if line.rstrip().endswith(f"| {statement.split()[1]}")]
    return float(seconds), heavy.strip(), cumulative


@pytest.mark.parametrize("statement", ["import lowrank_icl", "import lowrank_icl.numerics",
                                       "import lowrank_icl.theory", "import lowrank_icl.validation"])
def test_importing_a_layer_loads_nothing_heavy(statement):
    """Names load on first use: importing a package imports none of sympy, scipy, mpmath, jax,
    matplotlib, xarray or dask, so it stays fast. (No wall-clock bound here: timings belong to
    ``lowrank-icl bench``; the import's own entry must still appear in the -X importtime report.)"""
    seconds, heavy, cumulative = _import_report(statement)
    assert heavy == "", heavy
    assert cumulative, "python -X importtime did not report the import"


def test_train_transformer_without_jax_names_the_extra():
    """Reading the name works without jax; the call raises an ImportError naming the [nn] extra."""
    code = ("import sys\nsys.modules['jax'] = None\nimport lowrank_icl as li\nf = li.train_transformer\n"
            "try:\n    f(model='linear', dim=8, alpha=1, tau=1, kappa=1)\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "lowrank-icl[nn]" in out.stdout


# --- privacy and layering, read from the source -------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"api": "lowrank_icl", "theory": "lowrank_icl.theory", "numerics": "lowrank_icl.numerics",
          "validation": "lowrank_icl.validation"}


def _modules():
    """(dotted name, is_package, ast) of every module of the package, from the source folders."""
    out = []
    for folder, dotted in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join((dotted, *(parts[:-1] if is_package else parts)))
            out.append((name, is_package, ast.parse(path.read_text(), str(path))))
    return out


def _private(part):
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _absolute(module, is_package, node):
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module, is_package, tree):
    """(imported module, imported name or None, line) for every import of a lowrank_icl module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lowrank_icl"):
                    yield a.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node)
            if source.startswith("lowrank_icl"):
                for a in node.names:
                    yield source, a.name, node.lineno


def _privacy_violations():
    bad = []
    for module, is_package, tree in _modules():
        aliases = {}
        for source, name, line in _imports(module, is_package, tree):
            target = source if name is None else f"{source}.{name}"
            parts = target.split(".")
            for i, part in enumerate(parts):
                owner = ".".join(parts[:i])          # a private part is private to the package holding it
                if _private(part) and not (module == owner or module.startswith(owner + ".")):
                    bad.append(f"{module}:{line} imports {target}")
                    break
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    source = a.name if isinstance(node, ast.Import) else _absolute(module, is_package, node)
                    if source.startswith("lowrank_icl"):
                        aliases[a.asname or a.name.split(".")[0]] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.value.id not in ("self", "cls")):
                bad.append(f"{module}:{node.lineno} reads {node.value.id}.{node.attr}")
    return bad


def test_no_module_uses_another_modules_private_names():
    """``from x import _name``, ``x._name`` and a private module ``pkg._m`` imported from outside
    ``pkg`` are refused: private names are the implementation of the module (package) that holds them."""
    assert _privacy_violations() == []


def test_layer_arrows_point_one_way():
    """theory imports no other layer; numerics does not import validation (read from the source)."""
    bad = []
    for module, is_package, tree in _modules():
        for source, _, line in _imports(module, is_package, tree):
            if module.startswith("lowrank_icl.theory") and source.startswith(("lowrank_icl.numerics",
                                                                               "lowrank_icl.validation")):
                bad.append(f"{module}:{line} imports {source}")
            if module.startswith("lowrank_icl.numerics") and source.startswith("lowrank_icl.validation"):
                bad.append(f"{module}:{line} imports {source}")
    assert bad == []


ROOT_SEARCHES = {"brentq", "brenth", "bisect", "newton", "fsolve", "root_scalar", "findroot", "ridder", "polyroots"}
SAMPLERS = {"default_rng", "standard_normal", "RandomState", "multivariate_normal", "chisquare"}


def test_theory_holds_no_root_search_and_no_monte_carlo():
    """Derivations and the callables made from them only: root searches and random draws live in
    numerics and validation."""
    bad = []
    for module, _, tree in _modules():
        if not module.startswith("lowrank_icl.theory"):
            continue
        for node in ast.walk(tree):
            name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                    else None)
            if isinstance(node, ast.ImportFrom):
                bad += [f"{module}:{node.lineno} imports {a.name}" for a in node.names if a.name in ROOT_SEARCHES]
            elif name in ROOT_SEARCHES | SAMPLERS:
                bad.append(f"{module}:{node.lineno} uses {name}")
    assert bad == []


def test_no_class_is_defined_twice():
    """One meaning per name: two modules never define a class of the same name."""
    seen, twice = {}, []
    for module, _, tree in _modules():
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not _private(node.name):
                if node.name in seen:
                    twice.append(f"{node.name}: {seen[node.name]} and {module}")
                seen.setdefault(node.name, module)
    assert twice == []


def test_names_exported_by_two_modules_are_one_object():
    """A name in the ``__all__`` of two modules of numerics or validation is the same object in both
    (theory's raw formulas are wrapped with input checks by numerics, sometimes under their own name)."""
    import importlib
    seen, differ = {}, []
    for module, _, tree in _modules():
        if module.startswith("lowrank_icl.theory"):
            continue
        declares_all = any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
                           for n in tree.body)
        if not declares_all or module.endswith("__main__"):
            continue
        mod = importlib.import_module(module)
        for name in mod.__all__:
            value = getattr(mod, name)
            if isinstance(value, type(mod)) or name == "__version__":
                continue
            if name in seen and seen[name][1] is not value:
                differ.append(f"{name}: {seen[name][0]} and {module}")
            seen.setdefault(name, (module, value))
    assert differ == []
