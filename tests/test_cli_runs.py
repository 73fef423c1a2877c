"""Running commands end to end: Ctrl-C, worker processes from a plain script, the figures driver
(outputs only in --out, the cache outside it, progress apart from tables, the closing line)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from lowrank_icl.validation.cli.main import main

CLI = [sys.executable, "-m", "lowrank_icl.validation.cli.main"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_gives_one_line_and_exit_130(workers, tmp_path):
    cmd = CLI + ["simulate", "--dim", "40", "--alpha", "2", "--tau", "4", "--kappa", "1", "--seeds", "0-39",
                 "--workers", workers, "--no-cache"]
    # a shell that runs the suite in the background ignores SIGINT, and a child would inherit that:
    # give the command the default disposition, as an interactive terminal would
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stderr.readline()                      # the run has started (its resource line)
        assert "simulate:" in first, first
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = [ln for ln in err.splitlines() if not ln.startswith("  simulate D=")]   # drop progress lines
    assert lines == ["lowrank-icl simulate: interrupted"], err
    assert "Traceback" not in err and out == ""


def test_workers_from_a_script_without_main_guard(tmp_path):
    script = tmp_path / "plain_script.py"
    script.write_text(
        "from lowrank_icl.validation.forward.simulate import simulate\n"
        "print('script body ran', flush=True)\n"
        "res = simulate(dim=6, alpha=2, tau=1.5, kappa=1, rho=0.5, sigma=0.2, lam=0.1, seeds=range(4), workers=2)\n"
        "print('idg', repr(res.errors().idg.values))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("script body ran") == 1      # the workers did not re-run the script
    from lowrank_icl.validation.forward.simulate import simulate
    serial = simulate(dim=6, alpha=2, tau=1.5, kappa=1, rho=0.5, sigma=0.2, lam=0.1, seeds=range(4), workers=1)
    assert f"idg {serial.errors().idg.values!r}" in out.stdout


@pytest.fixture
def tiny_figure(monkeypatch):
    """A figure with a real simulation (through the figures' cache plumbing) at D = 6, 8."""
    from lowrank_icl.numerics import ForwardParams, solve
    from lowrank_icl.validation.figures import forward, registry
    from lowrank_icl.validation.stats import compare, extrapolate

    def build(out_dir, quick, progress):
        import matplotlib.pyplot as plt
        p = ForwardParams(alpha=2.0, tau=1.5, kappa=1.0, rho=0.5, sigma=0.2, lam=0.1)
        budget = forward.Budget(dims=(6, 8), seeds=(0, 1, 2))
        sims = forward._simulate_points([p], budget, progress, cache_dir=forward._cache_dir(out_dir))
        theory = solve(alpha=2.0, tau=1.5, kappa=1.0, rho=0.5, sigma=0.2, lam=0.1).errors()
        rows = []
        for k in ("tm", "idg", "odg"):
            ests = [getattr(sims[(0, D)].errors(), k) for D in budget.dims]
            c = compare(getattr(theory, k), extrapolate(budget.dims, [e.mean for e in ests], [e.sem for e in ests]))
            rows.append([k, c.e_inf, c.theory, "yes" if c.passed else "NO"])
        rows.append(["not a check", 0.0, 0.0, ""])
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        files = registry.save_figure(fig, out_dir, "tiny", ("quantity", "e_inf", "theory", "pass"), rows)
        plt.close(fig)
        return registry.FigureOutput("tiny", files, ("quantity", "e_inf", "theory", "pass"), rows)

    monkeypatch.setitem(registry._REGISTRY, "tiny", registry.FigureSpec("tiny", build, "a tiny test figure"))
    monkeypatch.setattr(registry, "all_figures", lambda: dict(registry._REGISTRY))
    monkeypatch.setattr(forward, "available_cores", lambda: 1)   # one process: fast and deterministic
    return build


def test_figures_writes_only_figures_and_csv_into_out(tiny_figure, tmp_path, capsys):
    out_dir, cache_dir = tmp_path / "out", tmp_path / "cache"
    assert main(["figures", "--only", "tiny", "--out", str(out_dir), "--cache-dir", str(cache_dir)]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out_dir.rglob("*")) == ["tiny.csv", "tiny.pdf", "tiny.png"]
    assert len(list((cache_dir / "simulate").glob("*.json"))) == 6           # 2 dims x 3 seeds
    # tables and the closing line on stdout; progress on stderr, never a table line there
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith("figures: 1 written in ") and last.endswith("theory vs simulation: 3/3 points passed")
    assert "quantity" in captured.out and "quantity" not in captured.err
    assert "[1/1] tiny" in captured.err and "simulate D=8 seed=2" in captured.err
    assert "[1/1]" not in captured.out
    # a second run reads every seed from the cache; --quiet leaves stderr empty
    assert main(["figures", "--only", "tiny", "--out", str(out_dir), "--cache-dir", str(cache_dir), "--quiet"]) == 0
    again = capsys.readouterr()
    assert again.err == "" and again.out.strip().splitlines()[-1].endswith("3/3 points passed")


def test_figures_no_cache_and_environment_cache_dir(tiny_figure, tmp_path, capsys, monkeypatch):
    env_cache = tmp_path / "env-cache"
    monkeypatch.setenv("LOWRANK_ICL_CACHE_DIR", str(env_cache))
    assert main(["figures", "--only", "tiny", "--out", str(tmp_path / "a"), "--quiet", "--no-cache"]) == 0
    assert not env_cache.exists()
    assert main(["figures", "--only", "tiny", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert len(list((env_cache / "simulate").glob("*.json"))) == 6
    capsys.readouterr()


def test_closing_line_counts_failures():
    from lowrank_icl.validation.figures.registry import FigureOutput, closing_line
    outs = [FigureOutput("a", header=("x", "pass"), rows=[[1, True], [2, False], [3, ""]]),
            FigureOutput("b", header=("x", "pass_3se"), rows=[[1, "pass"], [2, "FAIL"]]),
            FigureOutput("c", header=("x",), rows=[[1]])]
    assert closing_line(outs, 12.0) == ("figures: 3 written in 12 s; theory vs simulation: 2/4 points passed; "
                                        "failed: a 1, b 1")
    assert closing_line(outs[2:], 3.0) == "figures: 1 written in 3 s; no theory-vs-simulation points to check"


def test_corrupt_cache_entry_on_the_cli(tmp_path):
    cmd = CLI + ["simulate", "--dim", "6", "--alpha", "2", "--tau", "1.5", "--kappa", "1", "--seeds", "0",
                 "--quiet", "--json", "--cache-dir", str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    (entry,) = (tmp_path / "simulate").glob("*.json")
    entry.write_text("{ truncated")
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and first.returncode == 0
    assert second.stderr.startswith("lowrank-icl: discarding corrupt cache entry") and "recomputing" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    strip = (lambda text: {k: v for k, v in __import__("json").loads(text).items() if k != "seconds"})
    assert strip(first.stdout) == strip(second.stdout)
    assert os.path.getsize(entry) > 100                                     # rewritten whole


def test_figures_json_replaces_the_tables(tiny_figure, tmp_path, capsys):
    import json
    out_dir = tmp_path / "out"
    assert main(["figures", "--only", "tiny", "--out", str(out_dir), "--cache-dir", str(tmp_path / "c"), "--quiet",
                 "--json"]) == 0
    text = capsys.readouterr().out
    doc = json.loads(text)                                # one document: no table or closing line around it
    assert list(doc)[:2] == ["parameters", "version"] and doc["parameters"]["only"] == ["tiny"]
    (fig,) = doc["figures"]
    assert fig["name"] == "tiny" and (fig["passed"], fig["checked"]) == (3, 3) == (doc["passed"], doc["checked"])
    assert sorted(os.path.basename(f) for f in fig["files"]) == ["tiny.csv", "tiny.pdf", "tiny.png"]
