import os

import matplotlib
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

matplotlib.use("Agg")

# Derandomized so CI is reproducible; the default profile keeps the suite fast on 2 cores.
settings.register_profile("default", deadline=None, derandomize=True, max_examples=60,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def rng():
    """A fixed-seed generator: every stochastic test is reproducible."""
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def _session_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("lowrank-icl-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(_session_cache_dir, monkeypatch):
    """Tests (and the commands they start) cache into a temporary folder, never the user's."""
    monkeypatch.setenv("LOWRANK_ICL_CACHE_DIR", str(_session_cache_dir))
