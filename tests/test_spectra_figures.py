"""Figure builders of general spectra at tiny sizes, and their helpers against independent routes."""
import io

import numpy as np
import pytest

from lowrank_icl.numerics import TaskSpectrum
from lowrank_icl.theory.forward.stieltjes import pool_transforms
from lowrank_icl.validation.figures import spectra as figs


def test_slope_dip_on_a_known_curve():
    # e = exp(-k tanh((ln kappa - ln 0.3)/w)): steepest at kappa = 0.3, slope -k/w,
    # half depth where sech^2 = 1/2, i.e. full width 2 w arccosh(sqrt 2)
    kappa = np.exp(np.linspace(np.log(0.05), np.log(3.0), 20001))
    w, k = 0.05, 3.0
    e = np.exp(-k * np.tanh((np.log(kappa) - np.log(0.3)) / w))
    k_star, width, slope = figs.slope_dip(kappa, e, (0.1, 0.6))
    assert abs(k_star - 0.3) < 1e-3 and abs(slope + k / w) < 1e-2 * k / w
    assert abs(width - 2 * w * np.arccosh(np.sqrt(2))) < 2e-3


def test_alignment_measure_isotropic_test_is_the_pool_trace():
    # with t = 1 the measure is (1/D) tr (x Sigma + nu)^{-1} = g(-nu) of the rank-r closed form
    nu, kappa, rho = 0.07, 0.4, 0.3
    got = figs.alignment_measure(TaskSpectrum.low_rank(rho), kappa, nu)[0]
    assert abs(got - pool_transforms(-nu, kappa, rho).g) < 1e-13 * got


@pytest.mark.parametrize("name", ["spectra_transition", "spectra_power_law", "spectra_alignment"])
def test_figure_smoke(name, tmp_path, monkeypatch):
    monkeypatch.setitem(figs.QUICK, "transition_points", 200)
    monkeypatch.setitem(figs.QUICK, "power_atoms", 500)
    monkeypatch.setitem(figs.QUICK, "align_thetas", 5)
    from lowrank_icl.validation.figures.registry import run_figures
    out = run_figures(tmp_path, quick=True, only=[name], stream=io.StringIO())[0]
    assert (tmp_path / f"{name}.png").exists() and (tmp_path / f"{name}.csv").exists() and out.rows
