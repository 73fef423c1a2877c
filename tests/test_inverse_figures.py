"""Smoke test of the inverse-ICL depth figure at tiny sizes: files, rows, cache outside the output folder."""
import os
import subprocess
import sys


def test_depth_figure_builds_at_quick_scale_and_caches_outside_out(tmp_path):
    out, cache = tmp_path / "figs", tmp_path / "cache"
    env = {**os.environ, "LOWRANK_ICL_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "lowrank_icl.validation.cli.main", "figures", "--quick", "--only", "inverse_depth",
           "--out", str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.iterdir()) == ["inverse_depth.csv", "inverse_depth.pdf", "inverse_depth.png"]
    rows = (out / "inverse_depth.csv").read_text().splitlines()
    assert any(r.startswith("sigma_slope,ORE") for r in rows) and any(r.startswith("gamma,LT-") for r in rows)
    entries = list((cache / "inverse").glob("*.json"))
    assert entries                                      # every run cached, in the cache folder
    # a missing array file must not crash: the entry is discarded and recomputed
    for npz in (cache / "inverse").glob("*.npz"):
        npz.unlink()
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
