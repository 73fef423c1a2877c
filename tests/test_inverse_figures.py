"""Inverse-ICL figures and their run cache: the depth figure at tiny sizes, cache keys, a missing array file."""
import os
import subprocess
import sys

import numpy as np


def test_depth_figure_builds_at_quick_scale_and_caches_outside_out(tmp_path):
    out, cache = tmp_path / "figs", tmp_path / "cache"
    env = {**os.environ, "LOWRANK_ICL_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "lowrank_icl.validation.cli.main", "figures", "--quick", "--only", "inverse_depth",
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["inverse_depth.csv", "inverse_depth.pdf", "inverse_depth.png"]
    rows = (out / "inverse_depth.csv").read_text().splitlines()
    assert any(r.startswith("sigma_slope,ORE") for r in rows) and any(r.startswith("gamma,LT-") for r in rows)
    assert any(r.startswith("median,LT-") for r in rows) and any(r.startswith("median,ORE") for r in rows)
    assert list((cache / "inverse").glob("*.json"))        # every run cached, in the cache folder


def test_run_cache_keys_on_the_whole_job_and_survives_a_missing_array_file(tmp_path):
    from lowrank_icl.validation.inverse.experiments import LTSettings, RunCache, quiet_params
    cache = RunCache(directory=tmp_path)
    p = quiet_params(d=5, N=4, r=1, sigma=0.2, n_s=150)
    first, arrays = cache.run(p, 1, "LT-supervised", 0, n_test=50)
    assert cache.run(p, 1, "LT-supervised", 0, n_test=50)[0] == first              # a hit
    # every input is in the key: Lambda, w0, the LT settings, the seed
    for job in (cache.job(quiet_params(d=5, N=4, r=1, sigma=0.2, n_s=150, Lambda=2.0), 1, "LT-supervised", 0, 0, 50,
                          LTSettings()),
                cache.job(quiet_params(d=5, N=4, r=1, sigma=0.2, n_s=150, w0=3.0), 1, "LT-supervised", 0, 0, 50,
                          LTSettings()),
                cache.job(p, 1, "LT-supervised", 0, 0, 50, LTSettings(rtol=1e-7)),
                cache.job(p, 1, "LT-supervised", 1, 0, 50, LTSettings())):
        assert job not in cache.cache
    for npz in (tmp_path / "inverse").glob("*.npz"):
        npz.unlink()
    again, arrays2 = cache.run(p, 1, "LT-supervised", 0, n_test=50)               # recomputed, not a crash
    assert again.mse == first.mse and np.array_equal(arrays2["Gammas"], arrays["Gammas"])
