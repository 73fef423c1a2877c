r"""Figures of the inverse ICL study, one per claim, plus the depth study.

1. ``inverse_noise`` -- MSE of RE, TRE, LT (three losses) and ORE vs sigma at r = 10 (claim 1).
2. ``inverse_prior`` -- prior recovery by the LT: mean of its outputs vs w0 and the spectrum of
   Cov(outputs) + sigma^2 C (claim 2).
3. ``inverse_rank`` -- MSE vs r from 2 to N = 50, all estimators, ORE and one-layer-LT theory (claim 3).
4. ``inverse_scaling`` -- MSE vs sigma, r/N and c_x on log-log axes with fitted slopes and 95% CIs (claim 4).
5. ``inverse_depth`` -- MSE vs sigma for K = 1, 2, 4, 8, 16 layers and each loss, with TRE and ORE.

The error is always the MSE per coordinate ||w_hat - w||^2 / d (slopes of the RMSE are half).
Error bars: 2 SE across training seeds (each seed: its own training and test contexts).
Sizes: ``validation.inverse.experiments.SCALES`` ('quick', 'medium', 'paper'), chosen by the
``scale`` argument (``lowrank-icl figures --scale``); ``quick=True`` means 'quick', otherwise 'paper'.
Every run (one estimator, one training seed) is cached in the user cache folder
(``validation.inverse.experiments.RunCache``), so experiments share runs and an interrupted
regeneration resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np
from lowrank_icl.numerics.inverse import (LT, LT_LOSSES, ORE, lt1_risk_per_coordinate, ore_risk_per_coordinate,
                                          spectral_gap_rank)
from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure
from lowrank_icl.validation.inverse.experiments import (
    BASELINES,
    LTSettings,
    RunCache,
    compare_estimators,
    draw_model,
    fit_loglog_slope,
    get_scale,
    quiet_params,
    training_contexts,
)

COLORS = {"RE": "tab:gray", "TRE": "tab:green", "LT-unsupervised": "tab:red", "LT-heldout": "tab:purple",
          "LT-supervised": "tab:blue", "LT1-supervised": "tab:cyan", "ORE": "black"}
MARKERS = {"RE": "s", "TRE": "^", "LT-unsupervised": "v", "LT-heldout": "D", "LT-supervised": "o",
           "LT1-supervised": "x", "ORE": "*"}
PRIOR_SIGMA = 0.1   # noise level of experiments 2 and 3 (one of experiment 1's)
MODEL_SEED = 0


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def resolve_scale(quick: bool, scale: str | None) -> tuple[str, object]:
    """The scale name and sizes: ``scale`` if given, else 'quick' or 'paper'."""
    name = scale if scale is not None else ("quick" if quick else "paper")
    return name, get_scale(name)


_LT_THREADS = contextvars.ContextVar("lt_threads", default=1)


@contextlib.contextmanager
def lt_threads(n: int):
    """Threads per LT training inside this block (``figures --threads``); results do not depend on it."""
    token = _LT_THREADS.set(int(n))
    try:
        yield
    finally:
        _LT_THREADS.reset(token)


def point(sc, progress, *, r, sigma, cond=1.0, K=None, losses=LT_LOSSES, include=BASELINES, seeds=None,
          theory=False):
    """compare_estimators at one point of a sweep, every run through the run cache."""
    p = quiet_params(d=sc.d, N=sc.N, r=r, sigma=sigma, cond=cond, n_s=sc.n_s)
    return compare_estimators(p, K=sc.K if K is None else K, losses=losses, include=include, n_test=sc.n_test,
                              seeds=sc.seeds if seeds is None else seeds, model_seed=MODEL_SEED,
                              cache=_run_cache(), progress=progress, theory=theory,
                              lt=LTSettings(workers=_LT_THREADS.get()))


def _run_cache() -> RunCache:
    """The run cache of the figures: off inside ``cache_settings(enabled=False)`` (``figures --no-cache``)."""
    from lowrank_icl.validation.cache import caching_enabled
    return RunCache(enabled=caching_enabled())


def _model(sc, **kw):
    """The model draw every run at these parameters uses."""
    return draw_model(quiet_params(d=sc.d, N=sc.N, n_s=sc.n_s, **kw), MODEL_SEED)


def _log_ticks(ax, values):
    """Major ticks at the swept values only (no minor labels: they overlapped on short log ranges)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    ax.xaxis.set_major_locator(FixedLocator(list(values)))
    ax.set_xticklabels([f"{v:.3g}" for v in values])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


# --- experiment 1 ------------------------------------------------------------------------------
@figure("inverse_noise", "inverse ICL: MSE of RE, TRE, LT (3 losses), ORE vs noise at r=10 (claim 1)")
def build_noise(out_dir, quick, progress, scale=None) -> FigureOutput:
    plt = _plt()
    name, sc = resolve_scale(quick, scale)
    from lowrank_icl.validation.inverse.medians import median_test_errors
    header = ("sigma", "estimator", "mse", "sem_seeds", "sem_test", "seeds", "train_seconds", "lbfgs_iterations",
              "converged", "rank_recovered", "ore_theory", "lt1_theory", "median_mse", "median_sem_seeds")
    rows, results = [], {}
    for sigma in sc.sigmas:
        res = point(sc, progress, r=sc.r, sigma=sigma, theory=True)
        results[sigma] = res
        medians = median_test_errors(res, sc.n_test)
        for est, v in res.scores.items():
            rows.append((sigma, est, v.mean, v.sem, v.sem_test, v.seeds, v.train_seconds, v.iterations, v.converged,
                         " ".join(str(r) for r in res.rank_recovered), res.ore_theory, res.lt1_theory,
                         *medians[est]))
    fig, ax = plt.subplots(figsize=(7, 4.8))
    names = list(results[sc.sigmas[0]].scores)
    for i, est in enumerate(names):
        xs = np.array(sc.sigmas) * (1 + 0.04 * (i - len(names) / 2))
        m = [results[s].scores[est].mean for s in sc.sigmas]
        e = [2 * results[s].scores[est].sem for s in sc.sigmas]
        ax.errorbar(xs, m, yerr=e, marker=MARKERS.get(est, "o"), color=COLORS.get(est), label=est, capsize=3)
    th = [results[s].ore_theory for s in sc.sigmas]
    if all(t is not None for t in th):
        ax.plot(sc.sigmas, th, "k--", lw=1, label="ORE theory")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_ticks(ax, sc.sigmas)
    ax.set_xlabel(r"noise level $\sigma$")
    ax.set_ylabel(r"MSE $\|\hat w - w\|^2/d$ (test, $\pm 2$ SE over seeds)")
    ax.set_title(f"d={sc.d}, N={sc.N}, r={sc.r}, c_x=1, n_s={sc.n_s}, K={sc.K}, {len(sc.seeds)} seeds ({name})",
                 fontsize=9)
    ax.legend(fontsize=8)
    files = save_figure(fig, out_dir, "inverse_noise", header, rows)
    plt.close(fig)
    return FigureOutput("inverse_noise", files, header, rows,
                        "Claim 1 (RE >> TRE >= LT >= ORE): test MSE per coordinate (mean and median over test "
                        "contexts), SE across training seeds.")


# --- experiment 2 ------------------------------------------------------------------------------
def output_moments(W_hat: np.ndarray, w0: np.ndarray, sigma: float, C: np.ndarray | None,
                   Sigma_w: np.ndarray) -> dict:
    """Mean and covariance of estimator outputs against the prior: the claim-2 diagnostics."""
    mean = W_hat.mean(axis=0)
    cov = np.cov(W_hat, rowvar=False)
    corrected = cov + (sigma ** 2 * C if C is not None else 0.0)
    eigs = np.sort(np.linalg.eigvalsh((corrected + corrected.T) / 2))[::-1]
    return {"mean": mean, "eigs": eigs, "rank": spectral_gap_rank(eigs),
            "mean_rel_error": float(np.linalg.norm(mean - w0) / np.linalg.norm(w0)),
            # what sampling alone gives: E||mean - E w_hat||^2 = tr Cov(w_hat) / n
            "mean_rel_sampling": float(np.sqrt(np.trace(cov) / len(W_hat)) / np.linalg.norm(w0)),
            "cov_rel_error": float(np.linalg.norm(corrected - Sigma_w) / np.linalg.norm(Sigma_w))}


def ore_C(model, X: np.ndarray) -> np.ndarray:
    r"""C = U E_X[(sigma^2 Lambda^{-1} + U^T X^T X U)^{-1}] U^T, the expectation over the designs X.

    sigma^2 C = U E_X[Sigma_post] U^T (law of total covariance), averaged over the given designs.
    """
    post = ORE.from_model(model).posterior_covariance(X).mean(axis=0)
    return model.U @ post @ model.U.T / model.sigma ** 2


@figure("inverse_prior", "inverse ICL: the LT's outputs recover the prior mean and rank (claim 2)")
def build_prior(out_dir, quick, progress, scale=None) -> FigureOutput:
    plt = _plt()
    name, sc = resolve_scale(quick, scale)
    # the LTs of experiment 1 at this sigma, first training seed (cached runs), and the same model draw
    seed = sc.seeds[0]
    res = point(sc, progress, r=sc.r, sigma=PRIOR_SIGMA, include=("TRE",), seeds=(seed,))
    model = res.model
    p = model.params
    fresh = model.sample(sc.n_prior, np.random.default_rng([seed, 3]))
    C = ore_C(model, fresh.X)
    ests = {}
    for loss in LT_LOSSES:
        lt = LT(K=sc.K, loss=loss)
        arrays = res.arrays[f"LT-{loss}"][0]
        lt.b, lt.Gammas = arrays["b"], arrays["Gammas"]
        ests[f"LT-{loss}"] = lt
    from lowrank_icl.numerics.inverse import TRE
    train = training_contexts(model, seed)
    ests["TRE"] = TRE().fit(train.X, train.Y)
    del train
    ests["ORE"] = ORE.from_model(model)
    moments = {k: output_moments(e.predict(fresh.X, fresh.Y), model.w0, p.sigma, C, model.Sigma_w)
               for k, e in ests.items()}
    header = ("estimator", "mean_rel_error", "mean_rel_sampling", "cov_rel_error", "rank_from_gap", "C_correction",
              *[f"eig{i + 1}" for i in range(min(sc.d, 2 * sc.r))])
    rows = [(k, v["mean_rel_error"], v["mean_rel_sampling"], v["cov_rel_error"], v["rank"], C is not None,
             *v["eigs"][:min(sc.d, 2 * sc.r)]) for k, v in moments.items()]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k, v in moments.items():
        a1.plot(np.arange(1, sc.d + 1), v["mean"] - model.w0, MARKERS.get(k, "o"), color=COLORS.get(k), ms=3,
                alpha=0.7, label=f"{k} (rel. err {v['mean_rel_error']:.2g}, sampling {v['mean_rel_sampling']:.2g})")
        n_show = min(sc.d, 3 * sc.r)
        a2.semilogy(np.arange(1, n_show + 1), np.maximum(v["eigs"][:n_show], 1e-8),
                    marker=MARKERS.get(k, "o"), color=COLORS.get(k), ms=4, label=f"{k} (gap rank {v['rank']})")
    a1.axhline(0.0, color="k", lw=0.8)
    a1.set_xlabel("coordinate i")
    a1.set_ylabel(r"$\overline{\hat w}_i - (w_0)_i$")
    a1.legend(fontsize=6.5)
    a1.set_title(f"mean of outputs minus $w_0$ ($\\|w_0\\| = {np.linalg.norm(model.w0):.3g}$, "
                 f"{sc.n_prior} contexts)")
    a2.axvline(sc.r + 0.5, color="k", ls=":", lw=1)
    a2.axhline(float(np.mean(model.Lambda)), color="k", ls="--", lw=1, label=r"true $\Lambda$")
    a2.set_xlabel("eigenvalue index")
    a2.set_ylabel(r"eig of Cov$(\hat w) + \sigma^2 C$" + ("" if C is not None else " (C unavailable)"))
    a2.legend(fontsize=7)
    a2.set_title(f"d={sc.d}, N={sc.N}, r={sc.r}, sigma={PRIOR_SIGMA}, n_s={sc.n_s}, K={sc.K}, seed {seed} ({name})",
                 fontsize=9)
    files = save_figure(fig, out_dir, "inverse_prior", header, rows)
    plt.close(fig)
    return FigureOutput("inverse_prior", files, header, rows,
                        "Claim 2 (the LT learns the prior): mean of outputs vs w0 and the corrected covariance spectrum (gap at r?).")


# --- experiment 3 ------------------------------------------------------------------------------
def rank_sweep(sc, progress) -> list[dict]:
    """MSE vs r at fixed N: every estimator plus a K = 1 supervised LT, over the training seeds."""
    out = []
    for r in sc.ranks:
        res = point(sc, progress, r=r, sigma=PRIOR_SIGMA)
        lt1 = point(sc, progress, r=r, sigma=PRIOR_SIGMA, K=1, losses=("supervised",), include=())
        row = {"r": r, "rank_recovered": " ".join(str(x) for x in res.rank_recovered),
               "scores": {k: (v.mean, v.sem) for k, v in res.scores.items()}}
        row["scores"]["LT1-supervised"] = (lt1.scores["LT-supervised"].mean, lt1.scores["LT-supervised"].sem)
        out.append(row)
    return out


@figure("inverse_rank", "inverse ICL: MSE vs task rank r up to N, with ORE and one-layer-LT theory, and the "
                        "log-log slope in r/N (claims 3, sharp rise as r -> N, and 4, linear scaling)")
def build_rank(out_dir, quick, progress, scale=None) -> FigureOutput:
    plt = _plt()
    name, sc = resolve_scale(quick, scale)
    sweep = rank_sweep(sc, progress)
    for s in sweep:   # theory is cheap: evaluated afresh on the same model draw (not cached)
        model = _model(sc, r=s["r"], sigma=PRIOR_SIGMA)
        s["ore_theory"] = ore_risk_per_coordinate(model) if model.sigma > 0 else None
        s["lt1_theory"] = lt1_risk_per_coordinate(model)
    below = [s for s in sweep if s["r"] < sc.N]        # the power-law fit in r/N uses r < N only
    x_fit = np.array([s["r"] / sc.N for s in below])
    fits = {}
    for k in sweep[0]["scores"]:
        fits[k] = fit_loglog_slope(x_fit, [s["scores"][k][0] for s in below], [s["scores"][k][1] for s in below])
    header = ("r", "r_over_N", "estimator", "mse", "sem", "rank_recovered", "ore_theory", "lt1_theory",
              "slope_r_over_N", "slope_ci95_lo", "slope_ci95_hi", "slope_chi2_per_dof")
    rows = [(s["r"], s["r"] / sc.N, k, v[0], v[1], s["rank_recovered"], s["ore_theory"], s["lt1_theory"],
             fits[k].slope, fits[k].ci[0], fits[k].ci[1], fits[k].chi2_dof)
            for s in sweep for k, v in s["scores"].items()]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    rs = np.array([s["r"] for s in sweep])
    for k in sweep[0]["scores"]:
        m = np.array([s["scores"][k][0] for s in sweep])
        e = np.array([s["scores"][k][1] for s in sweep])
        ax.errorbar(rs, m, yerr=2 * e, marker=MARKERS.get(k, "o"), color=COLORS.get(k), label=k, capsize=3)
        fit = fits[k]
        mb, eb = m[rs < sc.N], e[rs < sc.N]
        ax2.errorbar(x_fit, mb, yerr=2 * eb, marker=MARKERS.get(k, "o"), color=COLORS.get(k), ls="none", capsize=2,
                     label=f"{k}: slope {fit.slope:.2f} [{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]")
        if np.isfinite(fit.slope):
            w = 1 / np.maximum(eb / mb, 1e-12) ** 2
            a0 = np.sum(w * (np.log(mb) - fit.slope * np.log(x_fit))) / np.sum(w)
            ax2.plot(x_fit, np.exp(a0 + fit.slope * np.log(x_fit)), color=COLORS.get(k), lw=0.8)
    for key, style, label in (("ore_theory", "k--", "ORE theory"), ("lt1_theory", "c--", "one-layer LT theory")):
        th = [s[key] for s in sweep]
        if all(t is not None for t in th):
            ax.plot(rs, th, style, lw=1.2, label=label)
    ax.axvline(sc.N, color="k", ls=":", lw=1)
    ax.set_yscale("log")
    off = [(s["r"], k, v[0]) for s in sweep for k, v in s["scores"].items() if v[0] > 10]
    if off:   # keep the scale readable; say what is off it
        ax.set_ylim(top=10)
        ax.text(0.02, 0.98, "off scale: " + ", ".join(f"{k} at r={r}: {v:.2g}" for r, k, v in off),
                transform=ax.transAxes, va="top", fontsize=7)
    ax.set_xlabel(r"task rank $r$ (dotted: $r = N$)")
    ax.set_ylabel(r"MSE $\|\hat w - w\|^2/d$ ($\pm 2$ SE)")
    ax.set_title(f"d={sc.d}, N={sc.N}, sigma={PRIOR_SIGMA}, n_s={sc.n_s}, LT K={sc.K}, {len(sc.seeds)} seeds ({name})",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    _log_ticks(ax2, x_fit)
    ax2.set_xlabel(r"$r/N$ ($r < N$)")
    ax2.set_ylabel(r"MSE $\|\hat w - w\|^2/d$")
    ax2.set_title("log-log slope in r/N with 95% CI (claim 4: linear in r/N)", fontsize=9)
    ax2.legend(fontsize=6.5)
    files = save_figure(fig, out_dir, "inverse_rank", header, rows)
    plt.close(fig)
    return FigureOutput("inverse_rank", files, header, rows,
                        "Claim 3: every estimator degrades as r -> N; theory for ORE and the one-layer LT. "
                        "Claim 4 in r/N: fitted log-log slope of the MSE for r < N (RMSE slope = half).")


# --- experiment 4 ------------------------------------------------------------------------------
SLOPE_ESTIMATORS = ("TRE", "LT-unsupervised", "LT-heldout", "LT-supervised", "ORE")


@figure("inverse_scaling", "inverse ICL: log-log slopes of the MSE vs sigma and c_x with 95% CIs (claim 4; r/N: "
                           "inverse_rank)")
def build_scaling(out_dir, quick, progress, scale=None) -> FigureOutput:
    plt = _plt()
    name, sc = resolve_scale(quick, scale)
    sweeps = {}
    runs = [point(sc, progress, r=sc.r, sigma=sigma) for sigma in sc.sigma_sweep]
    sweeps["sigma"] = (np.array(sc.sigma_sweep), {k: [(r.scores[k].mean, r.scores[k].sem) for r in runs]
                                                  for k in SLOPE_ESTIMATORS})
    runs = [point(sc, progress, r=sc.r, sigma=PRIOR_SIGMA, cond=cond) for cond in sc.conds]
    sweeps["cond"] = (np.array(sc.conds, dtype=float),
                      {k: [(r.scores[k].mean, r.scores[k].sem) for r in runs] for k in SLOPE_ESTIMATORS})
    header = ("sweep", "estimator", "slope_mse", "ci95_lo", "ci95_hi", "se", "chi2_per_dof", "points",
              "slope_rmse", "x_values", "mse_values", "sem_values")
    rows = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    labels = {"sigma": r"noise $\sigma$", "cond": r"condition number $c_x$"}
    for ax, (sweep, (x, data)) in zip(axes, sweeps.items()):
        for k in SLOPE_ESTIMATORS:
            m = np.array([v[0] for v in data[k]])
            e = np.array([v[1] for v in data[k]])
            fit = fit_loglog_slope(x, m, e)
            rows.append((sweep, k, fit.slope, fit.ci[0], fit.ci[1], fit.se, fit.chi2_dof, fit.n, fit.slope / 2,
                         " ".join(f"{v:g}" for v in x), " ".join(f"{v:.6g}" for v in m),
                         " ".join(f"{v:.3g}" for v in e)))
            ax.errorbar(x, m, yerr=2 * e, marker=MARKERS.get(k, "o"), color=COLORS.get(k), ls="none", capsize=2,
                        label=f"{k}: slope {fit.slope:.2f} [{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]")
            if np.isfinite(fit.slope):
                lx = np.log(x)
                w = 1 / np.maximum(e / m, 1e-12) ** 2
                a = np.sum(w * (np.log(m) - fit.slope * lx)) / np.sum(w)
                ax.plot(x, np.exp(a + fit.slope * lx), color=COLORS.get(k), lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_ticks(ax, x)
        ax.set_xlabel(labels[sweep])
        ax.set_ylabel(r"MSE $\|\hat w - w\|^2/d$")
        ax.legend(fontsize=6.5)
    axes[0].set_title(f"r={sc.r}, c_x=1 ({name})")
    axes[1].set_title(f"r={sc.r}, sigma={PRIOR_SIGMA}; d={sc.d}, n_s={sc.n_s}, K={sc.K}, {len(sc.seeds)} seeds")
    files = save_figure(fig, out_dir, "inverse_scaling", header, rows)
    plt.close(fig)
    table_rows = [r[:9] for r in rows]
    return FigureOutput("inverse_scaling", files, header[:9], table_rows,
                        "Claim 4: fitted log-log slopes of the MSE (RMSE slope = half) with 95% CIs "
                        "(SE inflated by sqrt(chi2/dof) when the points are off a power law).")


# --- depth study ---------------------------------------------------------------------------------
@figure("inverse_depth", "inverse ICL: LT error vs depth K = 1..16 per loss, sigma-slopes and Gamma_k vs GD steps")
def build_depth(out_dir, quick, progress, scale=None) -> FigureOutput:
    from lowrank_icl.validation.inverse.depth import DEPTH_SCALE, depth_runs
    from lowrank_icl.validation.inverse.experiments import Scale
    name = scale if scale is not None else ("quick" if quick else "paper")
    sc = DEPTH_SCALE if name != "quick" else Scale(
        d=6, N=5, r=1, n_s=500, n_test=200, K=2, seeds=(0, 1), sigmas=(0.1,), ranks=(1,),
        sigma_sweep=(0.03, 0.1, 0.3), conds=(1,), n_prior=0, depths=(1, 2))
    return render_depth(depth_runs(sc, progress, cache=_run_cache()), sc, out_dir)


def render_depth(runs: dict, sc, out_dir) -> FigureOutput:
    """Figure and CSV of the depth study from ``depth_runs`` output (any subset of sigmas, depths, losses)."""
    from lowrank_icl.validation.inverse.depth import gamma_alignment, median_errors, sigma_slopes
    plt = _plt()
    sigmas = sorted({s for s, _ in runs})
    depths = sorted({K for _, K in runs if K > 0})
    s_mid = min(sigmas, key=lambda s: abs(np.log(s / PRIOR_SIGMA)))
    header = ("table", "estimator", "K", "sigma", "layer", "value", "sem_or_ci_lo", "ci_hi_or_extra", "extra")
    rows = []
    for (s, K), res in sorted(runs.items()):
        for name_, v in res.scores.items():
            rows.append(("mse", name_, K, s, "", v.mean, v.sem, v.seeds, v.converged))
    medians = median_errors(runs, sc)
    rows += [("median", name_, K, s, "", m, se, "", "") for (s, K, name_), (m, se) in sorted(medians.items())]
    slopes = sigma_slopes(runs)
    rows += [("sigma_slope", n, K, "", "", sl, lo, hi, chi) for n, K, sl, lo, hi, chi in slopes]
    median_slopes = []       # the same fit on the medians (typical error)
    for n_, K in sorted({(n_, K) for (_, K, n_) in medians}):
        pts = sorted((s, medians[(s, K, n_)]) for s in sigmas if (s, K, n_) in medians)
        f = fit_loglog_slope([p[0] for p in pts], [p[1][0] for p in pts], [np.nan_to_num(p[1][1]) for p in pts])
        median_slopes.append((n_, K, f.slope, f.ci[0], f.ci[1], f.chi2_dof))
    rows += [("sigma_slope_median", n, K, "", "", sl, lo, hi, chi) for n, K, sl, lo, hi, chi in median_slopes]
    align = {}
    for loss in LT_LOSSES:
        have = [K for K in depths if (s_mid, K) in runs and f"LT-{loss}" in runs[(s_mid, K)].scores]
        if not have:
            continue
        res = runs[(s_mid, have[-1])]
        a = gamma_alignment(res.arrays[f"LT-{loss}"][0]["Gammas"], res.model)
        align[loss] = (have[-1], a)
        rows += [("gamma", f"LT-{loss}", have[-1], s_mid, k + 1, v["cosine"], v["eta"], v["in_span"], v["eta_rho"])
                 for k, v in enumerate(a)]

    def series(name, s):
        pts = [(K, runs[(s, K)].scores[name]) for K in depths if (s, K) in runs and name in runs[(s, K)].scores]
        return [p[0] for p in pts], [p[1].mean for p in pts], [2 * p[1].sem for p in pts]
    fig, axes = plt.subplots(1, 3, figsize=(16, 6.4))
    ax = axes[0]
    for loss in LT_LOSSES:
        k = f"LT-{loss}"
        Ks, m, e = series(k, s_mid)
        if Ks:
            ax.errorbar(Ks, m, yerr=e, marker=MARKERS[k], color=COLORS[k], label=f"{k} (mean)", capsize=3)
        med = [(K, medians[(s_mid, K, k)]) for K in depths if (s_mid, K, k) in medians]
        if med:
            ax.errorbar([p[0] for p in med], [p[1][0] for p in med], yerr=[2 * np.nan_to_num(p[1][1]) for p in med],
                        marker=MARKERS[k], color=COLORS[k], mfc="none", ls="--", lw=0.9, capsize=2,
                        label=f"{k} (median)")
    # the population optimum of the polynomial class Gamma_k = alpha_k U U^T at this N (sampled Wishart spectra)
    from lowrank_icl.theory.inverse import deep_lt_risk
    A = np.random.default_rng(0).standard_normal((50_000, sc.N, sc.r))
    eig = np.linalg.eigvalsh(np.einsum("nir,nis->nrs", A, A) / sc.N).ravel()
    wts = np.full(eig.size, 1.0 / eig.size)
    for loss, kind in (("supervised", "supervised"), ("unsupervised", "misfit")):
        opt = [deep_lt_risk(K, 1.0, s_mid ** 2 / sc.N, eig, wts, kind) * sc.r / sc.d for K in depths]
        ax.plot(depths, opt, ls=(0, (4, 2)), color=COLORS[f"LT-{loss}"], lw=0.9, alpha=0.8,
                label=f"optimum of Gamma_k = a_k UU^T ({kind})")
        rows += [("optimum", kind, K, s_mid, "", v, "", "", "") for K, v in zip(depths, opt)]
    if (s_mid, 0) in runs:
        for k, ls in (("TRE", "--"), ("ORE", ":"), ("RE", "-.")):
            ax.axhline(runs[(s_mid, 0)].scores[k].mean, color=COLORS[k], ls=ls, lw=1.2, label=f"{k} (mean)")
        for k in ("TRE", "ORE"):
            if (s_mid, 0, k) in medians:
                ax.axhline(medians[(s_mid, 0, k)][0], color=COLORS[k], ls=(0, (1, 3)), lw=1.0, label=f"{k} (median)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _log_ticks(ax, depths)
    ax.set_xlabel("layers K")
    ax.set_ylabel(r"MSE $\|\hat w - w\|^2/d$ ($\pm 2$ SE)")
    ax.set_title(f"sigma={s_mid:g}; d={sc.d}, N={sc.N}, r={sc.r}, n_s={sc.n_s}; test MSE mean and median",
                 fontsize=9)
    off = [(K, name_, res.scores[name_].mean) for (s, K), res in runs.items() if s == s_mid and K > 0
           for name_ in res.scores if res.scores[name_].mean > 1]
    if off:   # keep the scale readable; say what is off it
        ax.set_ylim(top=1)
        ax.text(0.02, 0.98, "off scale (mean): " + ", ".join(f"{n} K={K}: {v:.2g}" for K, n, v in sorted(off)),
                transform=ax.transAxes, va="top", fontsize=6)
    ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax = axes[1]
    for i, loss in enumerate(LT_LOSSES):
        k = f"LT-{loss}"
        pts = [(K, sl, lo, hi) for n, K, sl, lo, hi, _ in slopes if n == k and np.isfinite(sl)]
        if not pts:
            continue
        x = np.array([p[0] for p in pts], dtype=float) * (1 + 0.05 * (i - 1))
        sl = np.array([p[1] for p in pts])
        ax.errorbar(x, sl, yerr=[sl - np.array([p[2] for p in pts]), np.array([p[3] for p in pts]) - sl],
                    marker=MARKERS[k], color=COLORS[k], label=f"{k} (mean)", capsize=3, ls="-")
        pts = [(K, sl, lo, hi) for n, K, sl, lo, hi, _ in median_slopes if n == k and np.isfinite(sl)]
        if pts:
            x = np.array([p[0] for p in pts], dtype=float) * (1 + 0.05 * (i - 1)) * 1.02
            sl = np.array([p[1] for p in pts])
            ax.errorbar(x, sl, yerr=[sl - np.array([p[2] for p in pts]), np.array([p[3] for p in pts]) - sl],
                        marker=MARKERS[k], color=COLORS[k], mfc="none", label=f"{k} (median)", capsize=2, ls="--",
                        lw=0.9)
    for n, K, sl, lo, hi, _ in slopes:
        if n in ("TRE", "ORE") and np.isfinite(sl):
            ax.axhline(sl, color=COLORS[n], ls="--" if n == "TRE" else ":", lw=1.2, label=f"{n} ({sl:.2f})")
    ax.axhline(2.0, color="k", lw=0.6, alpha=0.5)
    ax.set_xscale("log", base=2)
    _log_ticks(ax, depths)
    ax.set_xlabel("layers K")
    ax.set_ylabel(r"slope of log MSE vs log $\sigma$ (95% CI); 2 = RMSE linear")
    ax.set_title(f"sigma in {{{', '.join(f'{s:g}' for s in sigmas)}}}", fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax = axes[2]
    for loss, (K, a) in align.items():
        k = f"LT-{loss}"
        layers = np.arange(1, len(a) + 1)
        ax.plot(layers, [v["cosine"] for v in a], marker=MARKERS[k], color=COLORS[k],
                label=f"{k} (K={K}): cos(Gamma_k, Sigma_w)")
        ax.plot(layers, [v["in_span"] for v in a], ls="--", color=COLORS[k], lw=0.9,
                label=f"{k}: share in span U")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(f"layer k (sigma={s_mid:g}, first seed)")
    ax.set_ylabel("alignment")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    files = save_figure(fig, out_dir, "inverse_depth", header, rows)
    plt.close(fig)
    return FigureOutput("inverse_depth", files, header, [r for r in rows if r[0] != "gamma"],
                        "Depth study: MSE (mean and median over test contexts) vs K, sigma-slope vs K, and learned "
                        "Gamma_k against prior-preconditioned GD steps (cosine with Sigma_w, share inside span U).")
