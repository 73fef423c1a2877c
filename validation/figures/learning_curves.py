"""Figure ``learning_curves``: gradient-flow learning curves, theory against the exact finite-D flow.

Four panels on both sides of kappa = rho and of tau = 1 (alpha = 2, rho = 0.5, sigma = 0.3,
lam = 0.05): the theory's TM, IDG and ODG errors for t in [1e-2, 1e3]
(:func:`lowrank_icl.numerics.forward.flow.flow_theory`) and the simulated errors of the exact
finite-D flow (:func:`lowrank_icl.validation.forward.flow.simulate_flow`) at a few times, extrapolated
in 1/D (sim - theory per seed, theory at the integer sizes' ratios; pass rule 3 SE).
"""
from __future__ import annotations

import numpy as np

from lowrank_icl.numerics.results import PROTOCOLS
from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure

BASE = dict(alpha=2.0, rho=0.5, sigma=0.3, lam=0.05)
PANELS = ((0.8, 2.0), (0.3, 2.0), (0.8, 0.7), (0.3, 0.7))   # (kappa, tau)


@figure("learning_curves", "gradient-flow learning curves: theory vs the exact finite-D flow (1/D extrapolated), "
                           "both sides of kappa = rho and tau = 1")
def build_learning_curves(out_dir, quick, progress, tiny=False):
    import matplotlib.pyplot as plt
    from lowrank_icl.numerics.forward.flow import flow_theory
    from lowrank_icl.validation.forward.flow import simulate_flow
    from lowrank_icl.validation.stats import compare, extrapolate

    if tiny:
        dims, n_seeds, sim_times = (6, 8), 3, np.array([0.3, 3.0])
    elif quick:
        dims, n_seeds, sim_times = (8, 12, 16), 20, np.array([0.1, 1.0, 10.0, 100.0])
    else:
        dims, n_seeds, sim_times = (16, 32, 64, 128), 20, np.array([0.01, 0.1, 1.0, 10.0, 100.0, 1000.0])
    curve_t = np.logspace(-2, 3, 40 if tiny else 200)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.8), sharey=False)
    header = ("kappa", "tau", "protocol", "time", "theory", "sim_extrapolated", "se", "z", "pass")
    rows = []
    colors = {"tm": "tab:blue", "idg": "tab:red", "odg": "tab:green"}
    for ax, (kappa, tau) in zip(axes, PANELS):
        progress(f"kappa={kappa} tau={tau}: theory")
        th = flow_theory(**BASE, kappa=kappa, tau=tau, time=curve_t).errors()
        for k in PROTOCOLS:
            ax.plot(curve_t, getattr(th, k), color=colors[k], label=k.upper())
        diffs, last = {}, None
        for D in dims:
            progress(f"kappa={kappa} tau={tau}: D={D}, {n_seeds} seeds")
            fl = simulate_flow(dim=D, **BASE, kappa=kappa, tau=tau, time=sim_times, seeds=range(n_seeds))
            s = fl.sizes
            th_d = flow_theory(alpha=s.alpha, tau=s.tau, kappa=s.kappa, rho=s.rho, sigma=BASE["sigma"],
                               lam=BASE["lam"], time=sim_times).errors(alpha_test=s.context_length / D)
            sim = fl.errors()
            diffs[D] = {k: np.asarray(getattr(sim, k).values) - getattr(th_d, k) for k in PROTOCOLS}
            last = fl
        th_pts = flow_theory(**BASE, kappa=kappa, tau=tau, time=sim_times).errors()
        for k in PROTOCOLS:
            for i, t in enumerate(sim_times):
                d = [diffs[D][k][:, i] for D in dims]
                ex = extrapolate(dims, [v.mean() for v in d], [v.std(ddof=1) / np.sqrt(v.size) for v in d])
                cmp = compare(0.0, ex)
                theory = float(getattr(th_pts, k)[i])
                rows.append((kappa, tau, k, float(t), theory, theory + ex.e_inf, ex.se, cmp.z,
                             "pass" if cmp.passed else "FAIL"))
                ax.errorbar(t, theory + ex.e_inf, yerr=ex.se, fmt="o", ms=3, color=colors[k])
            ax.plot(sim_times, np.asarray(getattr(last.errors(), k).mean), "x", ms=4, color=colors[k], alpha=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("training time t")
        ax.set_title(rf"$\kappa={kappa}$, $\tau={tau}$ ($\kappa {'>' if kappa > BASE['rho'] else '<'} \rho$)",
                     fontsize=9)
    axes[0].set_ylabel("test error")
    axes[0].plot([], [], "ko", ms=3, label="sim, 1/D extrapolated")
    axes[0].plot([], [], "kx", ms=4, alpha=0.5, label=f"sim, D={dims[-1]}")
    axes[0].legend(fontsize=7)
    fig.suptitle(rf"gradient flow from zero: $\alpha={BASE['alpha']}$, $\rho={BASE['rho']}$, "
                 rf"$\sigma={BASE['sigma']}$, $\lambda={BASE['lam']}$; D = {', '.join(map(str, dims))}, "
                 f"{n_seeds} seeds", fontsize=10)
    files = save_figure(fig, out_dir, "learning_curves", header, rows)
    plt.close(fig)
    n_pass = sum(r[-1] == "pass" for r in rows)
    caption = f"{n_pass}/{len(rows)} theory-vs-simulation checks within 3 SE"
    progress(caption)
    return FigureOutput("learning_curves", files, header, rows, caption)
