"""General task spectra: approximately low-rank transitions, power-law exponents, pretrain-test alignment."""
from __future__ import annotations

import numpy as np
from scipy import stats

from lowrank_icl.numerics import TaskSpectrum, solve
from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure

TRANSITION = dict(rho=0.3, tau=2.0, sigma=0.1, lam=0.0)
POWER = dict(tau=4.0, kappa=4.0, sigma=0.0, lam=0.0)
ALIGN = dict(alpha=10.0, tau=2.0, sigma=0.1, lam=0.0, rho=0.3)
# grid sizes of --quick (tests shrink them further)
QUICK = dict(transition_points=1500, power_atoms=20_000, align_thetas=19)


def slope_dip(kappa, err, window):
    """Steepest point of log e vs log kappa inside ``window`` and the full width (in ln kappa) at half
    depth of the slope dip, on the grid (resolution: the grid step)."""
    x, f = np.log(kappa), np.log(err)
    s = np.gradient(f, x)
    inside = np.flatnonzero((kappa >= window[0]) & (kappa <= window[1]))
    i = inside[np.argmin(s[inside])]
    lo = hi = i
    while lo > 0 and s[lo] < s[i] / 2:
        lo -= 1
    while hi < s.size - 1 and s[hi] < s[i] / 2:
        hi += 1
    return kappa[i], x[hi] - x[lo], s[i]


@figure("spectra_transition", "approximately low-rank tasks: the kappa = rho transition vs the floor and alpha")
def build_transition(out_dir, quick, progress):
    import matplotlib.pyplot as plt

    p = TRANSITION
    kappa = np.exp(np.linspace(np.log(0.05), np.log(3.0), QUICK["transition_points"] if quick else 6000))
    floors = [0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    alphas = [1e2, 1e4, 1e6] if quick else [1e2, 1e3, 1e4, 1e5, 1e6]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(floors)))
    rows = []
    for a in alphas:
        base_width = depth0 = None
        for fl, col in zip(floors, colors):
            res = solve(alpha=a, tau=p["tau"], kappa=kappa, sigma=p["sigma"], lam=p["lam"],
                        spectrum=TaskSpectrum.approx_low_rank(p["rho"], fl))
            if not np.all(res.converged):
                raise RuntimeError("solver did not converge on the transition grid")
            e = res.errors().idg
            k_rho, w_rho, s_rho = slope_dip(kappa, e, (p["rho"] / 3, np.sqrt(p["rho"])))
            k_all, _w, s_all = slope_dip(kappa, e, (kappa[1], kappa[-2]))
            base_width = w_rho if fl == 0 else base_width
            c = (1 + p["sigma"] ** 2) / a
            depth0 = s_rho if fl == 0 else depth0
            rows.append((a, fl, fl / c, k_rho, w_rho, w_rho / base_width, s_rho, s_rho / depth0, k_all, s_all))
            if a == alphas[-1]:
                axes[0].loglog(kappa, e, color=col, label=f"floor={fl:g}")
        progress(f"alpha={a:.0e} done")
    axes[0].axvline(p["rho"], color="grey", ls=":", lw=0.8)
    axes[0].axvline(1.0, color="grey", ls=":", lw=0.8)
    axes[0].set_xlabel(r"task diversity $\kappa$")
    axes[0].set_ylabel(r"$e_{\mathrm{IDG}}$")
    axes[0].set_title(rf"$\alpha=10^{{{np.log10(alphas[-1]):.0f}}}$ (dotted: $\kappa=\rho$, $\kappa=1$)", fontsize=10)
    axes[0].legend(fontsize=7)
    arr = np.array([r[:7] for r in rows], dtype=float)
    for a, col in zip(alphas, plt.cm.viridis(np.linspace(0, 0.9, len(alphas)))):
        sel = (arr[:, 0] == a) & (arr[:, 1] > 0)
        depth0 = arr[(arr[:, 0] == a) & (arr[:, 1] == 0), 6][0]
        axes[1].loglog(arr[sel, 2], arr[sel, 6] / depth0, "o-", color=col, label=rf"$\alpha=10^{{{np.log10(a):.0f}}}$")
    axes[1].axhline(0.9, color="grey", ls="--", lw=0.8)
    axes[1].axvline(0.1, color="grey", ls=":", lw=0.8)
    axes[1].set_xlabel(r"floor / $c$,  $c=(1+\sigma^2)/\alpha$ (implicit ridge)")
    axes[1].set_ylabel(r"depth of the drop at $\kappa\approx\rho$ / depth at floor 0")
    axes[1].legend(fontsize=8)
    fig.suptitle(rf"rank $r$ + isotropic floor: $\rho={p['rho']}$, $\tau={p['tau']}$, $\sigma={p['sigma']}$, "
                 rf"$\lambda={p['lam']}$")
    header = ("alpha", "floor", "floor_over_c", "kappa_star_near_rho", "width_near_rho", "width_ratio",
              "slope_near_rho", "depth_ratio", "kappa_star_global", "slope_global")
    files = save_figure(fig, out_dir, "spectra_transition", header, rows)
    plt.close(fig)
    return FigureOutput("spectra_transition", files, header, rows,
                        "depth ratio >= 0.9 while floor/c <~ 0.1; the steepest drop moves to kappa = 1 for large floors")


def fit_exponent(x, y):
    """Slope of log y vs log x with a 95% t-interval: (slope, lo, hi)."""
    fit = stats.linregress(np.log(x), np.log(y))
    t = stats.t.ppf(0.975, len(x) - 2)
    return fit.slope, fit.slope - t * fit.stderr, fit.slope + t * fit.stderr


@figure("spectra_power_law", "power-law task spectra: error exponents in alpha and kappa vs the spectrum exponent")
def build_power_law(out_dir, quick, progress):
    import matplotlib.pyplot as plt

    p = POWER
    exponents = [-4.0, -2.0, -1.0, 0.0, 0.6] if quick else [-4.0, -3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.3, 0.6, 0.9]
    atoms = QUICK["power_atoms"] if quick else 100_000
    alphas = np.logspace(4, 8, 9)
    one_minus_kappa = np.logspace(-3, -1, 9)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(exponents)))
    rows = []
    for a, col in zip(exponents, colors):
        spec = TaskSpectrum.power_law(a, atoms=atoms)
        res = solve(alpha=alphas, tau=p["tau"], kappa=p["kappa"], sigma=p["sigma"], lam=p["lam"], spectrum=spec)
        err = res.errors()
        odg = fit_exponent(alphas, err.odg)
        idg = fit_exponent(alphas, err.idg)
        # kappa < 1 at alpha -> infinity: e_IDG/alpha against 1 - kappa (sigma > 0 needed for the growth)
        big = 1e9
        e_k = solve(alpha=big, tau=2.0, kappa=1 - one_minus_kappa, sigma=0.1, lam=0.0, spectrum=spec).errors().idg / big
        kap = fit_exponent(one_minus_kappa, e_k)
        predicted = min(1.0, 1.0 / abs(a)) if a < 0 else 1.0
        rows.append((a, -odg[0], -odg[2], -odg[1], predicted, -idg[0], -idg[2], -idg[1], kap[0], kap[1], kap[2]))
        axes[0].loglog(alphas, err.odg, "o-", color=col, ms=3, label=f"a={a:g}")
        axes[1].loglog(one_minus_kappa, e_k, "o-", color=col, ms=3)
        progress(f"exponent a={a:g}: odg beta={-odg[0]:.3f}, idg beta={-idg[0]:.3f}, kappa gamma={kap[0]:.3f}")
    arr = np.array(rows, dtype=float)
    axes[2].errorbar(arr[:, 0], arr[:, 1], yerr=[arr[:, 1] - arr[:, 2], arr[:, 3] - arr[:, 1]], fmt="o",
                     label=r"fit: $e_{\mathrm{ODG}}\propto\alpha^{-\beta}$")
    axes[2].errorbar(arr[:, 0], arr[:, 5], yerr=[arr[:, 5] - arr[:, 6], arr[:, 7] - arr[:, 5]], fmt="s", mfc="none",
                     label=r"fit: $e_{\mathrm{IDG}}\propto\alpha^{-\beta}$")
    grid = np.linspace(min(exponents), max(exponents), 400)
    axes[2].plot(grid, np.where(grid < 0, np.minimum(1, 1 / np.abs(np.where(grid < 0, grid, -1))), 1.0), "k--",
                 lw=0.8, label=r"$\min(1, 1/|a|)$")
    axes[0].set_xlabel(r"$\alpha$")
    axes[0].set_ylabel(r"$e_{\mathrm{ODG}}$ (isotropic test)")
    axes[0].legend(fontsize=7)
    axes[0].set_title(rf"$\tau=\kappa={p['kappa']}$, $\sigma=0$, $\lambda=0$", fontsize=10)
    axes[1].set_xlabel(r"$1-\kappa$")
    axes[1].set_ylabel(r"$e_{\mathrm{IDG}}/\alpha$ at $\alpha=10^9$")
    axes[1].set_title(r"$\tau=2$, $\sigma=0.1$: pool cannot span ($\kappa<1$)", fontsize=10)
    axes[2].set_xlabel(r"spectrum exponent $a$ ($s(u)\propto u^{-a}$)")
    axes[2].set_ylabel(r"$\beta$ (95% CI)")
    axes[2].legend(fontsize=8)
    header = ("exponent_a", "beta_odg", "beta_odg_lo", "beta_odg_hi", "beta_predicted_odg", "beta_idg", "beta_idg_lo",
              "beta_idg_hi", "gamma_kappa", "gamma_kappa_lo", "gamma_kappa_hi")
    files = save_figure(fig, out_dir, "spectra_power_law", header, rows)
    plt.close(fig)
    return FigureOutput("spectra_power_law", files, header, rows,
                        "beta_ODG = min(1, 1/|a|); beta_IDG = 1 and gamma = 1 for every exponent")


def alignment_measure(spec, kappa, nu):
    """(1/D) tr Sigma' (x Sigma + nu)^{-1}: the resolvent alignment of the published alignment code, from
    the deterministic equivalent x of the pool at effective ridge nu (original units)."""
    from lowrank_icl.numerics.forward.general import spectral_transforms
    m1 = spec.train_mean
    tr = spectral_transforms(np.atleast_1d(nu) / m1, kappa, spec, laws={"test": spec.test})
    mean_t = spec.test_mean
    # tr C R = (mean t - tr C S R)/nu in normalized units; divide by m1 for the original S
    return (mean_t - tr.laws["test"][0]) / (np.atleast_1d(nu) / m1) / m1


@figure("spectra_alignment", "pretrain-test alignment: test error vs principal angle and vs the alignment measure")
def build_alignment(out_dir, quick, progress):
    import matplotlib.pyplot as plt

    p = ALIGN
    thetas = np.linspace(0, np.pi / 2, QUICK["align_thetas"] if quick else 91)
    kappas = [0.1, 0.2, 0.3, 0.5, 1.0, 3.0, 30.0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(kappas)))
    rows, curves = [], {}
    for kappa, col in zip(kappas, colors):
        errs, meas = [], []
        for th in thetas:
            spec = TaskSpectrum.low_rank(p["rho"]).subspace_test(p["rho"], th)
            res = solve(alpha=p["alpha"], tau=p["tau"], kappa=kappa, sigma=p["sigma"], lam=p["lam"], spectrum=spec)
            errs.append(float(res.errors().odg))
            meas.append(float(alignment_measure(spec, kappa, float(res.nu))[0]))
            rows.append((kappa, float(th), float(np.degrees(th)), errs[-1], meas[-1]))
        curves[kappa] = np.array(errs)
        axes[0].plot(np.degrees(thetas), errs, color=col, label=rf"$\kappa={kappa:g}$")
        axes[1].plot(meas, errs, "o-", ms=2, color=col)
    # angle above which the least diverse pool beats the most diverse one
    diff = curves[kappas[0]] - curves[kappas[-1]]
    cross = np.flatnonzero(np.diff(np.sign(diff)) != 0)
    theta_c = float("nan")
    if cross.size:
        i = cross[0]
        theta_c = float(np.degrees(thetas[i] - diff[i] * (thetas[i + 1] - thetas[i]) / (diff[i + 1] - diff[i])))
        axes[0].axvline(theta_c, color="red", lw=0.8, ls="--")
    axes[0].set_xlabel(r"principal angle $\theta$ (degrees) between train and test subspaces")
    axes[0].set_ylabel(r"test error $e_{\mathrm{test}}$")
    axes[0].legend(fontsize=7)
    axes[0].set_title(rf"dashed: $\theta_c={theta_c:.1f}^\circ$, where $\kappa={kappas[0]}$ beats $\kappa={kappas[-1]:g}$",
                      fontsize=9)
    axes[1].set_xlabel(r"alignment measure $(1/D)\,\mathrm{tr}\,\Sigma'(x\Sigma+\nu)^{-1}$")
    axes[1].set_ylabel(r"$e_{\mathrm{test}}$")
    fig.suptitle(rf"rank-$r$ train tasks, rank-$r$ test subspace: $\rho={p['rho']}$, $\alpha={p['alpha']}$, "
                 rf"$\tau={p['tau']}$, $\sigma={p['sigma']}$, $\lambda={p['lam']}$")
    header = ("kappa", "theta_rad", "theta_deg", "e_test", "alignment_measure")
    files = save_figure(fig, out_dir, "spectra_alignment", header, rows)
    plt.close(fig)
    progress(f"theta_c = {theta_c:.2f} deg")
    return FigureOutput("spectra_alignment", files, header, rows[:: max(1, len(rows) // 40)],
                        f"theta_c = {theta_c:.2f} deg (kappa={kappas[0]} vs {kappas[-1]})")
