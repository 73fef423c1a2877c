r"""Forward figures: theory curves (numerics.solve) with simulation points.

The model, its proportional limits and the test protocols are stated in docs/model.md.

Every simulated point is run at several D (several seeds each), extrapolated in 1/D by weighted
least squares (validation.stats.extrapolate) and drawn as e_inf +- SE(e_inf) (filled markers); the
mean at the largest D is drawn as an open marker; every legend says which is which. Each figure's
table lists, per point, the extrapolated value, its SE, the theory and whether
|e_inf - theory| <= 3 SE.

1. ``forward_alpha_test`` -- TM/IDG/ODG errors vs test context ratio alpha_t (the
   low-rank paper's parameter set).
2. ``forward_order_parameters`` -- q, m, q_bar, m_bar, q0, m0 vs kappa (the low-rank
   paper's parameter set).
3. ``forward_rank_transition`` -- TM/IDG/ODG vs kappa for several rho: the kappa = rho transition.
4. ``forward_double_descent`` -- full-rank (rho = 1) double descent in tau for alpha in {1, 10, 100},
   in the conventions of Lu et al. (ForwardParams.from_full_rank).
5. ``forward_decomposition`` -- IDG error split into signal / noise-T / noise-R (theory) with the
   simulated signal and total noise (pool_repeats = 3: E[Gamma | pool] vs its fluctuations).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lowrank_icl.numerics import ForwardParams, solve
from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure
from lowrank_icl.validation.forward.simulate import collect, make_jobs, run_jobs
from lowrank_icl.validation.parallel import available_cores
from lowrank_icl.validation.stats import compare, extrapolate
from lowrank_icl.numerics.results import PROTOCOLS

TABLE_HEADER = ("point", "quantity", "dims", "e_inf", "se", "theory", "z", "pass", "mean_at_max_D", "sem_at_max_D")
COLORS = {"tm": "tab:blue", "idg": "tab:orange", "odg": "tab:green", "q": "tab:blue", "m": "tab:cyan",
          "q_bar": "tab:green", "m_bar": "tab:olive", "q0": "tab:red", "m0": "tab:pink"}


@dataclass(frozen=True)
class Budget:
    dims: tuple
    seeds: tuple
    workers: int = 2        # processes for the trainings


# Smoke-test size (``tiny=True``): exercises every code path in seconds; the numbers mean nothing.
TINY = Budget((6, 8, 10), (0, 1, 2), workers=1)


def _budget(quick: bool, quick_dims, full_dims, quick_seeds=6, full_seeds=5, tiny=False) -> Budget:
    if tiny:
        return TINY
    return Budget(tuple(quick_dims), tuple(range(quick_seeds))) if quick else \
        Budget(tuple(full_dims), tuple(range(full_seeds)))


def _cache_dir(out_dir):
    """The per-seed simulation cache: the user cache folder (``figures --cache-dir``), never inside
    ``out_dir``; None under ``--no-cache``."""
    from lowrank_icl.validation.cache import active_cache_dir
    return active_cache_dir()


def _simulate_points(points: list[ForwardParams], budget: Budget, progress, pool_repeats=1, cache_dir=None):
    """All (point, D, seed) jobs in one pool of 2 processes; returns {(i, D): SimulationResult}."""
    jobs, where = [], []
    for i, p in enumerate(points):
        for D in budget.dims:
            js = make_jobs(D, p, budget.seeds, pool_repeats=pool_repeats)
            jobs += js
            where += [(i, D)] * len(js)
    progress(f"{len(jobs)} trainings ({len(points)} points x D in {list(budget.dims)} x {len(budget.seeds)} seeds)")
    results = run_jobs(jobs, workers=min(budget.workers, available_cores()), progress=progress, cache_dir=cache_dir)
    out = {}
    for i, p in enumerate(points):
        for D in budget.dims:
            rs = [r for r, w in zip(results, where) if w == (i, D)]
            out[(i, D)] = collect(D, p, budget.seeds, rs)
    return out


def _extrapolated(sims, i, dims, getter, theory_at=None):
    """Extrapolation over D of the Estimate getter(sim) at point i, plus the largest-D estimate.

    ``theory_at(sim)`` (optional) is the theory at the ratios the sim actually used (integer sizes,
    integer test context) and ``theory_at(None)`` the theory at the nominal point; each mean is
    shifted by their difference before the fit, which removes the rounding of L, M, M0, r, L~
    (a non-1/D, oscillating offset) from the extrapolation.
    """
    ests = [getter(sims[(i, D)]) for D in dims]
    means = np.array([e.mean for e in ests])
    if theory_at is not None:
        nominal = float(theory_at(None))
        means = means - np.array([float(theory_at(sims[(i, D)])) - nominal for D in dims])
    ex = extrapolate(dims, means, [e.sem for e in ests])
    return ex, ests[-1]


def _theory_errors(p: dict, protocol: str, alpha_test=None, sigma_test=None):
    """theory_at for an error: solve at the sim's effective ratios (or the nominal point for None)."""
    def at(sim):
        if sim is None:
            return getattr(solve(**p).errors(alpha_test, sigma_test), protocol)
        eff = sim.effective_params()
        return getattr(solve(**_params_dict(eff)).errors(sim.effective_alpha_test(alpha_test), sigma_test), protocol)
    return at


def _theory_order(p: dict, name: str):
    def at(sim):
        q = solve(**(p if sim is None else _params_dict(sim.effective_params())))
        return getattr(q, name)
    return at


def _row(label, quantity, dims, ex, theory, last):
    c = compare(theory, ex)
    return [label, quantity, "/".join(str(d) for d in dims), ex.e_inf, ex.se, float(theory), c.z,
            "yes" if c.passed else "NO", last.mean, last.sem]


def _plot_points(ax, x, ex_list, last_list, color, label=None):
    ax.errorbar(x, [e.e_inf for e in ex_list], yerr=[e.se for e in ex_list], fmt="o", color=color,
                ms=5, capsize=3, label=label)
    ax.plot(x, [e.mean for e in last_list], "o", mfc="none", color=color, ms=6, alpha=0.7)


def _marker_legend(ax, budget: Budget, **kwargs):
    """Legend of the series already labelled on ``ax`` plus two grey entries saying which markers are
    extrapolated in 1/D (filled, with error bars) and which are raw means at the largest D (open)."""
    from matplotlib.lines import Line2D
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], ls="none", marker="o", color="0.35", ms=5),
                Line2D([], [], ls="none", marker="o", mfc="none", color="0.35", ms=6)]
    labels += [r"filled: $D\to\infty$ (1/D fit) $\pm$ 1 SE", f"open: mean at $D={budget.dims[-1]}$"]
    ax.legend(handles, labels, **kwargs)


def _caption_sim(budget: Budget) -> str:
    return (f"Filled points: simulation extrapolated to D -> infinity by a 1/D fit over D = "
            f"{', '.join(map(str, budget.dims))} ({len(budget.seeds)} seeds each; error bars 1 SE of e_inf); "
            f"open circles: raw mean at D = {budget.dims[-1]} (not extrapolated).")


def _finish(fig, out_dir, name, rows, caption):
    files = save_figure(fig, out_dir, name, TABLE_HEADER, rows)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return FigureOutput(name=name, files=files, header=TABLE_HEADER, rows=rows, caption=caption)


# ----------------------------------------------------------------------------------------------

FIG1 = dict(alpha=4.0, tau=1.2, kappa=3.0, rho=0.5, sigma=0.9, lam=0.1)


def _error_series(sims, points, idx, dims, k, rows, label):
    """1/D-extrapolated error ``k`` at the simulated points ``idx``, with one table row each
    (labelled ``label(i)``) appended to ``rows``; returns (extrapolations, means at the largest D)."""
    exs, lasts = [], []
    for i in idx:
        ex, last = _extrapolated(sims, i, dims, lambda s, k=k: getattr(s.errors(), k),
                                 _theory_errors(_params_dict(points[i]), k))
        exs.append(ex)
        lasts.append(last)
        theory = getattr(solve(**_params_dict(points[i])).errors(), k)
        rows.append(_row(label(i), f"e_{k}", dims, ex, theory, last))
    return exs, lasts


@figure("forward_alpha_test", "TM/IDG/ODG test error vs test context ratio alpha_t (theory + simulation)")
def build_alpha_test(out_dir, quick, progress, tiny=False) -> FigureOutput:
    import matplotlib.pyplot as plt
    p = FIG1
    budget = _budget(quick, (32, 48, 64), (64, 128, 256), tiny=tiny)
    sol = solve(**p)
    grid = np.geomspace(0.1 * p["alpha"], 4 * p["alpha"], 200)
    th = sol.errors(alpha_test=grid, sigma_test=0.0)
    sim_at = np.array([0.4, 1.0, 2.0, 4.0, 8.0, 16.0])
    sims = _simulate_points([ForwardParams(**p)], budget, progress, cache_dir=_cache_dir(out_dir))
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    rows = []
    for k in PROTOCOLS:
        ax.plot(grid, getattr(th, k), color=COLORS[k], label=f"{k.upper()} theory")
        exs, lasts = [], []
        for a_t in sim_at:
            ex, last = _extrapolated(sims, 0, budget.dims, lambda s, a_t=a_t, k=k: getattr(s.errors(a_t, 0.0), k),
                                     _theory_errors(p, k, a_t, 0.0))
            exs.append(ex)
            lasts.append(last)
            rows.append(_row(f"alpha_t={a_t:g}", f"e_{k}", budget.dims, ex,
                             getattr(sol.errors(alpha_test=a_t, sigma_test=0.0), k), last))
        _plot_points(ax, sim_at, exs, lasts, COLORS[k], f"{k.upper()} simulation")
    ax.set_xscale("log")
    ax.set_xlabel(r"test context ratio $\alpha_t = \tilde L / D$")
    ax.set_ylabel(r"test error $e$")
    ax.set_title(r"$\alpha=4,\ \tau=1.2,\ \kappa=3,\ \rho=0.5,\ \sigma=0.9,\ \lambda=0.1,\ \sigma_t=0$", fontsize=10)
    _marker_legend(ax, budget, fontsize=8, ncol=2)
    caption = ("Test error vs test context length for the low-rank model (the low-rank paper's set). Lines: "
               "theory (numerics.solve). " + _caption_sim(budget))
    return _finish(fig, out_dir, "forward_alpha_test", rows, caption)


FIG2 = dict(alpha=2.3, tau=1.7, rho=0.2, sigma=0.003, lam=3.0)
ORDER = ("q", "m", "q_bar", "m_bar", "q0", "m0")
ORDER_LABELS = {"q": r"$q$", "m": r"$m$", "q_bar": r"$\bar q$", "m_bar": r"$\bar m$", "q0": r"$q_0$", "m0": r"$m_0$"}


@figure("forward_order_parameters", "order parameters q, m, q_bar, m_bar, q0, m0 vs kappa (theory + simulation)")
def build_order_parameters(out_dir, quick, progress, tiny=False) -> FigureOutput:
    import matplotlib.pyplot as plt
    p = FIG2
    budget = _budget(quick, (20, 30, 40), (48, 96, 192), tiny=tiny)
    grid = np.linspace(0.25, 2.0, 200)
    th = solve(kappa=grid, **p)
    kappas = [0.5, 1.0, 2.0] if quick else [0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    sims = _simulate_points([ForwardParams(kappa=k, **p) for k in kappas], budget, progress,
                            cache_dir=_cache_dir(out_dir))
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    rows = []
    for name in ORDER:
        ax.plot(grid, getattr(th, name), color=COLORS[name], label=ORDER_LABELS[name])
        exs, lasts = [], []
        for i, kap in enumerate(kappas):
            ex, last = _extrapolated(sims, i, budget.dims, lambda s, name=name: getattr(s, name),
                                     _theory_order({**p, "kappa": kap}, name))
            exs.append(ex)
            lasts.append(last)
            rows.append(_row(f"kappa={kap:g}", name, budget.dims, ex, getattr(solve(kappa=kap, **p), name), last))
        _plot_points(ax, kappas, exs, lasts, COLORS[name])
    ax.set_xlabel(r"task diversity $\kappa = M_0 / D$")
    ax.set_ylabel("order parameter")
    ax.set_title(r"$\alpha=2.3,\ \tau=1.7,\ \rho=0.2,\ \sigma=0.003,\ \lambda=3$", fontsize=10)
    _marker_legend(ax, budget, fontsize=8, ncol=3)
    caption = ("Order parameters of the trained Gamma vs task diversity (the low-rank paper's set): lines theory; "
               + _caption_sim(budget))
    return _finish(fig, out_dir, "forward_order_parameters", rows, caption)


FIG3 = dict(alpha=16.0, tau=2.0, sigma=0.5, lam=1e-4)
FIG3_RHOS = (0.25, 0.5, 0.75)


@figure("forward_rank_transition", "TM/IDG/ODG vs kappa across rho: the kappa = rho transition")
def build_rank_transition(out_dir, quick, progress, tiny=False) -> FigureOutput:
    import matplotlib.pyplot as plt
    p = FIG3
    budget = _budget(quick, (24, 32, 48), (64, 128, 192), tiny=tiny)
    grid = np.geomspace(0.05, 2.0, 240)
    rel = (0.5, 2.0) if quick else (0.4, 1.0, 2.0)       # simulated kappa / rho
    points, labels = [], []
    for rho in FIG3_RHOS:
        for f in rel:
            points.append(ForwardParams(kappa=f * rho, rho=rho, **p))
            labels.append((rho, f * rho))
    sims = _simulate_points(points, budget, progress, cache_dir=_cache_dir(out_dir))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=False)
    rows = []
    shades = dict(zip(FIG3_RHOS, (0.45, 0.7, 1.0)))
    for ax, k in zip(axes, PROTOCOLS):
        for rho in FIG3_RHOS:
            err = getattr(solve(kappa=grid, rho=rho, **p).errors(), k)
            color = plt.get_cmap("viridis")(shades[rho] * 0.85)
            ax.plot(grid, err, color=color, label=fr"$\rho={rho:g}$ theory")
            ax.axvline(rho, color=color, ls=":", lw=0.8)
            idx = [i for i, (r_, _) in enumerate(labels) if r_ == rho]
            exs, lasts = _error_series(sims, points, idx, budget.dims, k, rows,
                                       lambda i: f"rho={rho:g} kappa={labels[i][1]:g}")
            _plot_points(ax, [labels[i][1] for i in idx], exs, lasts, color)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"task diversity $\kappa = M_0/D$ (dotted: $\kappa=\rho$)")
        ax.set_ylabel(fr"$e_{{\rm {k.upper()}}}$")
        ax.set_title(f"{k.upper()}: " + r"$\alpha=16,\ \tau=2,\ \sigma=0.5,\ \lambda=10^{-4}$", fontsize=10)
        if k == PROTOCOLS[0]:
            _marker_legend(ax, budget, fontsize=7)
        else:
            ax.legend(fontsize=7)
    fig.tight_layout()
    caption = ("Errors vs task diversity for three rank ratios: IDG (middle) stays O(1) for kappa > rho and "
               "grows for kappa < rho (the low-rank transition at M0 = r, dotted lines); lines theory. "
               + _caption_sim(budget))
    return _finish(fig, out_dir, "forward_rank_transition", rows, caption)


FIG4_LU = dict(kappa=0.5, rho_lu=0.01, lam_lu=1e-5)
FIG4_ALPHAS = (1.0, 10.0, 100.0)


@figure("forward_double_descent", "full-rank double descent in tau for alpha in {1, 10, 100} (Lu et al. conventions)")
def build_double_descent(out_dir, quick, progress, tiny=False) -> FigureOutput:
    import matplotlib.pyplot as plt
    budget = _budget(quick, (16, 24, 32), (48, 64, 96), tiny=tiny)
    grid = np.geomspace(0.1, 10, 300)
    sim_taus = (0.4, 2.5) if quick else (0.3, 0.6, 1.6, 3.0)
    points, labels = [], []
    for a in FIG4_ALPHAS:
        for t in sim_taus:
            points.append(ForwardParams.from_full_rank(alpha=a, tau=t, **FIG4_LU))
            labels.append((a, t))
    sims = _simulate_points(points, budget, progress, cache_dir=_cache_dir(out_dir))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = []
    # their e_ICL is our ODG (= IDG at rho = 1), their e_IDG our TM
    for ax, (k, name) in zip(axes, (("odg", r"$e_{\rm ICL}$ (ODG)"), ("tm", r"$e_{\rm IDG}^{\rm Lu}$ (TM)"))):
        for j, a in enumerate(FIG4_ALPHAS):
            color = plt.get_cmap("plasma")(0.15 + 0.3 * j)
            th = getattr(solve(**_params_dict(ForwardParams.from_full_rank(alpha=a, tau=grid, **FIG4_LU))).errors(), k)
            ax.plot(grid, th, color=color, label=fr"$\alpha={a:g}$")
            idx = [i for i, (a_, _) in enumerate(labels) if a_ == a]
            exs, lasts = _error_series(sims, points, idx, budget.dims, k, rows,
                                       lambda i: f"alpha={a:g} tau={labels[i][1]:g}")
            _plot_points(ax, [labels[i][1] for i in idx], exs, lasts, color)
        ax.axvline(1.0, color="gray", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"pretraining prompts $\tau = M / D^2$")
        ax.set_ylabel(name)
        ax.set_title(r"full rank: $\kappa=0.5,\ \rho_{\rm Lu}=\sigma^2=0.01,\ \lambda_{\rm Lu}=10^{-5}$", fontsize=10)
        _marker_legend(ax, budget, fontsize=8)
    fig.tight_layout()
    caption = ("Full-rank double descent (Lu et al. conventions: noise variance rho_Lu = 0.01, ridge "
               "lam_Lu = 1e-5 = lam kappa / tau): ICL (= our ODG) and their IDG (= our TM) vs tau, peak at "
               "the interpolation threshold tau = 1. " + _caption_sim(budget))
    return _finish(fig, out_dir, "forward_double_descent", rows, caption)


def _params_dict(p: ForwardParams) -> dict:
    return {k: getattr(p, k) for k in ForwardParams.field_names()}


FIG5 = dict(alpha=4.0, kappa=3.0, rho=0.5, sigma=0.9, lam=0.1)


@figure("forward_decomposition", "IDG error split into signal / noise-T / noise-R vs tau (theory + simulation)")
def build_decomposition(out_dir, quick, progress, tiny=False) -> FigureOutput:
    import matplotlib.pyplot as plt
    p = FIG5
    budget = _budget(quick, (16, 24, 32), (48, 96, 128), tiny=tiny)
    grid = np.geomspace(0.3, 20, 200)
    taus = (0.5, 2.0) if quick else (0.5, 1.0, 2.0, 5.0)
    parts = _error_parts_theory(grid, p)
    points = [ForwardParams(tau=t, **p) for t in taus]
    sims = _simulate_points(points, budget, progress, pool_repeats=3, cache_dir=_cache_dir(out_dir))
    fig, ax = plt.subplots(figsize=(8.6, 4.4))
    ax.stackplot(grid, parts["signal"], parts["noise_T"], parts["noise_R"],
                 colors=("tab:blue", "tab:orange", "tab:green"), alpha=0.35,
                 labels=("signal (theory)", "noise-T (theory)", "noise-R (theory)"))
    ax.plot(grid, parts["signal"] + parts["noise_T"] + parts["noise_R"], color="k", lw=1, label=r"$e_{\rm IDG}$ theory")
    ax.plot(grid, parts["signal"], color="tab:blue", lw=1)
    rows = []
    series = {"total": ("k", lambda s: s.errors().idg),
              "signal": ("tab:blue", lambda s: s.error_parts()["idg"]["signal"]),
              "noise": ("tab:red", lambda s: s.error_parts()["idg"]["noise"])}
    for name, (color, getter) in series.items():
        exs, lasts = [], []
        for i, t in enumerate(taus):
            ex, last = _extrapolated(sims, i, budget.dims, getter, _theory_parts({**p, "tau": t}, name))
            exs.append(ex)
            lasts.append(last)
            th = _error_parts_theory(np.array([t]), p)
            th_val = {"total": th["signal"] + th["noise_T"] + th["noise_R"], "signal": th["signal"],
                      "noise": th["noise_T"] + th["noise_R"]}[name][0]
            rows.append(_row(f"tau={t:g}", f"idg_{name}", budget.dims, ex, th_val, last))
        _plot_points(ax, taus, exs, lasts, color, f"{name} (simulation)")
    theory_noise = parts["noise_T"] + parts["noise_R"]
    ax.plot(grid, theory_noise, color="tab:red", lw=1, ls="--", label="noise-T + noise-R (theory)")
    ax.set_xscale("log")
    ax.set_xlabel(r"pretraining prompts $\tau = M/D^2$")
    ax.set_ylabel(r"IDG error and its parts")
    ax.set_title(r"$\alpha=4,\ \kappa=3,\ \rho=0.5,\ \sigma=0.9,\ \lambda=0.1$", fontsize=10)
    _marker_legend(ax, budget, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # outside: no point hidden
    caption = ("Decomposition of the IDG error: signal carried by the mean weights plus the noise from finite "
               "pretraining prompts (noise-T) and finite contexts (noise-R); both noise parts vanish as tau grows. "
               "Simulation: 3 independent prompt draws per pool separate E[Gamma | pool] (signal) from its "
               "fluctuation (noise). " + _caption_sim(budget))
    return _finish(fig, out_dir, "forward_decomposition", rows, caption)


def _theory_parts(point: dict, name: str):
    """theory_at for the decomposition series "total", "signal", "noise" (noise = noise-T + noise-R)."""
    def at(sim):
        q = point if sim is None else _params_dict(sim.effective_params())
        parts = _error_parts_theory(np.asarray(q["tau"], float), {k: v for k, v in q.items() if k != "tau"})
        return {"total": parts["signal"] + parts["noise_T"] + parts["noise_R"], "signal": parts["signal"],
                "noise": parts["noise_T"] + parts["noise_R"]}[name]
    return at


def _error_parts_theory(taus, p) -> dict:
    """IDG error parts: signal = s_t^2 + 1 - 2 m0 + q0_sig + (1 + s_t^2) q_bar_sig / alpha_t, noise
    parts = q0_part + (1 + s_t^2) q_bar_part / alpha_t, at the training alpha and sigma."""
    sol = solve(tau=taus, **p)
    dec = sol.decomposition()
    s2, a = 1 + p["sigma"] ** 2, p["alpha"]
    return {"signal": p["sigma"] ** 2 + 1 - 2 * sol.m0 + dec.q0.signal + s2 * dec.q_bar.signal / a,
            "noise_T": dec.q0.noise_T + s2 * dec.q_bar.noise_T / a,
            "noise_R": dec.q0.noise_R + s2 * dec.q_bar.noise_R / a}
