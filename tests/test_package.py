"""Packaging contract: the three layers import under lowrank_icl, and the CLI parses."""
import subprocess
import sys

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

    from lowrank_icl.numerics._blas import single_threaded_blas

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        with single_threaded_blas():
            with single_threaded_blas():
                assert blas_threads() == {1}
            assert blas_threads() == {1}
        assert blas_threads() == before
