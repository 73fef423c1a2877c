"""Every user error of the command line: exit code 2, exactly one line on stderr, no traceback.

Run as a script (``python tests/test_cli_errors.py``) to print the table of bad inputs, their
messages and exit codes (markdown).
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from lowrank_icl.validation.cli.main import main

SOLVE = "solve --alpha 2 --tau 1.5 --kappa 1"
SIM = "simulate --dim 8 --alpha 2 --tau 1.5 --kappa 1 --rho 0.5 --seeds 0-1 --quiet --no-cache"
SIM_CACHED = "simulate --dim 8 --alpha 2 --tau 1.5 --kappa 1 --rho 0.5 --seeds 0-1 --quiet"
PHASE = "phase --rho 0.5 --tau 2"
SWEEP = "sweep --alpha 1 --tau 2 --kappa 1 --out {dir}/s.nc --cache-dir {dir}/cache --quiet"

# (command line after `lowrank-icl`, environment, a fragment the one-line message must contain);
# {file} is an existing regular file, {unwritable} a folder that cannot be created.
BAD_INPUTS = [
    ("", {}, "the following arguments are required: COMMAND"),
    ("frobnicate", {}, "invalid choice: 'frobnicate'"),
    ("solve --alpha 2 --tau 1.5 --kappa 1 --bogus 3", {}, "unrecognized arguments: --bogus 3"),
    ("solve --alpha 2 --tau 1.5", {}, "the following arguments are required: --kappa"),
    ("solve --alpha x --tau 1.5 --kappa 1", {}, "argument --alpha: invalid float value: 'x'"),
    ("solve --alpha -1 --tau 1.5 --kappa 1", {}, "alpha must be > 0 (got -1.0)"),
    ("solve --alpha nan --tau 1.5 --kappa 1", {}, "alpha must be finite"),
    ("solve --alpha 2 --tau 0 --kappa 1", {}, "tau must be > 0"),
    (SOLVE + " --rho 1.5", {}, "rho must be > 0 and <= 1 (got 1.5)"),
    (SOLVE + " --sigma -0.1", {}, "sigma must be >= 0"),
    (SOLVE + " --lam -1", {}, "lam must be >= 0"),
    (SOLVE + " --alpha-test 0", {}, "alpha_test must be > 0"),
    (SOLVE + " --method newton", {}, "argument --method: invalid choice: 'newton'"),
    (SOLVE + " --precision 3", {}, "precision must be an integer"),
    (SIM.replace("--dim 8", "--dim 0"), {}, "argument --dim: must be an integer >= 1 (got 0)"),
    (SIM.replace("--dim 8", "--dim 2.5"), {}, "argument --dim: must be an integer (got '2.5')"),
    (SIM.replace("--seeds 0-1", "--seeds 4-1"), {}, "--seeds must look like 0-4 or 1,3,7 (got '4-1')"),
    (SIM.replace("--seeds 0-1", "--seeds 1,1"), {}, "--seeds must be distinct"),
    (SIM.replace("--seeds 0-1", "--seeds ''"), {}, "--seeds must look like 0-4 or 1,3,7 (got '')"),
    (SIM.replace("--seeds 0-1", "--seeds -3"), {}, "--seeds must be integers >= 0 (got -3)"),
    (SIM.replace("--seeds 0-1", "--seeds 0-2000000"), {}, "--seeds lists more than 1000000 seeds"),
    (SIM + " --workers 0", {}, "argument --workers: must be an integer >= 1 (got 0)"),
    (SIM + " --workers 4096", {}, "workers must be an integer >= 1 and <= "),
    (SIM.replace("--kappa 1", "--kappa 0"), {}, "kappa must be > 0"),
    (SIM.replace("--kappa 1", "--kappa inf") + " --lam 0.1", {}, "kappa = inf needs lam = 0"),
    (SIM.replace("--tau 1.5", "--tau 0.5") + " --method cg", {}, "method='cg' needs lam > 0 or M >= D^2"),
    # M = 1e6 * 8^2 = 6.4e7 prompts: x and h 2 M D 8 B = 8.19 GB, y and the task index 2 M 8 B = 1.02 GB,
    # the matrix-free cg instead of the 33 GB dense design; the limit 2 GiB = 2.15 GB
    (SIM.replace("--tau 1.5", "--tau 1e6"), {"LOWRANK_ICL_MEMORY_LIMIT": "2G"},
     "needs about 9.22 GB of memory (solver cg), more than the limit 2.15 GB"),
    (SIM.replace("--dim 8", "--dim 100000"), {}, "TB of memory"),
    (SIM, {"LOWRANK_ICL_MEMORY_LIMIT": "lots"}, "LOWRANK_ICL_MEMORY_LIMIT must be a size such as 8G"),
    (SIM.replace(" --rho 0.5", "") + " --spectrum power:0.5 --rho 0.5", {}, "--spectrum takes no --rho"),
    (SIM.replace(" --rho 0.5", "") + " --spectrum bogus:1", {}, "spectrum must be one of lowrank:RHO"),
    (SIM.replace(" --rho 0.5", "").replace("--dim 8", "--dim 300") + " --spectrum power:0.5", {},
     "dim must be an integer >= 2 and <= 256 (got 300)"),
    (SIM.replace(" --rho 0.5", "").replace("--kappa 1", "--kappa inf") + " --spectrum power:0.5", {},
     "kappa must be finite with a spectrum"),
    (SIM_CACHED + " --cache-dir {file}", {}, "--cache-dir {file} is a file, not a folder"),
    (SIM_CACHED + " --cache-dir {unwritable}", {}, "--cache-dir {unwritable} is not a writable folder"),
    (SIM_CACHED, {"LOWRANK_ICL_CACHE_DIR": "{file}"}, "cache directory {file} exists and is not a directory"),
    ("figures --only ''", {}, "--only needs at least one figure name"),
    ("figures --only ,", {}, "--only needs at least one figure name"),
    ("figures --only no_such_figure", {}, "unknown figure(s) ['no_such_figure']"),
    ("figures --only phase_transition --out {file}", {}, "--out {file} is a file, not a folder"),
    ("figures --only phase_transition --out {unwritable}", {}, "--out {unwritable} is not a writable folder"),
    ("figures --only phase_transition --cache-dir {file}", {}, "--cache-dir {file} is a file, not a folder"),
    (PHASE + " --alpha a,b", {}, "alpha must be a comma-separated list of numbers"),
    (PHASE + " --alpha ,", {}, "alpha must list at least one value"),
    (PHASE + " --alpha 1e2 --protocol xyz", {}, "argument --protocol: invalid choice: 'xyz'"),
    ("phase --rho 0 --tau 2 --alpha 1e2", {}, "rho must be > 0"),
    ("inverse --dim 0", {}, "d must be an integer >= 1 (got 0)"),
    ("inverse --test 1", {}, "test must be an integer >= 2 (got 1)"),
    ("inverse --loss magic", {}, "argument --loss: invalid choice: 'magic'"),
    ("inverse --threads 0", {}, "threads must be an integer >= 1 and <= 64 (got 0)"),
    ("figures --only inverse_noise --threads 0", {}, "--threads must be in [1, 64] (got 0)"),
    ("bench --dims 0", {}, "--dims must be comma-separated integers >= 1"),
    ("bench --ratio-dim 0", {}, "argument --ratio-dim: must be an integer >= 1 (got 0)"),
    ("bench --dims 100000", {}, "TB of memory"),
    # one seed syntax and rule for every subcommand
    ("inverse --seed 1 --seeds 2", {}, "give --seed or --seeds, not both"),
    ("inverse --seed 0-2", {}, "--seed takes one seed (got '0-2'); use --seeds for several"),
    ("inverse --seeds 0-2,1", {}, "--seeds must be distinct (repeats [1])"),
    ("bayes --estimator gmmse --dim 8 --alpha 1 --kappa 1 --seeds 3-1", {}, "--seeds must look like 0-4 or 1,3,7"),
    ("transformer --model linear --dim 8 --alpha 1 --tau 2 --kappa 1 --seed -1", {}, "--seed must be integers >= 0"),
    (SWEEP + " --dim 8 --seeds 1,1", {}, "--seeds must be distinct (repeats [1])"),
    # writers never replace a device, a symlink or a FIFO
    (SWEEP + " --out {fifo}", {}, "--out {fifo} is a FIFO, not a regular file"),
    (SWEEP + " --out {link}", {}, "--out {link} is a symbolic link, not a regular file"),
    # up-front size checks: refused before any work
    # contexts x and y in float64, twice: 2 x 8 B x (1e8 + 2000) x 50 x (100 + 1) = 8.08 TB
    ("inverse --tasks 100000000", {}, "needs about 8.08 TB of memory"),
    # the pool alone: M0 D 8 B = (1e6 x 64) x 64 x 8 B = 32.8 GB (+ a 32 MiB chunk)
    ("bayes --estimator dmmse --dim 64 --alpha 1 --kappa 1e6", {"LOWRANK_ICL_MEMORY_LIMIT": "1G"},
     "needs about 32.8 GB of memory, more than the limit 1.07 GB"),
    (SWEEP.replace("--alpha 1", "--alpha " + ",".join(map(str, range(1, 101))))
     .replace("--tau 2", "--tau " + ",".join(map(str, range(2, 102)))) + " --dim 8 --seeds 0-99",
     {}, "the sweep has 1000000 cells (100 alpha x 100 tau x 1 D x 100 seeds), more than 100000"),
    (SWEEP + " --alpha 1,2,1", {}, "--alpha must not repeat a value"),
    (PHASE + " --alpha 1e2,1e3,1e2", {}, "alpha must not repeat a value"),
    # spectrum files: what is wrong with the file, in the package's words
    (SOLVE + " --spectrum {dir}/folder.json", {}, "spectrum file '{dir}/folder.json' is a folder, not a file"),
    (SOLVE + " --spectrum {dir}/bad.npz", {}, "is not an .npz archive (a zip of .npy arrays"),
    (SOLVE + " --spectrum {dir}/bool.json", {}, "train must hold numbers, not booleans"),
    # a scheduler that is not there: one line, at once
    (SWEEP + " --dim 8 --seeds 0-1 --scheduler garbage", {}, "the Dask scheduler address must look like tcp://HOST:PORT"),
    (SWEEP + " --dim 8 --seeds 0-1 --scheduler tcp://127.0.0.1:1", {}, "cannot reach the Dask scheduler"),
]


def _fill(text: str, paths: dict) -> str:
    return text.format(**paths)


def run_bad_input(argv_text: str, env: dict, paths: dict, capsys, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, _fill(value, paths))
    argv = shlex.split(_fill(argv_text, paths))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit through SystemExit
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def paths(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    fifo, link = tmp_path / "fifo.nc", tmp_path / "link.nc"
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "bad.npz").write_text("not a zip archive")
    (tmp_path / "bool.json").write_text('{"train": [1.0, true]}')
    os.mkfifo(fifo)
    link.symlink_to(a_file)
    return {"file": str(a_file), "unwritable": "/proc/lowrank-icl-test/out", "fifo": str(fifo), "link": str(link),
            "dir": str(tmp_path)}


@pytest.mark.parametrize("argv_text, env, fragment", BAD_INPUTS, ids=[b[0] or "<none>" for b in BAD_INPUTS])
def test_bad_input_gives_one_line_and_exit_2(argv_text, env, fragment, paths, capsys, monkeypatch):
    code, out, err = run_bad_input(argv_text, env, paths, capsys, monkeypatch)
    lines = err.strip("\n").splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err and out == ""
    assert lines[0].startswith("lowrank-icl")
    assert _fill(fragment, paths) in lines[0], lines[0]


def test_table_covers_every_subcommand_with_30_inputs():
    commands = {shlex.split(b[0])[0] for b in BAD_INPUTS if b[0]}
    assert {"solve", "simulate", "figures", "phase", "inverse", "bench"} <= commands
    assert len(BAD_INPUTS) >= 30


def _table() -> str:  # pragma: no cover - a report generator, run as a script
    import tempfile

    from _pytest.monkeypatch import MonkeyPatch

    class _Capture:
        def readouterr(self):
            out, err = sys.stdout.getvalue(), sys.stderr.getvalue()
            sys.stdout.seek(0), sys.stdout.truncate(), sys.stderr.seek(0), sys.stderr.truncate()
            return type("C", (), {"out": out, "err": err})

    import io
    rows = ["| input | message (stderr) | exit |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        a_file = Path(tmp) / "a_file"
        a_file.write_text("x")
        os.mkfifo(Path(tmp) / "fifo.nc")
        (Path(tmp) / "folder.json").mkdir()
        (Path(tmp) / "bad.npz").write_text("not a zip archive")
        (Path(tmp) / "bool.json").write_text('{"train": [1.0, true]}')
        (Path(tmp) / "link.nc").symlink_to(a_file)
        paths = {"file": "FILE", "unwritable": "/proc/lowrank-icl-test/out", "fifo": "FIFO", "link": "LINK",
                 "dir": "DIR"}
        real = {"file": str(a_file), "unwritable": paths["unwritable"], "fifo": str(Path(tmp) / "fifo.nc"),
                "link": str(Path(tmp) / "link.nc"), "dir": tmp}
        os.environ.setdefault("LOWRANK_ICL_CACHE_DIR", str(Path(tmp) / "cache"))
        for argv_text, env, _ in BAD_INPUTS:
            mp = MonkeyPatch()
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
            try:
                code, _, err = run_bad_input(argv_text, env, real, _Capture(), mp)
            finally:
                sys.stdout, sys.stderr = saved
                mp.undo()
            shown = " ".join(f"{k}={_fill(v, paths)}" for k, v in env.items())
            cmd = (shown + " " if shown else "") + "lowrank-icl " + _fill(argv_text, paths)
            msg = err.strip().replace(str(a_file), "FILE").replace(real["fifo"], "FIFO").replace(
                real["link"], "LINK").replace(tmp, "DIR").replace("|", "\\|")
            rows.append(f"| `{cmd.strip()}` | {msg} | {code} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(_table())
