r"""``lowrank-icl bench``: speed and memory of training one Gamma_hat.

1. D = 64, tau = 2 (alpha = 2, kappa = 1, rho = 0.5, sigma = 0.3, lam = 0.1): the automatic solver
   vs the dense direct primal solve (the published approach: M x D^2 design, D^2 x D^2 normal
   matrix, Cholesky) on the SAME sampled data in the same process; prints both times, the speed
   ratio and the difference of their exact IDG test errors.
2. D = 128, 256 (and 512 with ``--large``): sampling + automatic solve, each in a fresh process,
   reporting seconds, the peak of numpy-traced memory (tracemalloc) and the process peak RSS
   (resource.getrusage ru_maxrss).
3. The forward solver (:func:`forward_speed`): a 100 x 100 (alpha, kappa) grid at lam > 0 solved by the
   reduced method and by the published damped iteration (the baseline), both in this run: seconds
   (best of three) and their ratio.
4. General task spectra (:mod:`lowrank_icl.validation.forward.spectrum_bench`): a 1,000-atom spectrum
   on a 10^4-point grid against per-point baselines measured in the same run, and the lam = 0 values
   beside the sampled-resolvent estimator of the published alignment code.

``run_bench(dims=..., ratio_dim=...)`` chooses other sizes (``dims=[8], ratio_dim=8`` is a smoke run);
every size is checked against the memory and time limits of
:mod:`lowrank_icl.validation.forward.resources` before it starts. The report is a JSON document
(``parameters``, ``version``, ``speed_ratio``, ``sizes``, ``forward``, ``spectrum``,
``spectrum_vs_sampled_resolvent``). ``lowrank-icl bench --quick`` runs every section at small sizes
(:data:`QUICK_SPECTRUM_SIZES`) and labels each line with the sizes it ran. A ratio is printed only
from two measured, non-zero times (:func:`ratio_text`; "n/a" with the reason otherwise).
"""
from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
import tracemalloc

from lowrank_icl.theory import SecondMoment, exact_test_error
from lowrank_icl.validation.forward.resources import check_resources
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import sample_pretraining, sizes
from lowrank_icl.validation.io import json_document

BENCH_POINT = {"alpha": 2.0, "tau": 2.0, "kappa": 1.0, "rho": 0.5, "sigma": 0.3, "lam": 0.1}


def seconds_text(seconds: float) -> str:
    """A wall or CPU time for the tables: milliseconds below one second, three significant digits."""
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def ratio_text(slow: float, fast: float) -> str:
    """The speed ratio ``slow / fast`` as text ("15x", "6.8x", "0.31x").

    A time that is zero or not finite (below the clock's resolution, or not measured) gives
    "n/a" with that reason instead of a ratio, so that no table shows a "0x" or "infx".
    """
    if not (math.isfinite(slow) and math.isfinite(fast)) or slow <= 0 or fast <= 0:
        return "n/a (a time was zero or not measured)"
    ratio = slow / fast
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


def time_ratio(slow: float, fast: float) -> float | None:
    """``slow / fast`` for the JSON report; None where :func:`ratio_text` prints "n/a"."""
    return slow / fast if math.isfinite(slow) and math.isfinite(fast) and slow > 0 and fast > 0 else None


def _idg_error(fit, data):
    s = data.sizes
    return float(exact_test_error(fit.gamma, SecondMoment.subspace(data.subspace), s.context_length,
                                  data.sigma))


def one_run(dim: int, method: str = "auto", seed: int = 0) -> dict:
    """Sample and train once at ``dim`` with ``method``; seconds and memory of this process."""
    p = BENCH_POINT
    s = sizes(dim, p["alpha"], p["tau"], p["kappa"], p["rho"])
    tracemalloc.start()
    t0 = time.perf_counter()
    data = sample_pretraining(s, p["sigma"], seed)
    t1 = time.perf_counter()
    fit = fit_ridge(data.x, data.h, data.y, p["lam"], s.n_tasks, method=method)
    t2 = time.perf_counter()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"D": dim, "M": s.n_prompts, "weights": dim * dim, "method": fit.method,
            "sample_s": t1 - t0, "solve_s": t2 - t1, "total_s": t2 - t0, "iterations": fit.iterations,
            "residual": fit.residual, "converged": fit.converged, "e_idg": _idg_error(fit, data),
            "traced_peak_mb": peak / 2**20, "max_rss_mb": rss_kb / 1024}


def speed_ratio(dim: int = 64, seed: int = 0) -> dict:
    """Auto solver vs dense primal on the same data, same process (the 5x target at D = 64)."""
    p = BENCH_POINT
    s = sizes(dim, p["alpha"], p["tau"], p["kappa"], p["rho"])
    data = sample_pretraining(s, p["sigma"], seed)
    out = {}
    for label, method in (("auto", "auto"), ("dense_primal", "primal")):
        t0 = time.perf_counter()
        fit = fit_ridge(data.x, data.h, data.y, p["lam"], s.n_tasks, method=method)
        out[label] = {"seconds": time.perf_counter() - t0, "method": fit.method,
                      "iterations": fit.iterations, "residual": fit.residual, "e_idg": _idg_error(fit, data)}
    out["ratio"] = time_ratio(out["dense_primal"]["seconds"], out["auto"]["seconds"])
    out["idg_difference"] = abs(out["auto"]["e_idg"] - out["dense_primal"]["e_idg"])
    return out


def _fresh_process(dim: int, timeout: float) -> dict:
    cmd = [sys.executable, "-c",
           "import json,sys; from lowrank_icl.validation.bench import one_run; "
           f"print(json.dumps(one_run({int(dim)})))"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ValueError(f"bench at D={dim} did not finish within {timeout:g} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"bench at D={dim} failed in its process: {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# sizes of the solver sections in a smoke run (``lowrank-icl bench --quick``)
QUICK_SPECTRUM_SIZES = {"speed": {"atoms": 20, "points": 100, "baseline_points": 2},
                        "side_by_side": {"repeats": 2, "dim": 8, "draws": 2},
                        "forward": {"side": 10}}

FORWARD_GRID = {"tau": 2.0, "rho": 0.5, "sigma": 0.3, "lam": 0.1}


def forward_speed(side: int = 100, repeats: int = 5) -> dict:
    """The reduced solver against the published damped iteration on a side x side grid, same run.

    alpha in [0.1, 1e3] and kappa in [0.1, 10] (log-spaced), tau = 2, rho = 0.5, sigma = 0.3, lam = 0.1.
    After one warm-up call each (one-time sympy compilation excluded) the two methods are timed
    alternately ``repeats`` times; the best wall time and the best CPU time (process_time, less
    sensitive to other jobs on a shared machine) count. Returns seconds, converged counts,
    iterations and the ratios damped/reduced of wall and CPU time.
    """
    import numpy as np

    from lowrank_icl.numerics import solve

    alpha, kappa = np.meshgrid(np.logspace(-1, 3, side), np.logspace(-1, 1, side), indexing="ij")
    out = {"side": int(side), "points": int(alpha.size), **FORWARD_GRID}
    methods = ("reduced", "damped")
    best = {m: [float("inf"), float("inf")] for m in methods}
    last = {}
    for method in methods:
        solve(alpha=1.0, kappa=1.0, method=method, **FORWARD_GRID)
    for _ in range(repeats):
        for method in methods:
            t0, c0 = time.perf_counter(), time.process_time()
            last[method] = solve(alpha=alpha, kappa=kappa, method=method, **FORWARD_GRID)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best[method] = [min(best[method][0], wall), min(best[method][1], cpu)]
    for method in methods:
        res = last[method]
        out[method] = {"seconds": best[method][0], "cpu_seconds": best[method][1],
                       "converged": int(np.sum(res.converged)), "mean_iterations": float(np.mean(res.iterations)),
                       "max_iterations": int(np.max(res.iterations))}
    out["ratio"] = time_ratio(out["damped"]["seconds"], out["reduced"]["seconds"])
    out["cpu_ratio"] = time_ratio(out["damped"]["cpu_seconds"], out["reduced"]["cpu_seconds"])
    return out


def print_forward_speed(r: dict, stream) -> None:
    print(f"forward solver, {r['side']} x {r['side']} (alpha, kappa) grid, tau={r['tau']:g} rho={r['rho']:g} "
          f"sigma={r['sigma']:g} lam={r['lam']:g}:", file=stream)
    for method in ("reduced", "damped"):
        m = r[method]
        print(f"  {method:8s} {m['seconds'] * 1e3:8.1f} ms wall {m['cpu_seconds'] * 1e3:8.1f} ms CPU  converged "
              f"{m['converged']}/{r['points']}  iterations mean {m['mean_iterations']:.1f} max {m['max_iterations']}",
              file=stream)
    wall = ratio_text(r["damped"]["seconds"], r["reduced"]["seconds"])
    cpu = ratio_text(r["damped"]["cpu_seconds"], r["reduced"]["cpu_seconds"])
    print(f"  speed ratio damped/reduced: {wall} wall, {cpu} CPU", file=stream, flush=True)


def run_bench(dims=(128, 256), ratio_dim: int = 64, as_json: bool = False, stream=None,
              timeout: float = 3600, large: bool = False, spectrum_sizes: dict | None = None) -> dict:
    """Run the benchmark, print its table (unless ``as_json``) and return the JSON document.

    ``spectrum_sizes`` ({"speed": kwargs of spectrum_speed, "side_by_side": kwargs of
    letey_side_by_side, "forward": kwargs of forward_speed}) shrinks the solver sections
    (:data:`QUICK_SPECTRUM_SIZES`)."""
    stream = stream if stream is not None else sys.stdout
    dims = [int(d) for d in dims] + ([512] if large and 512 not in dims else [])
    p = BENCH_POINT
    check_resources([sizes(ratio_dim, p["alpha"], p["tau"], p["kappa"], p["rho"])], method="primal",
                    what="bench (dense primal)")
    check_resources([sizes(d, p["alpha"], p["tau"], p["kappa"], p["rho"]) for d in dims], what="bench")
    ratio = speed_ratio(ratio_dim)
    if not as_json:
        r = ratio
        print(f"D={ratio_dim} tau=2 ({BENCH_POINT}):", file=stream)
        print(f"  auto ({r['auto']['method']}, {r['auto']['iterations']} it): {seconds_text(r['auto']['seconds'])}",
              file=stream)
        print(f"  dense direct primal: {seconds_text(r['dense_primal']['seconds'])}", file=stream)
        print(f"  speed ratio dense/auto: {ratio_text(r['dense_primal']['seconds'], r['auto']['seconds'])}   "
              f"|e_IDG(auto) - e_IDG(dense)| = "
              f"{r['idg_difference']:.1e}", file=stream, flush=True)
        print(f"{'D':>5} {'weights':>8} {'prompts':>8} {'method':>8} {'iter':>5} {'sample s':>9} "
              f"{'solve s':>8} {'total s':>8} {'traced MB':>10} {'maxRSS MB':>10} {'e_IDG':>8}", file=stream, flush=True)
    rows = []
    for dim in dims:
        r = _fresh_process(dim, timeout)
        rows.append(r)
        if not as_json:
            print(f"{r['D']:>5} {r['weights']:>8} {r['M']:>8} {r['method']:>8} {r['iterations']:>5} "
                  f"{r['sample_s']:>9.2f} {r['solve_s']:>8.2f} {r['total_s']:>8.2f} {r['traced_peak_mb']:>10.0f} "
                  f"{r['max_rss_mb']:>10.0f} {r['e_idg']:>8.4f}", file=stream, flush=True)
    report = {"speed_ratio": ratio, "sizes": rows}
    from lowrank_icl.validation.forward.spectrum_bench import (letey_side_by_side, print_letey_side_by_side,
                                                               print_spectrum_speed, spectrum_speed)
    spectrum_sizes = dict(spectrum_sizes or {})
    report["forward"] = forward_speed(**spectrum_sizes.get("forward", {}))
    if not as_json:
        print_forward_speed(report["forward"], stream)
    report["spectrum"] = spectrum_speed(**spectrum_sizes.get("speed", {}))
    report["spectrum_vs_sampled_resolvent"] = letey_side_by_side(**spectrum_sizes.get("side_by_side", {}))
    if not as_json:
        print_spectrum_speed(report["spectrum"], stream)
        print_letey_side_by_side(report["spectrum_vs_sampled_resolvent"], stream)
    return json_document({"point": BENCH_POINT, "ratio_dim": int(ratio_dim), "dims": dims,
                          "spectrum_sizes": spectrum_sizes}, report)


# --- inverse ICL: the LT training kernel ---------------------------------------------------------
INVERSE_BENCH_POINT = {"d": 100, "N": 50, "r": 10, "sigma": 0.1, "cond": 1.0, "K": 4}


def _best_of(fun, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fun()
        best = min(best, time.perf_counter() - t0)
    return best


def run_inverse_bench(n_s: int = 10_000, loss: str = "supervised", converge: bool = True, repeats: int = 3,
                      rtol: float = 1e-6, threads: int = 2, as_json: bool = False, stream=sys.stdout) -> dict:
    """LT training at d = 100, N = 50, K = 4: the baseline trainer vs the default one, same data, same process.

    Prints a table unless ``as_json``; returns the JSON document (``parameters``, ``version``, results).

    Per evaluation (best of ``repeats``, at the 'gd' starting point): the reference kernel
    (whole-array passes, float64, one BLAS thread, as the baseline trainer runs it) against the
    fast kernel in float64 and float32 on one thread, and in float32 on ``threads`` threads.

    To convergence (``converge``): the baseline trainer (reference kernel, float64, 'gd' start,
    plain L-BFGS) against the default trainer (fast float32 kernel finished in float64, 'auto'
    start, 'auto' input whitening, ``threads`` threads), both stopped by the same criterion
    (relative loss decrease < ``rtol`` over 10 L-BFGS iterations); prints seconds, iterations,
    final loss and the ratios.
    """
    import numpy as np

    from lowrank_icl.numerics.inverse import LT, InverseModel, InverseParams, LTObjective
    from lowrank_icl.numerics.inverse.lt import lt_loss_and_grad_reference
    from lowrank_icl.numerics.utils import single_threaded_blas

    p = INVERSE_BENCH_POINT
    K = p["K"]
    params = InverseParams(d=p["d"], N=p["N"], r=p["r"], sigma=p["sigma"], cond=p["cond"], n_s=n_s)
    rng = np.random.default_rng(0)
    data = InverseModel.draw(params, rng).sample(n_s, rng)
    lt = LT(K=K, loss=loss, init="gd")
    X, Y, kwargs = lt.training_inputs(data.X, data.Y, data.W)
    theta = lt.initial_theta(X, Y, kwargs.get("W"))
    d = p["d"]
    parameters = {**p, "n_s": n_s, "loss": loss, "rtol": rtol, "converge": converge, "threads": threads}
    report = {"per_evaluation_s": {}}
    say = (lambda *a: None) if as_json else (lambda *a: print(*a, file=stream, flush=True))
    say(f"inverse LT, one loss+gradient evaluation: d={d} N={p['N']} n_s={n_s} K={K} loss={loss}")
    with single_threaded_blas():
        ref = _best_of(lambda: lt_loss_and_grad_reference(theta, d, K, loss, X, Y, **kwargs), repeats)
        report["per_evaluation_s"]["reference"] = ref
        say(f"  reference kernel (whole-array passes, float64, 1 thread): {ref:.3f} s")
        for name, dtype, workers in (("fast_float64", np.float64, 1), ("fast_float32", np.float32, 1),
                                     (f"fast_float32_{threads}_threads", np.float32, threads)):
            obj = LTObjective(X, Y, K=K, loss=loss, dtype=dtype, workers=workers, **kwargs)
            t = _best_of(lambda: obj(theta), repeats)
            report["per_evaluation_s"][name] = t
            say(f"  fast kernel ({np.dtype(dtype).name}, {workers} thread{'s' if workers > 1 else ''}): {t:.3f} s"
                f"   ratio {ref / t:.2f}x")
    if converge:
        report["to_convergence"] = {}
        for name, kw in (("baseline", dict(kernel="reference", init="gd", precondition=False)),
                         ("default", dict(kernel="fast", dtype=np.float32, workers=threads))):
            fit = LT(K=K, loss=loss, rtol=rtol, **kw).fit(data.X, data.Y, data.W).train_
            report["to_convergence"][name] = {"seconds": fit.seconds, "iterations": fit.iterations,
                                              "evaluations": fit.evaluations, "loss": fit.loss,
                                              "converged": fit.converged, "init": fit.init, "stop": fit.message}
            say(f"  to convergence, {name}: {fit.seconds:.1f} s, {fit.iterations} iterations, "
                f"{fit.evaluations} evaluations, start '{fit.init}', final loss {fit.loss:.6g}, "
                f"converged={fit.converged}")
        c = report["to_convergence"]
        report["to_convergence"]["ratio"] = c["baseline"]["seconds"] / c["default"]["seconds"]
        report["to_convergence"]["loss_ratio"] = c["default"]["loss"] / c["baseline"]["loss"]
        say(f"  time-to-convergence ratio baseline/default: {report['to_convergence']['ratio']:.2f}x; "
            f"final loss default/baseline: {report['to_convergence']['loss_ratio']:.4f}")
    return json_document(parameters, report)
