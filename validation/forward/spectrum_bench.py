r"""Speed of the general-spectrum solver (``lowrank-icl bench`` section "spectrum").

Target: a 1,000-atom spectrum (power law, exponent 0.6) on a 10^4-point grid (alpha x kappa, 100 x 100,
tau = 0.5 and lam = 1e-3 so that both the inner and the outer equation are solved) in under 1 s.
Baselines measured in the same run, per evaluation point:

* ``naive``: nested scalar root solves per point (scipy brentq on G(u), a brentq on the inner
  equation at every G evaluation, g' by the same formula), on a subset of the points;
* ``sampled``: the sampled-resolvent estimator of the published alignment code (d = 100, 10 sampled
  pools per point, lam = 0), on a subset of the points.
"""
from __future__ import annotations

import time

import numpy as np
from scipy.optimize import brentq

from lowrank_icl.numerics import TaskSpectrum, solve
from lowrank_icl.validation.bench import ratio_text, seconds_text, time_ratio
from lowrank_icl.validation.forward.alignment_reference import sampled_resolvent_error

GRID = {"tau": 0.5, "sigma": 0.1, "lam": 1e-3}
# the sampled-resolvent baseline of the speed section: dimension, sampled pools per estimate, atoms
SAMPLED_BASELINE = {"dim": 100, "draws": 10, "atoms": 100}


def _naive_point(alpha, tau, kappa, sigma, lam, spec):
    s, p = spec.train, spec.weights
    c = (1 + sigma**2) / alpha

    def g_of(nu):
        d = brentq(lambda d: d - (1 / kappa) * np.dot(p, s * (1 + d) / (s + nu * (1 + d))), 0.0,
                   1.0 / (kappa * nu) + 1.0, xtol=1e-300, rtol=1e-15)
        return np.dot(p, (1 + d) / (s + nu * (1 + d)))

    def G(u):
        return tau - 1 + u * g_of(c + u) - lam * kappa / u

    hi = 1.0
    while G(hi) < 0:
        hi *= 2
    return brentq(G, 1e-300, hi, xtol=1e-300, rtol=1e-15)


def spectrum_speed(atoms: int = 1000, points: int = 10_000, baseline_points: int = 20) -> dict:
    """Seconds for the vectorized solver on the grid and per-point seconds of the two baselines."""
    spec = TaskSpectrum.power_law(0.6, atoms=atoms)
    side = int(round(np.sqrt(points)))
    alpha, kappa = np.meshgrid(np.logspace(-1, 3, side), np.logspace(-1, 1, side), indexing="ij")
    solve(alpha=1.0, tau=GRID["tau"], kappa=1.0, sigma=GRID["sigma"], lam=GRID["lam"], spectrum=spec)  # compile
    t0, c0 = time.perf_counter(), time.process_time()
    res = solve(alpha=alpha, tau=GRID["tau"], kappa=kappa, sigma=GRID["sigma"], lam=GRID["lam"], spectrum=spec)
    grid_s, grid_cpu = time.perf_counter() - t0, time.process_time() - c0
    pick = np.linspace(0, alpha.size - 1, baseline_points).astype(int)
    a_sub, k_sub = alpha.ravel()[pick], kappa.ravel()[pick]
    t0 = time.perf_counter()
    for a, k in zip(a_sub, k_sub):
        _naive_point(a, GRID["tau"], k, GRID["sigma"], GRID["lam"], spec)
    naive_s = (time.perf_counter() - t0) / baseline_points
    b = SAMPLED_BASELINE
    t0 = time.perf_counter()
    for i, (a, k) in enumerate(zip(a_sub, k_sub)):
        sampled_resolvent_error(a, GRID["tau"], k, GRID["sigma"], TaskSpectrum.power_law(0.6, atoms=b["atoms"]),
                                dim=b["dim"], draws=b["draws"], rng=i)
    sampled_s = (time.perf_counter() - t0) / baseline_points
    per_point = grid_s / alpha.size
    return {"atoms": atoms, "points": int(alpha.size), "grid_seconds": grid_s, "grid_cpu_seconds": grid_cpu,
            "converged": int(np.sum(res.converged)), "max_residual": float(np.max(res.residual)),
            "per_point_seconds": per_point, "baseline_points": int(baseline_points),
            "naive_per_point_seconds": naive_s, "sampled_per_point_seconds": sampled_s,
            "sampled_dim": b["dim"], "sampled_draws": b["draws"], "sampled_atoms": b["atoms"],
            "ratio_naive": time_ratio(naive_s, per_point), "ratio_sampled": time_ratio(sampled_s, per_point)}


def print_spectrum_speed(report: dict, stream) -> None:
    r = report
    print(f"general spectrum: {r['atoms']} atoms x {r['points']} points (tau={GRID['tau']}, lam={GRID['lam']}): "
          f"{seconds_text(r['grid_seconds'])} wall ({seconds_text(r['grid_cpu_seconds'])} CPU), "
          f"{r['converged']}/{r['points']} converged, max residual {r['max_residual']:.1e}", file=stream)
    print(f"  per point: {r['per_point_seconds'] * 1e6:.3g} us; baselines per point (mean of {r['baseline_points']} "
          f"points): naive nested root solve {seconds_text(r['naive_per_point_seconds'])} "
          f"({ratio_text(r['naive_per_point_seconds'], r['per_point_seconds'])}); sampled-resolvent estimator "
          f"(d={r['sampled_dim']}, {r['sampled_draws']} pools, {r['sampled_atoms']} atoms) "
          f"{seconds_text(r['sampled_per_point_seconds'])} "
          f"({ratio_text(r['sampled_per_point_seconds'], r['per_point_seconds'])})", file=stream, flush=True)


def letey_side_by_side(repeats: int = 20, dim: int = 100, draws: int = 10) -> list[dict]:
    """Our exact lam = 0 test error beside the sampled-resolvent estimator of the published alignment
    code (``repeats`` independent estimates, each averaging ``draws`` pools at dimension ``dim``), at the
    same points; with the per-point time of each measured here."""
    alpha, kappa, sigma = 3.0, 0.5, 0.3
    spectra = {f"power:0.6 ({dim} atoms)": TaskSpectrum.power_law(0.6, atoms=dim),
               "lowrank:0.3, test at theta=0.6": TaskSpectrum.low_rank(0.3).subspace_test(0.3, 0.6),
               "approx-lowrank:0.3,0.05 aligned": TaskSpectrum.approx_low_rank(0.3, 0.05, test="aligned")}
    rows = []
    for name, spec in spectra.items():
        for tau in (0.5, 2.6):
            exact = float(solve(alpha=alpha, tau=tau, kappa=kappa, sigma=sigma, lam=0.0, spectrum=spec).errors().odg)
            t0 = time.perf_counter()  # timed after a first call (one-time sympy compilation excluded)
            for _ in range(10):
                solve(alpha=alpha, tau=tau, kappa=kappa, sigma=sigma, lam=0.0, spectrum=spec).errors()
            ours_s = (time.perf_counter() - t0) / 10
            t0 = time.perf_counter()
            est = np.array([sampled_resolvent_error(alpha, tau, kappa, sigma, spec, dim=dim, draws=draws, rng=r)
                            for r in range(repeats)])
            theirs_s = (time.perf_counter() - t0) / repeats
            sd = float(est.std(ddof=1))
            rows.append({"spectrum": name, "alpha": alpha, "tau": tau, "kappa": kappa, "sigma": sigma,
                         "dim": int(dim), "draws": int(draws), "repeats": int(repeats),
                         "exact": exact, "sampled_mean": float(est.mean()), "sampled_std": sd,
                         "sampled_bias_in_sd": float((est.mean() - exact) / sd) if sd > 0 else None,
                         "ours_seconds": ours_s, "sampled_seconds": theirs_s, "ratio": time_ratio(theirs_s, ours_s)})
    return rows


def print_letey_side_by_side(rows, stream) -> None:
    """The table of :func:`letey_side_by_side`, with the sizes it ran and what its offset column means."""
    r0 = rows[0]
    print(f"lam = 0: our exact test error beside the sampled-resolvent estimator of the published alignment code "
          f"(d={r0['dim']}, {r0['draws']} sampled pools per estimate, {r0['repeats']} estimates per row):",
          file=stream)
    print(f"  {'spectrum':34s} {'tau':>4s} {'exact':>10s} {'sampled mean':>12s} {'sd':>8s} {'offset/sd':>9s} "
          f"{'speed ratio (sampled/exact)':>28s}", file=stream)
    for r in rows:
        offset = "n/a" if r["sampled_bias_in_sd"] is None else f"{r['sampled_bias_in_sd']:.1f}"
        print(f"  {r['spectrum']:34s} {r['tau']:>4g} {r['exact']:>10.6f} {r['sampled_mean']:>12.6f} "
              f"{r['sampled_std']:>8.1e} {offset:>9s} {ratio_text(r['sampled_seconds'], r['ours_seconds']):>28s}",
              file=stream)
    print(f"  offset/sd = (sampled mean - exact) / sd of one estimate. It describes the sampled estimator, not "
          f"an error of\n  the exact solution: the exact value is the d -> infinity limit, and an estimate at "
          f"d={r0['dim']} from {r0['draws']} pools carries\n  a finite-d bias (it shrinks as d grows, not with more "
          f"estimates)\n  and sampling noise ({r0['repeats']} estimates give the sd itself to about "
          f"{100 / np.sqrt(2 * max(r0['repeats'] - 1, 1)):.0f}%).", file=stream, flush=True)


__all__ = ["spectrum_speed", "print_spectrum_speed", "letey_side_by_side", "print_letey_side_by_side"]
