"""Phase-transition figures: the kappa = rho transition across alpha, the (kappa, rho) and
(tau, kappa) diagrams, pretraining design, the law of predictions and the crossover in simulation.

The model and its conventions are stated in docs/model.md. Every builder takes ``tiny=True`` for
smoke tests: the same code paths at sizes whose numbers mean nothing.
"""
from __future__ import annotations

import numpy as np
from lowrank_icl.numerics import crossover_scaling, phase_boundary, solve
from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure

# the setting of the alpha -> infinity transition: ridgeless (lam = 0), above interpolation (tau > 1), noisy labels
TRANSITION = dict(rho=0.3, tau=2.0, sigma=0.1, lam=0.0)


def idg_slope_limit(kappa, rho, tau, sigma):
    """alpha = infinity limit of e_IDG/alpha: (rho - kappa)_+ sigma^2 / (rho (tau - 1)(1 + sigma^2)).

    The leading term of e_IDG for kappa < rho at lam = 0, tau > 1 (docs/phase_transition.md); for
    kappa >= rho e_IDG stays O(1), so e_IDG/alpha -> 0."""
    return np.maximum(rho - kappa, 0.0) * sigma**2 / (rho * (tau - 1) * (1 + sigma**2))


@figure("phase_transition", "e_IDG/alpha and m0 vs kappa across alpha, with the alpha = infinity kink at kappa = rho")
def build_transition(out_dir, quick, progress, tiny=False):
    import matplotlib.pyplot as plt

    p = TRANSITION
    if tiny:
        alphas, kappa, scan = [1e2, 1e4], np.linspace(0.05, 0.6, 40), [1e2, 1e3, 1e4]
    elif quick:
        alphas, kappa, scan = [1e2, 1e3, 1e4, 1e6], np.linspace(0.05, 0.6, 600), [1e2, 1e3, 1e4, 1e5, 1e6]
    else:
        alphas = [1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
        kappa, scan = np.linspace(0.05, 0.6, 600), [1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
    progress("locating kappa* and the width")
    pb, wfit, kfit = crossover_scaling(alpha=scan, tau=p["tau"], rho=p["rho"], sigma=p["sigma"], lam=p["lam"])
    star = dict(zip(np.asarray(pb.alpha, float), np.asarray(pb.kappa_star, float)))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(alphas)))
    lowest = np.inf
    for a, col in zip(alphas, colors):
        res = solve(alpha=a, tau=p["tau"], kappa=kappa, rho=p["rho"], sigma=p["sigma"], lam=p["lam"])
        scaled = res.errors().idg / a
        lowest = min(lowest, float(np.min(scaled)))
        axes[0].plot(kappa, scaled, color=col, label=rf"$\alpha=10^{{{np.log10(a):.0f}}}$")
        axes[1].plot(kappa, res.m0, color=col)
        if a in star:   # kappa* as a dot on its own curve: vertical lines would hide kappa = rho
            at = solve(alpha=a, tau=p["tau"], kappa=star[a], rho=p["rho"], sigma=p["sigma"], lam=p["lam"])
            axes[0].plot(star[a], at.errors().idg / a, "o", color="red", ms=4, zorder=4)
            axes[1].plot(star[a], at.m0, "o", color="red", ms=4, zorder=4)
    axes[0].plot(kappa, idg_slope_limit(kappa, p["rho"], p["tau"], p["sigma"]), "k--", label=r"$\alpha=\infty$")
    axes[1].plot(kappa, np.minimum(kappa, p["rho"]) / p["rho"], "k--", label=r"$\alpha=\infty$: $\min(\kappa,\rho)/\rho$")
    for ax in axes:
        ax.axvline(p["rho"], color="k", lw=1.2, ls=(0, (1, 2)), zorder=3, label=r"$\kappa=\rho$")
        ax.plot([], [], "o", color="red", ms=4, label=r"$\kappa^*$")
        ax.set_xlabel(r"task diversity $\kappa = M_0/D$")
    axes[0].set_yscale("log")
    # room below the lowest plateau (largest alpha, kappa > rho), so no curve is clipped
    axes[0].set_ylim(lowest / 3, None)
    axes[0].set_ylabel(r"$e_{\mathrm{IDG}}/\alpha$")
    axes[1].set_ylabel(r"$m_0 = \mathrm{tr}(A^T\Gamma A)/r$")
    axes[0].legend(fontsize=6.5, loc="lower left", ncol=2, handlelength=1.5, columnspacing=0.8)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(rf"transition at $\kappa=\rho$: $\rho={p['rho']}$, $\tau={p['tau']}$, $\sigma={p['sigma']}$, "
                 rf"$\lambda={p['lam']}$")
    header = ("alpha", "kappa_star", "kappa_star_minus_rho", "width_ln_kappa", "slope_at_star", "e_idg_at_star",
              "converged")
    rows = [(float(a), float(k), float(k - p["rho"]), float(w), float(s), float(e), bool(c))
            for a, k, w, s, e, c in zip(pb.alpha, pb.kappa_star, pb.width, pb.slope, pb.error_at_star, pb.converged)]
    files = save_figure(fig, out_dir, "phase_transition", header, rows)
    plt.close(fig)
    caption = (f"kappa* -> rho and width ~ alpha^-b, b = {wfit} (fit over alpha = {scan[0]:.0e}..{scan[-1]:.0e}); "
               f"|kappa* - rho| ~ alpha^-{kfit.exponent:.2f}")
    progress(caption)
    return FigureOutput("phase_transition", files, header, rows, caption)


@figure("phase_diagram_kappa_rho", "log10 e_IDG over (kappa, rho) at moderate and large alpha, with kappa = rho and kappa*(rho)")
def build_kappa_rho(out_dir, quick, progress, tiny=False):
    import matplotlib.pyplot as plt

    p = TRANSITION
    n = 20 if tiny else 120 if quick else 300
    kappa = np.logspace(-1.5, 0.5, n)
    rho = np.linspace(0.02, 1.0, n)
    alphas = (1e1, 1e4)
    rho_line = np.linspace(0.05, 0.95, 3 if tiny else 7 if quick else 19)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    rows = []
    for ax, a in zip(axes, alphas):
        res = solve(alpha=a, tau=p["tau"], kappa=kappa[None, :], rho=rho[:, None], sigma=p["sigma"], lam=p["lam"])
        img = ax.pcolormesh(kappa, rho, np.log10(res.errors().idg), shading="auto", cmap="magma")
        fig.colorbar(img, ax=ax, label=r"$\log_{10} e_{\mathrm{IDG}}$")
        on = kappa <= 1.0
        ax.plot(kappa[on], kappa[on], "w--", lw=1, label=r"$\kappa=\rho$")
        ks = [phase_boundary(alpha=a, tau=p["tau"], rho=r, sigma=p["sigma"], lam=p["lam"]).kappa_star for r in rho_line]
        ax.plot(ks, rho_line, "co", ms=4, label=r"$\kappa^*(\rho)$")
        rows += [(a, float(r), float(k)) for r, k in zip(rho_line, ks)]
        ax.set_xscale("log")
        ax.set_xlim(kappa[0], kappa[-1])
        ax.set_ylim(rho[0], rho[-1])
        ax.set_xlabel(r"$\kappa = M_0/D$")
        ax.set_title(rf"$\alpha = {a:g}$")
        ax.legend(fontsize=8, loc="upper left")
    axes[0].set_ylabel(r"$\rho = r/D$")
    fig.suptitle(rf"IDG error over task diversity and task rank: $\tau={p['tau']}$, $\sigma={p['sigma']}$, $\lambda=0$")
    header = ("alpha", "rho", "kappa_star")
    files = save_figure(fig, out_dir, "phase_diagram_kappa_rho", header, rows)
    plt.close(fig)
    return FigureOutput("phase_diagram_kappa_rho", files, header, rows,
                        "the crossover kappa*(rho) follows kappa = rho, sharper at large alpha")


@figure("prediction_distribution", "law of (y, yhat) on IDG/ODG test prompts: theory Gaussian vs simulated histograms")
def build_prediction_distribution(out_dir, quick, progress, tiny=False):
    import matplotlib.pyplot as plt
    from lowrank_icl.numerics import ForwardParams, prediction_law
    from lowrank_icl.validation.forward.crossover_checks import check_prediction_law

    p = ForwardParams(alpha=4.0, tau=1.2, kappa=3.0, rho=0.5, sigma=0.9, lam=0.1)  # the low-rank paper's first set
    if tiny:
        dims, seeds, n_test = (6, 8, 10), range(3), 200
    else:
        dims, seeds, n_test = ((12, 24, 48), range(6), 3000) if quick else ((24, 48, 96), range(8), 5000)
    res = solve(alpha=p.alpha, tau=p.tau, kappa=p.kappa, rho=p.rho, sigma=p.sigma, lam=p.lam)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = []
    for ax, protocol in zip(axes, ("idg", "odg")):
        chk = check_prediction_law(dims, p, seeds, protocol, n_test, progress=progress)
        law = prediction_law(res, protocol)
        y, yhat = chk.samples
        grid = np.linspace(-4, 4, 400) * np.sqrt(float(law.var_yhat))
        ax.hist(yhat, bins=80, density=True, alpha=0.5, label=rf"simulated $\hat y$, $D={dims[-1]}$")
        ax.plot(grid, np.exp(-grid**2 / (2 * law.var_yhat)) / np.sqrt(2 * np.pi * law.var_yhat), "C0-",
                label=rf"theory $N(0, {float(law.var_yhat):.3f})$")
        resid = y - yhat
        ax.hist(resid, bins=80, density=True, alpha=0.4, color="C3", label=r"simulated $y-\hat y$")
        e = float(law.error)
        g2 = np.linspace(-4, 4, 400) * np.sqrt(e)
        ax.plot(g2, np.exp(-g2**2 / (2 * e)) / np.sqrt(2 * np.pi * e), "C3-", label=rf"theory $N(0, e={e:.3f})$")
        ax.set_title(f"{protocol.upper()}: corr(y, yhat) theory {float(law.correlation):.3f}, KS p = {chk.ks_pvalue:.2g}")
        ax.set_xlabel("value")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, loc="upper right")
        rows += [(protocol, *r, chk.ks_pvalue, "/".join(map(str, dims))) for r in chk.rows]
    fig.suptitle(r"prediction law: $\alpha=4,\ \tau=1.2,\ \kappa=3,\ \rho=0.5,\ \sigma=0.9,\ \lambda=0.1$")
    header = ("protocol", "quantity", "theory", "e_inf", "se", "z", "pass", "ks_pvalue_at_max_D", "dims")
    files = save_figure(fig, out_dir, "prediction_distribution", header, rows)
    plt.close(fig)
    return FigureOutput("prediction_distribution", files, header, rows,
                        "E yhat^2 and E y yhat extrapolated in D vs theory (3-SE rule); excess kurtosis -> 0")


@figure("phase_diagram_tau_kappa", "(tau, kappa) at lam = 0: interpolation line tau = 1 and the memorization-to-generalization crossover")
def build_tau_kappa(out_dir, quick, progress, tiny=False):
    import matplotlib.pyplot as plt

    rho, sigma, alpha = 0.3, 0.3, 10.0
    n = 20 if tiny else 150 if quick else 400
    tau = np.logspace(-1, 1.5, n)
    kappa = np.logspace(-1.5, 1, n)
    res = solve(alpha=alpha, tau=tau[None, :], kappa=kappa[:, None], rho=rho, sigma=sigma, lam=0.0)
    err = res.errors()
    # memorization: the model does much better on the pool tasks than on fresh tasks of the subspace
    ratio = np.log10(err.idg / err.tm)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    img0 = axes[0].pcolormesh(tau, kappa, np.log10(err.idg), shading="auto", cmap="magma")
    fig.colorbar(img0, ax=axes[0], label=r"$\log_{10} e_{\mathrm{IDG}}$")
    img1 = axes[1].pcolormesh(tau, kappa, ratio, shading="auto", cmap="coolwarm")
    fig.colorbar(img1, ax=axes[1], label=r"$\log_{10}(e_{\mathrm{IDG}}/e_{\mathrm{TM}})$")
    cs = axes[1].contour(tau, kappa, ratio, levels=[np.log10(2.0)], colors="k", linewidths=1.2)
    rows = [(float(v[0]), float(v[1])) for seg in cs.allsegs[0] for v in seg[:: max(1, len(seg) // 40)]]
    for ax in axes:
        ax.axvline(1.0, color="w" if ax is axes[0] else "k", ls="--", lw=1, label=r"$\tau=1$ (interpolation)")
        ax.axhline(rho, color="c", ls=":", lw=1.2, label=r"$\kappa=\rho$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\tau = M/D^2$")
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel(r"$\kappa = M_0/D$")
    axes[1].set_title(r"black: $e_{\mathrm{IDG}} = 2\, e_{\mathrm{TM}}$ (memorization below it, generalization above)", fontsize=9)
    fig.suptitle(rf"$\lambda = 0$, $\alpha={alpha:g}$, $\rho={rho}$, $\sigma={sigma}$")
    header = ("tau_on_contour", "kappa_on_contour")
    files = save_figure(fig, out_dir, "phase_diagram_tau_kappa", header, rows)
    plt.close(fig)
    return FigureOutput("phase_diagram_tau_kappa", files, header, rows[:10],
                        "contour e_IDG = 2 e_TM separates memorization (few tasks) from generalization")


@figure("pretraining_design", "optimal context length at fixed prompts, and optimal token split, vs kappa and rho")
def build_design(out_dir, quick, progress, tiny=False):
    import matplotlib.pyplot as plt
    from lowrank_icl.numerics import optimal_context_length, optimal_token_allocation

    sigma, tau = 0.3, 2.0
    rhos = (0.1, 0.3, 0.6, 1.0)
    kappas = np.logspace(-1.3, 0.3, 3 if tiny else 12 if quick else 30)
    alpha = np.logspace(-1, 4, 30 if tiny else 300)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), gridspec_kw={"wspace": 0.45})
    rho0 = 0.3
    kappa_map = np.logspace(-1.3, 0.3, 20 if tiny else 200)
    res = solve(alpha=alpha[None, :], tau=tau, kappa=kappa_map[:, None], rho=rho0, sigma=sigma, lam=0.0)
    img = axes[0].pcolormesh(alpha, kappa_map, np.log10(res.errors().idg), shading="auto", cmap="magma")
    fig.colorbar(img, ax=axes[0], label=r"$\log_{10} e_{\mathrm{IDG}}$")
    rows = []
    for rho in rhos:
        opt = [optimal_context_length(tau=tau, kappa=k, rho=rho, sigma=sigma) for k in kappas]
        a_star = np.array([o.alpha if not o.at_boundary else np.nan for o in opt])
        axes[1].plot(kappas, a_star, "o-", ms=3, label=rf"$\rho={rho}$")
        if rho == rho0:
            axes[0].plot(a_star, kappas, "c.-", label=r"$\alpha^*(\kappa)$")
        rows += [("fixed_tau", rho, float(k), o.alpha, o.tau, o.tau * o.alpha, o.error, o.at_boundary)
                 for k, o in zip(kappas, opt)]
    axes[0].axhline(rho0, color="w", ls=":", lw=1)
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel(r"$\alpha = L/D$")
    axes[0].set_ylabel(r"$\kappa$")
    axes[0].set_title(rf"$e_{{\mathrm{{IDG}}}}$ non-monotone in $\alpha$ ($\rho={rho0}$, $\tau={tau}$)", fontsize=9)
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel(r"$\kappa$")
    axes[1].set_ylabel(r"optimal context $\alpha^*$ (none: $\alpha^*=\infty$)")
    axes[1].set_title(rf"fixed prompts $\tau={tau}$, $\lambda=0$", fontsize=9)
    axes[1].legend(fontsize=8, loc="upper left")
    budgets = (10.0, 30.0, 100.0)
    rho_grid = np.linspace(0.05, 1.0, 3 if tiny else 8 if quick else 20)
    for b in budgets:
        opt = [optimal_token_allocation(b, kappa=1.0, rho=r, sigma=sigma) for r in rho_grid]
        axes[2].plot(rho_grid, [o.alpha for o in opt], "o-", ms=3, label=rf"$\tau\alpha={b:g}$")
        rows += [("token_budget", float(r), 1.0, o.alpha, o.tau, o.tau * o.alpha, o.error, o.at_boundary)
                 for r, o in zip(rho_grid, opt)]
    axes[2].set_xlabel(r"task rank $\rho$")
    axes[2].set_ylabel(r"optimal context $\alpha^*$ (prompts $\tau = B/\alpha^*$)")
    axes[2].set_title(r"fixed token budget $B=\tau\alpha$, $\kappa=1$, $\lambda=0$", fontsize=9)
    axes[2].legend(fontsize=8, loc="upper right")
    fig.suptitle(rf"pretraining design for $e_{{\mathrm{{IDG}}}}$ ($\sigma={sigma}$)")
    # token_budget = tau * alpha = (prompts x context length) / D^3, the pretraining tokens per D^3
    header = ("design", "rho", "kappa", "alpha_star", "tau", "token_budget", "e_idg", "at_boundary")
    files = save_figure(fig, out_dir, "pretraining_design", header, rows)
    plt.close(fig)
    return FigureOutput("pretraining_design", files, header, [r for r in rows if r[0] == "token_budget"],
                        "finite optimal context for kappa < rho; the optimal token split moves with rho")


@figure("crossover_simulation", "simulated e_IDG vs kappa across the crossover at several alpha, simulated vs theoretical kappa*")
def build_crossover_simulation(out_dir, quick, progress, tiny=False):
    import matplotlib.pyplot as plt
    from lowrank_icl.validation.forward.crossover_checks import check_crossover

    tau, rho, sigma = 2.0, 0.5, 0.3
    if tiny:
        dim, seeds, alphas, n_points = 10, range(3), (2.0,), 5
    elif quick:
        dim, seeds, alphas, n_points = 24, range(4), (2.0, 8.0), 7
    else:
        dim, seeds, alphas, n_points = 64, range(8), (2.0, 8.0, 32.0), 13
    n_tasks = np.unique(np.round(np.geomspace(0.2 * dim, 1.25 * dim, n_points)).astype(int))
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    rows = []
    for i, a in enumerate(alphas):
        chk = check_crossover(dim, a, tau, rho, sigma, n_tasks, seeds, workers=1 if tiny else 2, progress=progress)
        k_fine = np.geomspace(chk.kappa[0], chk.kappa[-1], 300)
        e_fine = solve(alpha=a, tau=tau, kappa=k_fine, rho=rho, sigma=sigma, lam=0.0).errors().idg
        col = f"C{i}"
        ax.plot(k_fine, e_fine, color=col, label=rf"theory $\alpha={a:g}$")
        ax.errorbar(chk.kappa, chk.e_mean, yerr=chk.e_sem, fmt="o", color=col, ms=4, capsize=2,
                    label=rf"simulation $\alpha={a:g}$")
        ax.axvspan(chk.kappa_star_sim - chk.kappa_star_se, chk.kappa_star_sim + chk.kappa_star_se, color=col, alpha=0.15)
        ax.axvline(chk.kappa_star_theory, color=col, ls="--", lw=1)
        rows.append((dim, a, chk.kappa_star_sim, chk.kappa_star_se, chk.kappa_star_theory_grid, chk.kappa_star_theory,
                     chk.z, chk.passed))
    ax.axvline(rho, color="k", ls=":", lw=1, label=r"$\kappa=\rho$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\kappa = M_0/D$")
    ax.set_ylabel(r"$e_{\mathrm{IDG}}$")
    ax.set_title(rf"crossover: $\tau={tau}$, $\rho={rho}$, $\sigma={sigma}$, $\lambda=0$; points: mean $\pm$ SE at "
                 rf"$D={dim}$ ({len(seeds)} seeds, not extrapolated)" "\n"
                 r"band: simulated $\kappa^*\pm$SE; dashed: theory $\kappa^*$", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    header = ("dim", "alpha", "kappa_star_sim", "se_bootstrap", "kappa_star_theory_on_grid", "kappa_star_theory",
              "z", "pass")
    files = save_figure(fig, out_dir, "crossover_simulation", header, rows)
    plt.close(fig)
    return FigureOutput("crossover_simulation", files, header, rows,
                        "simulated steepest point vs theory with the same grid estimator (3-SE rule)")
