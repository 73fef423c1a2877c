"""`lowrank-icl solve --spectrum SPEC`: same JSON contract, errors from the general-spectrum solver."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from lowrank_icl.numerics import TaskSpectrum, solve
from lowrank_icl.validation.cli.main import main

ARGS = ["--alpha", "4", "--tau", "1.2", "--kappa", "3", "--sigma", "0.9", "--lam", "0.1", "--json"]
KEYS = {"q", "m", "chi", "q_bar", "chi_bar", "q_hat", "m_hat", "chi_hat", "q_bar_hat", "chi_bar_hat",
        "m_bar", "q0", "m0", "nu"}


@pytest.fixture
def run(capsys):
    """Run ``lowrank-icl solve`` in process (the subprocess route is covered by test_cli_solve)."""
    def _run(extra):
        code = main(["solve", *ARGS, *extra])
        cap = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=cap.out, stderr=cap.err)
    return _run


def test_named_spectrum_json_unchanged_otherwise(run):
    out = run(["--spectrum", "approx-lowrank:0.3,0.01"])
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["order_parameters"]) == KEYS and set(data["errors"]) == {"tm", "idg", "odg"}
    res = solve(alpha=4, tau=1.2, kappa=3, sigma=0.9, lam=0.1, spectrum=TaskSpectrum.approx_low_rank(0.3, 0.01))
    assert data["errors"]["odg"] == float(res.errors().odg) and data["converged"] is True


def test_spectrum_file(run, tmp_path):
    path = tmp_path / "spec.npz"
    np.savez(path, train=[2.0, 0.0], test=[0.0, 2.0], weights=[0.5, 0.5])
    out = run(["--spectrum", str(path)])
    assert out.returncode == 0, out.stderr
    spec = TaskSpectrum(train=[2.0, 0.0], test=[0.0, 2.0], weights=[0.5, 0.5])
    assert json.loads(out.stdout)["errors"]["odg"] == float(
        solve(alpha=4, tau=1.2, kappa=3, sigma=0.9, lam=0.1, spectrum=spec).errors().odg)


@pytest.mark.parametrize("extra, message", [
    (["--spectrum", "pwr:0.6"], "spectrum must be one of"),
    (["--spectrum", "power:1.5"], "exponent"),
    (["--spectrum", "nofile.json"], "does not exist"),
    (["--spectrum", "lowrank:0.3", "--rho", "0.5"], "replaces rho"),
])
def test_bad_spectrum_exit_2_one_line(run, extra, message):
    out = run(extra)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_spectrum_bench_smoke():
    from lowrank_icl.validation.forward.spectrum_bench import letey_side_by_side, spectrum_speed
    speed = spectrum_speed(atoms=20, points=16, baseline_points=2)
    assert speed["converged"] == speed["points"] == 16 and speed["ratio_naive"] > 0
    rows = letey_side_by_side(repeats=2, dim=20, draws=2)
    assert len(rows) == 6 and all(np.isfinite(r["exact"]) and r["sampled_std"] >= 0 for r in rows)
