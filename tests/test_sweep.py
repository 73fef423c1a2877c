"""Sweeps: the grid, the Dataset layout, the cell cache (rerun, resume after a crash), netCDF, memory,
and the Dask path on a real cluster: a scheduler and two worker processes on 127.0.0.1 started here
with the `dask scheduler` / `dask worker` command lines and torn down at the end.

Every run is compared with the in-process reference run (fixture ``reference``), bit for bit, also
when a worker is killed mid-sweep. The CLI's --scheduler path and the engine hook behind
`figures --scheduler` (validation.parallel.use_engine) are exercised on the same cluster.
"""
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
distributed = pytest.importorskip("distributed")

from lowrank_icl.numerics import solve  # noqa: E402
from lowrank_icl.validation.forward.simulate import simulate  # noqa: E402
from lowrank_icl.validation.sweeps import LocalEngine, run_sweep, sweep  # noqa: E402
from lowrank_icl.validation.sweeps.cells import CACHE_NAMESPACE, cell_job, cell_memory_bytes  # noqa: E402
from lowrank_icl.validation.sweeps.grid import Grid  # noqa: E402
from lowrank_icl.validation.sweeps.results import write_netcdf  # noqa: E402

# 2 x 2 points x D in {16, 40} x 3 seeds = 24 cells; D = 40 cells take ~0.2 s (cg), so a sweep
# lasts a few seconds: long enough to be interrupted mid-way.
GRID = dict(alpha=[1.0, 2.0], kappa=[0.5, 1.0], tau=2.0, rho=0.5, sigma=0.3, lam=0.1)
DIMS = [16, 40]
SEEDS = [0, 1, 2]
CLI_ARGS = ["--alpha", "1,2", "--kappa", "0.5,1", "--tau", "2", "--rho", "0.5", "--sigma", "0.3",
            "--lam", "0.1", "--dim", "16,40", "--seeds", "0-2"]
N_CELLS = 2 * 2 * len(DIMS) * len(SEEDS)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The sweep run in this process (one worker, single-threaded BLAS), with a fresh cache."""
    cache = tmp_path_factory.mktemp("reference-cache")
    run = run_sweep(GRID, DIMS, SEEDS, client=LocalEngine(workers=1), cache_dir=cache)
    return run, cache


def cached_cells(cache_dir) -> int:
    folder = cache_dir / CACHE_NAMESPACE
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


def run_cli(args, env_extra=None, **kw):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300, **kw)


# ---------------------------------------------------------------------------------------------- grid

def test_grid_sweeps_lists_and_fixes_scalars_in_model_order():
    g = Grid.from_mapping(dict(kappa=[0.5, 1], alpha=[1, 2, 4], tau=2))
    assert g.names == ("alpha", "kappa") and g.shape == (3, 2)
    assert g.fixed == {"tau": 2.0, "rho": 1.0, "sigma": 0.0, "lam": 0.0}
    pts = g.points()
    assert len(pts) == 6 and pts[1] == dict(alpha=1.0, tau=2.0, kappa=1.0, rho=1.0, sigma=0.0, lam=0.0)


@pytest.mark.parametrize("grid, message", [
    (dict(alpha=1, tau=1), "grid needs kappa"),
    (dict(alpha=1, tau=1, kappa=1, beta=2), r"unknown grid parameter\(s\) \['beta'\]"),
    (dict(alpha=[1, 1], tau=1, kappa=1), "repeated values"),
    (dict(alpha=[1, 2], tau=1, kappa=1, rho=[0.5, 1.5]), "rho must be > 0 and <= 1"),
    (dict(alpha=[], tau=1, kappa=1), "non-empty 1-d list"),
    (dict(alpha=1, tau=-1, kappa=1), "tau must be > 0"),
])
def test_grid_refuses_bad_input_naming_the_parameter(grid, message):
    with pytest.raises(ValueError, match=message):
        Grid.from_mapping(grid)


@pytest.mark.parametrize("kwargs, message", [
    (dict(dims=[8, 8]), "dims has repeated values"),
    (dict(dims=[0]), "dim must be an integer >= 1"),
    (dict(dims=[8], seeds=[1, 1]), r"seeds must be distinct \(repeats \[1\]\)"),
    (dict(dims=[8], seeds=[]), "seeds must list at least one seed"),
    (dict(dims=[8], workers=2, client="tcp://127.0.0.1:1"), "workers= is for the local pool"),
])
def test_sweep_refuses_bad_arguments(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        sweep(GRID, cache_dir=tmp_path, **kwargs)


# ---------------------------------------------------------------------------------------------- layout

def test_theory_only_layout_and_values_match_solve_point_by_point():
    ds = sweep(dict(alpha=[1, 2, 4], kappa=[0.5, 1], tau=2, rho=0.5, sigma=0.3, lam=0.1))
    assert ds.theory_tm.dims == ("alpha", "kappa") and "dim" not in ds.dims and "tm" not in ds
    assert set(ds.data_vars) == {"theory_tm", "theory_idg", "theory_odg", "converged", "residual"}
    assert float(ds.tau) == 2.0 and float(ds.rho) == 0.5
    for a in (1, 2, 4):
        for k in (0.5, 1):
            ref = solve(alpha=a, tau=2, kappa=k, rho=0.5, sigma=0.3, lam=0.1)
            point = ds.sel(alpha=a, kappa=k)
            assert float(point.theory_idg) == pytest.approx(float(ref.errors().idg), rel=1e-13)
            assert float(point.theory_odg) == pytest.approx(float(ref.errors().odg), rel=1e-13)
            assert bool(point.converged) == bool(ref.converged)
    call = json.loads(ds.attrs["parameters"])
    assert call["grid"]["alpha"] == [1.0, 2.0, 4.0] and call["dims"] is None
    assert ds.attrs["version"] and ds.attrs["call"].startswith("sweep(grid=")


def test_simulation_cells_are_those_of_simulate(reference):
    """Each (point, D) slice holds exactly what simulate() gives for that point and seeds."""
    ds = reference[0].dataset
    assert ds.tm.dims == ("alpha", "kappa", "dim", "seed") and ds.tm_inf.dims == ("alpha", "kappa")
    res = simulate(dim=40, alpha=2.0, tau=2.0, kappa=0.5, rho=0.5, sigma=0.3, lam=0.1, seeds=SEEDS)
    err = res.errors()
    cell = ds.sel(alpha=2.0, kappa=0.5, dim=40)
    np.testing.assert_array_equal(cell.idg.values, err.idg.values)
    np.testing.assert_array_equal(cell.tm.values, err.tm.values)
    assert float(cell.odg_mean) == pytest.approx(err.odg.mean, rel=1e-14)
    assert float(cell.odg_se) == pytest.approx(err.odg.sem, rel=1e-12)
    assert bool(cell.sim_converged.all()) == res.converged


def test_extrapolation_is_consistent_with_theory_at_mc_accuracy(reference):
    """Physics smoke check: e_inf lies within 5 SE of the theory at most points (small D, 3 seeds)."""
    ds = reference[0].dataset
    for k in ("tm", "idg", "odg"):
        z = np.abs(ds[f"{k}_inf"] - ds[f"theory_{k}"]) / ds[f"{k}_inf_se"]
        assert np.all(np.isfinite(z)) and float((z < 5).mean()) >= 0.75, (k, z.values)


def test_rerun_reuses_every_cell_and_netcdf_round_trips(reference, tmp_path):
    run, cache = reference
    assert (run.cells, run.computed, run.reused) == (N_CELLS, N_CELLS, 0)
    again = run_sweep(GRID, DIMS, SEEDS, cache_dir=cache)
    assert (again.computed, again.reused) == (0, N_CELLS)
    xr.testing.assert_identical(again.dataset, run.dataset)
    path = write_netcdf(run.dataset, tmp_path / "sweep.nc")
    with xr.open_dataset(path) as back:
        xr.testing.assert_identical(back.load(), run.dataset)
        assert back.sim_converged.dtype == bool


def test_interrupted_local_run_resumes_with_identical_results(reference, tmp_path, capsys):
    """Ctrl-C (SIGINT to the process group) a CLI sweep on 2 spawned workers mid-way: one line, exit
    130, no output file; the rerun computes only the missing cells and gives the same bits."""
    cache = tmp_path / "cache"
    out = tmp_path / "sweep.nc"
    args = ["sweep", *CLI_ARGS, "--out", str(out), "--cache-dir", str(cache), "--json", "--workers", "2"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    # a shell that runs the suite in the background ignores SIGINT and the child would inherit that:
    # the child restores Python's handler, as under an interactive terminal (no preexec_fn: forking a
    # process that has loaded JAX warns)
    child = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "from lowrank_icl.validation.cli.main import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", child, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while cached_cells(cache) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    stored = cached_cells(cache)
    assert 3 <= stored < N_CELLS, f"the interrupt did not land mid-sweep ({stored} of {N_CELLS} cells stored)"
    assert proc.returncode == 130 and err.strip().splitlines()[-1].startswith("lowrank-icl sweep: interrupted")
    assert not out.exists()
    from lowrank_icl.validation.cli.main import main
    assert main([*args[:-2], "--workers", "1"]) == 0     # in this process: the pool's bits and these agree
    summary = json.loads(capsys.readouterr().out)
    assert summary["cells"] == N_CELLS
    assert summary["reused"] == stored and summary["computed"] == N_CELLS - stored
    with xr.open_dataset(out) as ds:
        xr.testing.assert_identical(ds.load(), reference[0].dataset)


def test_cli_progress_and_user_errors(tmp_path, capsys):
    from lowrank_icl.validation.cli.main import main
    out = tmp_path / "t.nc"
    cache = ["--cache-dir", str(tmp_path / "c")]
    assert main(["sweep", "--alpha", "1,2", "--kappa", "1", "--tau", "2", "--dim", "8", "--seeds", "0-1",
                 "--out", str(out), "--workers", "1", *cache]) == 0
    captured = capsys.readouterr()
    assert "4/4 cells done" in captured.err and "left" in captured.err
    assert "4 computed, 0 reused" in captured.out
    for args, message in [
        (["--alpha", "1,x", "--kappa", "1", "--tau", "2", "--out", str(out)], "--alpha must be a number"),
        (["--alpha", "1", "--kappa", "1", "--tau", "2", "--out", str(tmp_path)], "is a directory"),
        (["--alpha", "1", "--kappa", "1", "--tau", "2", "--out", str(tmp_path / "no" / "x.nc")], "does not exist"),
        (["--alpha", "1", "--kappa", "1", "--tau", "2", "--dim", "4000", "--seeds", "0-1", "--out", str(out)],
         "needs about"),
        (["--alpha", "1", "--kappa", "1", "--tau", "2", "--dim", "8", "--seeds", "0,0", "--out", str(out)],
         "repeat"),                      # the message names the repeated seed
    ]:
        assert main(["sweep", *args, *cache]) == 2, args
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (args, err)


class _DetachedEngine:
    """An engine whose 'workers' cannot reach the caller's cache folder (they get a file instead)."""

    def __init__(self, blocker):
        self.blocker = str(blocker)

    def map(self, fn, args, on_done=None):
        results = []
        for i, (job, _folder) in enumerate(args):
            results.append(fn((job, self.blocker)))
            if on_done:
                on_done(i, results[-1])
        return results

    def cell_memory_limit(self):
        return None

    def describe(self):
        return "detached test engine"


def test_a_worker_without_the_cache_folder_computes_and_the_caller_stores(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    grid = dict(alpha=[1.0, 2.0], kappa=1.0, tau=2.0)
    first = run_sweep(grid, [8], [0, 1], client=_DetachedEngine(blocker), cache_dir=tmp_path / "cache")
    assert (first.computed, first.reused) == (4, 0) and cached_cells(tmp_path / "cache") == 4
    again = run_sweep(grid, [8], [0, 1], client=_DetachedEngine(blocker), cache_dir=tmp_path / "cache")
    assert (again.computed, again.reused) == (0, 4)
    xr.testing.assert_identical(again.dataset, first.dataset)


# ---------------------------------------------------------------------------------------------- memory

@pytest.mark.parametrize("dim, tau, lam, method", [
    (16, 2.0, 0.1, "auto"),      # primal
    (24, 0.5, 0.0, "auto"),      # dual, pseudo-inverse allowance at lam = 0
    (32, 2.0, 0.1, "cg"),
    (32, 2.0, 0.1, "primal"),    # what auto falls back to if cg stalls (D <= 64)
    (48, 0.5, 0.1, "dual"),
    (40, 0.5, 0.1, "dual-cg"),
])
def test_memory_estimate_bounds_the_measured_peak(dim, tau, lam, method):
    """The estimate (minus the fixed process overhead) is above the traced numpy peak of the cell,
    and within a factor 4 of it: a refusal is never for a cell that would fit by far."""
    import tracemalloc
    from lowrank_icl.validation.forward.simulate import run_seed
    from lowrank_icl.validation.sweeps.cells import PROCESS_OVERHEAD_BYTES
    job = cell_job(dict(alpha=2.0, tau=tau, kappa=1.0, rho=0.5, sigma=0.3, lam=lam), dim, 0, method=method)
    tracemalloc.start()
    try:
        run_seed(job)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = cell_memory_bytes(job) - PROCESS_OVERHEAD_BYTES
    assert peak <= estimate <= 4 * peak + 2**20, (peak, estimate)


def test_cells_that_cannot_fit_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"needs about .* GiB, more than the .* GiB one cell may use"):
        sweep(dict(alpha=1, tau=2, kappa=1), dims=[3000], seeds=[0, 1], cache_dir=tmp_path)
    assert not (tmp_path / CACHE_NAMESPACE).exists() or not any((tmp_path / CACHE_NAMESPACE).iterdir())


def test_importing_validation_does_not_import_xarray_or_dask():
    code = ("import sys, lowrank_icl.validation, lowrank_icl.validation.cli.main as m\n"
            "m.build_parser()\n"
            "bad = [k for k in ('xarray', 'distributed', 'dask') if k in sys.modules]\n"
            "assert not bad, bad\n"
            "from lowrank_icl.validation import sweep\n"
            "assert callable(sweep) and 'distributed' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------- Dask

WORKER_MEMORY = "1GiB"


def _start(args, log):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


@contextlib.contextmanager
def running_cluster(folder, workers=("w1", "w2")):
    """(scheduler address, {name: Popen}); loopback only, bounded start-up, always killed."""
    scheduler_file = folder / "scheduler.json"
    procs = {}
    log = open(folder / "cluster.log", "wb")
    try:
        procs["scheduler"] = _start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", str(scheduler_file)], log)
        for name in workers:
            procs[name] = _start(["distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                                  "--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--name", name,
                                  "--memory-limit", WORKER_MEMORY, "--no-dashboard", "--death-timeout", "60",
                                  "--local-directory", str(folder)], log)
        deadline = time.monotonic() + 120
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(len(workers), timeout=120)
        yield address, procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster[0], timeout="60s") as c:
        yield c


def test_dask_sweep_is_bit_identical_to_the_local_run(reference, client, tmp_path):
    run = run_sweep(GRID, DIMS, SEEDS, client=client, cache_dir=tmp_path)
    assert (run.computed, run.reused) == (N_CELLS, 0)
    xr.testing.assert_identical(run.dataset, reference[0].dataset)
    assert cached_cells(tmp_path) == N_CELLS          # the workers stored every cell where told


def test_cli_scheduler_path_writes_the_same_netcdf(reference, cluster, tmp_path, capsys):
    from lowrank_icl.validation.cli.main import main
    out = tmp_path / "dask.nc"
    assert main(["sweep", *CLI_ARGS, "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                 "--scheduler", cluster[0], "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["cells"], summary["computed"], summary["reused"]) == (N_CELLS, N_CELLS, 0)
    assert summary["out"] == str(out) and summary["parameters"]["scheduler"] == cluster[0]
    assert "Dask scheduler tcp://127.0.0.1" in captured.err and f"{N_CELLS}/{N_CELLS} cells done" in captured.err
    with xr.open_dataset(out) as ds:
        xr.testing.assert_identical(ds.load(), reference[0].dataset)


def test_simulate_through_the_engine_hook_matches_local(client):
    """What `figures --scheduler` relies on: run_parallel inside use_engine runs on the cluster."""
    from lowrank_icl.validation.forward.simulate import simulate
    from lowrank_icl.validation.parallel import use_engine
    from lowrank_icl.validation.sweeps import DaskEngine
    kw = dict(rho=0.5, sigma=0.3, lam=0.1, seeds=[0, 1, 2])
    local = simulate(dim=16, alpha=2.0, tau=2.0, kappa=1.0, **kw)
    with use_engine(DaskEngine(client)):
        remote = simulate(dim=16, alpha=2.0, tau=2.0, kappa=1.0, workers=2, **kw)
    assert remote.errors().idg.values == local.errors().idg.values
    assert remote.q.values == local.q.values


def test_cells_larger_than_a_worker_are_refused(client, tmp_path):
    # D = 400, tau = 2: the data alone are 2 M D floats = 2 GiB, above the 1 GiB worker limit
    with pytest.raises(ValueError, match=r"needs about .* GiB, more than the 1.00 GiB one cell may use on the Dask"):
        run_sweep(dict(alpha=1, tau=2, kappa=1), [400], [0, 1], client=client, cache_dir=tmp_path)


def test_killed_worker_loses_and_duplicates_no_cell(reference, cluster, client, tmp_path):
    """SIGKILL worker w1 while cells run; its tasks move to w2 and the result is unchanged.
    Runs last in this module: it leaves one worker."""
    procs = cluster[1]
    box = {}

    def target():
        try:
            box["run"] = run_sweep(GRID, DIMS, SEEDS, client=client, cache_dir=tmp_path)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 120
    while cached_cells(tmp_path) < 3 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    stored_at_kill = cached_cells(tmp_path)
    os.killpg(procs["w1"].pid, signal.SIGKILL)
    procs["w1"].wait(timeout=30)
    thread.join(timeout=300)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    assert 3 <= stored_at_kill < N_CELLS, f"the kill did not land mid-sweep ({stored_at_kill}/{N_CELLS})"
    run = box["run"]
    assert (run.computed, run.reused) == (N_CELLS, 0)
    xr.testing.assert_identical(run.dataset, reference[0].dataset)
    assert cached_cells(tmp_path) == N_CELLS
    assert len(client.scheduler_info()["workers"]) == 1


# ------------------------------------------------------------------------------------- fault tolerance
# A worker may die at any moment, start-up included (while the sweep connects and installs its
# worker plugin). Each case below starts its own cluster, since a kill leaves it one worker short.

SMALL_GRID = dict(alpha=[1.0, 2.0], kappa=1.0, tau=2.0, rho=0.5, sigma=0.3, lam=0.1)
SMALL_DIMS, SMALL_SEEDS = [8, 12], [0, 1, 2]


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    return run_sweep(SMALL_GRID, SMALL_DIMS, SMALL_SEEDS, client=LocalEngine(workers=1),
                     cache_dir=tmp_path_factory.mktemp("small-reference")).dataset


def test_a_worker_dying_while_the_plugin_is_broadcast_is_survived(small_reference, tmp_path, monkeypatch):
    """The scheduler's broadcast of the BLAS plugin fails with "Stream is closed" when a worker dies
    during it; the sweep kills w1 at that moment, sees that error, and still finishes, unchanged."""
    from distributed.comm.core import CommClosedError
    with running_cluster(tmp_path) as (address, procs), distributed.Client(address, timeout="60s") as client:
        real = client.register_plugin
        calls = []

        def dying_broadcast(plugin, name=None, **kw):
            calls.append(name)
            if len(calls) == 1:
                os.killpg(procs["w1"].pid, signal.SIGKILL)
                procs["w1"].wait(timeout=30)
                raise CommClosedError("in <TCP (closed) ConnectionPool.plugin_add local=tcp://127.0.0.1>: "
                                      "Stream is closed")
            return real(plugin, name=name, **kw)

        monkeypatch.setattr(client, "register_plugin", dying_broadcast)
        run = run_sweep(SMALL_GRID, SMALL_DIMS, SMALL_SEEDS, client=client, cache_dir=tmp_path / "cache")
        assert len(calls) >= 2 and run.computed == run.cells == 12
        xr.testing.assert_identical(run.dataset, small_reference)


def _sweep_with_a_kill(folder, reference, kill_after: float):
    """Start a sweep through the scheduler address (the sweep makes its own client), SIGKILL w1
    ``kill_after`` seconds later, and check the sweep finishes with the reference's bits."""
    with running_cluster(folder) as (address, procs):
        box = {}

        def target():
            try:
                box["run"] = run_sweep(SMALL_GRID, SMALL_DIMS, SMALL_SEEDS, client=address, cache_dir=folder / "cache")
            except BaseException as exc:  # noqa: BLE001 - reported below
                box["error"] = exc

        thread = threading.Thread(target=target)
        thread.start()
        time.sleep(kill_after)
        os.killpg(procs["w1"].pid, signal.SIGKILL)
        procs["w1"].wait(timeout=30)
        thread.join(timeout=300)
        assert not thread.is_alive() and "error" not in box, (kill_after, box.get("error"))
        assert box["run"].cells == 12
        xr.testing.assert_identical(box["run"].dataset, reference)


def test_a_worker_killed_in_the_first_second_is_survived(small_reference, tmp_path):
    kill_after = random.Random().uniform(0.0, 1.0)
    _sweep_with_a_kill(tmp_path, small_reference, kill_after)


@pytest.mark.slow
@pytest.mark.parametrize("case", range(6))
def test_a_worker_killed_at_a_random_time_is_survived(small_reference, tmp_path, case):
    # two cases in the first second (connection and plugin registration), the others spread over the run
    kill_after = random.Random().uniform(0.0, 1.0 if case < 2 else 4.0)
    _sweep_with_a_kill(tmp_path, small_reference, kill_after)


@pytest.mark.slow
def test_the_dask_example_of_the_docs_runs_as_a_script(tmp_path):
    """docs/sweeps.md's python blocks saved as one script and run: the LocalCluster example needs its
    `if __name__ == "__main__":` guard, since the workers it starts import the script again."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "sweeps.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    script = tmp_path / "sweeps_example.py"
    script.write_text("\n".join(blocks))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "LOWRANK_ICL_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "cluster-cache").is_dir()        # the guarded block ran, on the cluster


def test_a_large_sweep_says_its_size_before_preparing_it(tmp_path):
    """2 x 100 x 100 points x 1 D x 1 seed = 20000 cells: the size comes first, before the theory."""
    import io
    stream = io.StringIO()
    grid = dict(alpha=list(np.linspace(1, 2, 100)), tau=list(np.linspace(2, 3, 100)), kappa=[1.0, 2.0])
    with pytest.raises(ValueError, match="needs about"):       # then refused: D = 3000 cannot fit
        run_sweep(grid, [3000], [0], cache_dir=tmp_path, progress=True, stream=stream)
    assert stream.getvalue().splitlines()[0] == "sweep: 20000 grid points, 20000 simulation cells"
