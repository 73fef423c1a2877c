"""Monte Carlo of general task spectra against the theory: 1/D extrapolation and the 3-SE rule."""
import numpy as np
import pytest

from lowrank_icl.numerics import TaskSpectrum
from lowrank_icl.validation.forward.spectrum_simulate import quantile_pairs, simulate_spectrum
from lowrank_icl.validation.stats import compare, extrapolate

POINT = dict(alpha=2.0, tau=1.5, kappa=0.8, sigma=0.3, lam=0.05)
FAMILIES = {
    "lowrank:0.3": TaskSpectrum.low_rank(0.3),
    "approx-lowrank:0.3,0.05": TaskSpectrum.approx_low_rank(0.3, 0.05),
    "power:0.6": TaskSpectrum.power_law(0.6, atoms=1000),
    "spiked:8,0.25": TaskSpectrum.spiked(8.0, 0.25),
    "lowrank:0.3 test at theta=0.8": TaskSpectrum.low_rank(0.3).subspace_test(0.3, 0.8),
}


def agreement(spec, dims, seeds):
    """Deviation (simulation - finite-D theory) per D, extrapolated in 1/D to 0; returns comparisons."""
    dev = {k: ([], []) for k in ("tm", "idg", "odg")}
    for dim in dims:
        sim = simulate_spectrum(dim=dim, **POINT, spectrum=spec, seeds=range(seeds))
        assert sim.converged
        theory = sim.theory()
        assert np.all(theory.converged)
        err, th = sim.errors(), theory.errors()
        for k in dev:
            dev[k][0].append(getattr(err, k).mean - float(getattr(th, k)))
            dev[k][1].append(getattr(err, k).sem)
    return {k: compare(0.0, extrapolate(dims, *v)) for k, v in dev.items()}


def test_quantile_pairs_keep_the_pairs():
    spec = TaskSpectrum(train=[3.0, 1.0, 0.0], test=[0.5, 2.0, 7.0], weights=[0.25, 0.25, 0.5])
    s, t = quantile_pairs(spec, 8)
    assert np.array_equal(s, [3, 3, 1, 1, 0, 0, 0, 0]) and np.array_equal(t, [0.5, 0.5, 2, 2, 7, 7, 7, 7])
    s, _ = quantile_pairs(TaskSpectrum.power_law(0.6, atoms=64), 64)
    assert np.array_equal(s, TaskSpectrum.power_law(0.6, atoms=64).train)


def test_simulate_dispatches_on_spectrum():
    from lowrank_icl.validation.forward.simulate import simulate
    spec = TaskSpectrum.spiked(4.0, 0.5)
    a = simulate(dim=8, alpha=2.0, tau=1.5, kappa=1.0, sigma=0.2, lam=0.1, spectrum=spec, seeds=[3])
    b = simulate_spectrum(dim=8, alpha=2.0, tau=1.5, kappa=1.0, sigma=0.2, lam=0.1, spectrum=spec, seeds=[3])
    assert a.errors().odg.values == b.errors().odg.values
    with pytest.raises(ValueError, match="cannot honour rho"):
        simulate(dim=8, alpha=2.0, tau=1.5, kappa=1.0, rho=0.5, spectrum=spec, seeds=[0])


def test_misaligned_test_law_small():
    # default-suite size: D = 12, 16, 24 with 8 seeds (seconds)
    out = agreement(FAMILIES["lowrank:0.3 test at theta=0.8"], (12, 16, 24), 8)
    for k, c in out.items():
        assert c.passed, (k, c)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_agrees(name):
    out = agreement(FAMILIES[name], (32, 64, 128), 10)
    for k, c in out.items():
        assert c.passed, (name, k, c)
