"""CLI contract of `lowrank-icl solve` (scripts depend on it)."""
import json
import subprocess
import sys


from lowrank_icl.numerics import solve

CMD = [sys.executable, "-m", "lowrank_icl.validation.cli.main", "solve"]
ARGS = ["--alpha", "4", "--tau", "1.2", "--kappa", "3", "--rho", "0.5", "--sigma", "0.9", "--lam", "0.1"]
KEYS = {"q", "m", "chi", "q_bar", "chi_bar", "q_hat", "m_hat", "chi_hat", "q_bar_hat", "chi_bar_hat",
        "m_bar", "q0", "m0", "nu"}


def test_json_contract_full_precision():
    out = subprocess.run(CMD + ARGS + ["--alpha-test", "8", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["order_parameters"]) == KEYS
    assert set(data["errors"]) == {"tm", "idg", "odg"}
    assert data["converged"] is True and data["residual"] < 1e-10
    res = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1)
    # floats round-trip exactly: the CLI prints repr-precision numbers
    assert data["order_parameters"]["q"] == float(res.q)
    assert data["errors"]["idg"] == float(res.errors(alpha_test=8).idg)


def test_bad_input_exit_2_one_line():
    out = subprocess.run(CMD + ["--alpha", "-1", "--tau", "1", "--kappa", "1", "--json"], capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "alpha must be > 0" in lines[0]


def test_threshold_prints_inf_as_string():
    out = subprocess.run(CMD + ["--alpha", "2", "--tau", "1", "--kappa", "1", "--json"], capture_output=True, text=True)
    assert out.returncode == 0
    assert json.loads(out.stdout)["errors"]["tm"] == "inf"


def test_human_readable_output():
    out = subprocess.run(CMD + ARGS, capture_output=True, text=True, check=True)
    assert "idg" in out.stdout and "converged: True" in out.stdout
    idg_line = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("idg")][0]
    expected = solve(alpha=4, tau=1.2, kappa=3, rho=0.5, sigma=0.9, lam=0.1).errors().idg
    assert float(idg_line.split()[1]) == float(expected)
