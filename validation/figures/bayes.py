r"""Figure ``bayes_crossover``: the task-diversity crossover against the Bayes baselines.

Errors vs kappa at two ranks rho (columns) for TM and IDG (rows):
- dMMSE (posterior mean under the pool prior; sampled test prompts, mean +- SE over seeds, dashed);
- GMMSE (posterior mean under the Gaussian population prior; its D -> oo theory, dotted, flat in kappa,
  and sampled points at the largest kappa);
- the ridge-trained reduced linear attention: theory (``numerics.solve``, solid) and simulation
  (``simulate``, exact test errors of the trained Gamma, circles);
- any series added with :func:`add_series` (e.g. trained transformers), drawn with the same layout.

Crossover (third row). A model "tracks" a baseline when its predictions are close to the baseline's
on the same prompts: Delta_B(kappa) = mean (yhat_model - yhat_B)^2 over TM (pretraining tasks) and,
separately, IDG test prompts (:func:`lowrank_icl.validation.forward.bayes.prediction_distances`, the
trained Gamma of each seed). The crossover kappa_x (on TM prompts, purple line) is where Delta_dMMSE - Delta_GMMSE changes sign from - to + (linear
interpolation in log kappa); it is compared with kappa = rho (M0 = r), the transition of the
D -> oo, alpha -> oo theory. A coarser rule on errors only (usable for a theory line) replaces
Delta_B by the log-error distance sqrt(sum_{X in TM, IDG} (log e_model,X - log e_B,X)^2)
(:func:`crossover_kappa`). A baseline-free location: the IDG transition kappa_1/2 of each series,
where log e_IDG crosses the midpoint of its values at the ends of the kappa grid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from lowrank_icl.numerics import solve
from lowrank_icl.theory import gmmse_limit_errors
from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure
from lowrank_icl.validation.forward.bayes import bayes_errors, linear_attention_predictor, prediction_distances
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_pretraining
from lowrank_icl.validation.forward.simulate import simulate
from lowrank_icl.validation.stats import Estimate

POINT = {"alpha": 2.0, "tau": 4.0, "sigma": 0.5, "lam": 1e-3}
RANKS = (0.25, 0.5)
TABLE_HEADER = ("rho", "kappa", "series", "tm", "tm_se", "idg", "idg_se", "odg", "odg_se")
DISTANCE_HEADER = ("rho", "kappa", "series", "to_dmmse", "to_dmmse_se", "to_gmmse", "to_gmmse_se")

# Extra series: callables (rho, kappas, quick, progress) -> {"label": str, "tm": [(mean, se)], "idg": ...,
# "odg": ..., optional "distance": {"tm"|"idg": {"dmmse"|"gmmse": [(mean, se)]}}} with one (mean, se)
# per kappa (se may be nan). Distances come from prediction_distances with the series' own predictor.
_EXTRA_SERIES: list[Callable] = []


def add_series(fn: Callable) -> Callable:
    """Register an extra series for the crossover figure (usable as a decorator)."""
    _EXTRA_SERIES.append(fn)
    return fn


def _settings(quick: bool):
    """(D, kappas, seeds, prompts)."""
    if quick:
        return 10, np.geomspace(0.1, 4.0, 5), range(2), 100
    return 32, np.geomspace(0.05, 16.0, 11), range(4), 400


def crossover_kappa(kappas, model: dict, dmmse: dict, gmmse: dict):
    """kappa_x where the model stops being closer to dMMSE than to GMMSE (module docstring); nan if none.

    Each dict maps "tm" and "idg" to arrays of errors over ``kappas``.
    """
    k = np.asarray(kappas, dtype=float)

    def dist(base):
        return np.sqrt(sum((np.log(np.asarray(model[p])) - np.log(np.asarray(base[p]))) ** 2 for p in ("tm", "idg")))
    f = dist(dmmse) - dist(gmmse)
    if f[0] >= 0:
        return 0.0
    for i in range(len(k) - 1):
        if f[i] < 0 <= f[i + 1]:
            t = -f[i] / (f[i + 1] - f[i])
            return float(np.exp(np.log(k[i]) + t * (np.log(k[i + 1]) - np.log(k[i]))))
    return float("nan")


def transition_kappa(kappas, errors) -> float:
    """kappa where log e crosses the midpoint of log e at the two ends of the grid (log-kappa interpolation)."""
    k, e = np.log(np.asarray(kappas, dtype=float)), np.log(np.asarray(errors, dtype=float))
    mid = 0.5 * (e[0] + e[-1])
    f = e - mid
    if e[0] == e[-1]:
        return float("nan")                 # no transition across the grid
    for i in range(len(k) - 1):
        if f[i] * f[i + 1] < 0:
            return float(np.exp(k[i] + (k[i + 1] - k[i]) * f[i] / (f[i] - f[i + 1])))
        if f[i + 1] == 0:
            return float(np.exp(k[i + 1]))
    return float("nan")


def _ridge_distances(rho, kappas, dim, seeds, prompts):
    """{prompt protocol: {baseline: [(mean, se)] per kappa}}: Delta_B of the ridge-trained Gamma of each seed."""
    p = POINT
    dist = {q: {"dmmse": [], "gmmse": []} for q in ("tm", "idg")}
    for kappa in kappas:
        s = Sizes.from_ratios(dim, p["alpha"], p["tau"], kappa, rho)
        per_seed = {(q, b): [] for q in ("tm", "idg") for b in ("dmmse", "gmmse")}
        for seed in seeds:
            data = sample_pretraining(s, p["sigma"], seed)
            gamma = fit_ridge(data.x, data.h, data.y, p["lam"], s.n_tasks).gamma
            d = prediction_distances(linear_attention_predictor(gamma), dim, seed, alpha=p["alpha"], kappa=kappa,
                                     rho=rho, sigma=p["sigma"], prompts=prompts)
            for q, b in per_seed:
                per_seed[q, b].append(d[q][b])
        for (q, b), vals in per_seed.items():
            e = Estimate.of(vals)
            dist[q][b].append((e.mean, e.sem))
    return dist


def distance_crossover(kappas, to_dmmse, to_gmmse) -> float:
    """kappa where Delta_dMMSE - Delta_GMMSE changes sign from - to +; 0 if >= 0 at the first kappa, nan if never."""
    k = np.log(np.asarray(kappas, dtype=float))
    f = np.asarray(to_dmmse, dtype=float) - np.asarray(to_gmmse, dtype=float)
    if f[0] >= 0:
        return 0.0
    for i in range(len(k) - 1):
        if f[i] < 0 <= f[i + 1]:
            return float(np.exp(k[i] + (k[i + 1] - k[i]) * (-f[i]) / (f[i + 1] - f[i])))
    return float("nan")


def _series_for_rank(rho, kappas, dim, seeds, prompts, progress):
    p = POINT
    out = {}
    th = solve(alpha=p["alpha"], tau=p["tau"], kappa=np.asarray(kappas), rho=rho, sigma=p["sigma"], lam=p["lam"]).errors()
    out["ridge theory"] = {q: [(float(v), float("nan")) for v in getattr(th, q)] for q in ("tm", "idg", "odg")}
    g = gmmse_limit_errors(p["alpha"], rho, p["sigma"])
    out["GMMSE theory"] = {q: [(g[q], float("nan"))] * len(kappas) for q in ("tm", "idg", "odg")}
    sim, dm = {q: [] for q in ("tm", "idg", "odg")}, {q: [] for q in ("tm", "idg", "odg")}
    for kappa in kappas:
        progress(f"rho={rho} kappa={kappa:.3g}")
        res = simulate(dim=dim, alpha=p["alpha"], tau=p["tau"], kappa=kappa, rho=rho, sigma=p["sigma"], lam=p["lam"],
                       seeds=seeds).errors()
        d = bayes_errors(dim=dim, alpha=p["alpha"], kappa=kappa, rho=rho, sigma=p["sigma"], estimator="dmmse",
                         seeds=seeds, prompts=prompts).errors()
        for q in ("tm", "idg", "odg"):
            sim[q].append((getattr(res, q).mean, getattr(res, q).sem))
            dm[q].append((getattr(d, q).mean, getattr(d, q).sem))
    out["ridge simulation"] = sim
    out["dMMSE"] = dm
    out["ridge simulation"]["distance"] = _ridge_distances(rho, kappas, dim, seeds, prompts)
    gs = bayes_errors(dim=dim, alpha=p["alpha"], kappa=float("inf"), rho=rho, sigma=p["sigma"], estimator="gmmse",
                      seeds=seeds, prompts=prompts).errors()
    out["GMMSE sampled (kappa=inf)"] = {q: [(getattr(gs, q).mean, getattr(gs, q).sem)] for q in ("tm", "idg", "odg")}
    return out


STYLE = {"ridge theory": dict(color="k", ls="-"), "GMMSE theory": dict(color="tab:green", ls=":"),
         "ridge simulation": dict(color="k", marker="o", ls="none", mfc="none"),
         "dMMSE": dict(color="tab:red", marker="s", ls="--", ms=4)}


@figure("bayes_crossover", "errors vs kappa: dMMSE, GMMSE, ridge-trained reduced model (theory + simulation)")
def build(out_dir: Path, quick: bool, progress) -> FigureOutput:
    import matplotlib.pyplot as plt
    dim, kappas, seeds, prompts = _settings(quick)
    fig, axes = plt.subplots(3, len(RANKS), figsize=(5.2 * len(RANKS), 10.0), sharex=True, squeeze=False)
    rows, caption, dist_rows = [], [], []
    for j, rho in enumerate(RANKS):
        series = _series_for_rank(rho, kappas, dim, seeds, prompts, progress)
        for fn in _EXTRA_SERIES:
            extra = fn(rho, kappas, quick, progress)
            series[extra["label"]] = {q: extra[q] for q in ("tm", "idg", "odg", "distance") if q in extra}
        for i, q in enumerate(("tm", "idg")):
            ax = axes[i, j]
            for name, s in series.items():
                vals = np.array(s[q], dtype=float)
                if name.startswith("GMMSE sampled"):
                    ax.errorbar([kappas[-1] * 1.6], vals[:, 0], yerr=vals[:, 1], color="tab:green", marker="D",
                                ls="none", ms=4, label="GMMSE sampled (kappa = inf)" if (i, j) == (0, 0) else None)
                    continue
                style = STYLE.get(name, dict(marker="^", ls="-."))
                ax.errorbar(kappas, vals[:, 0], yerr=np.nan_to_num(vals[:, 1]), label=name if (i, j) == (0, 0) else None,
                            capsize=2, **style)
            ax.axvline(rho, color="gray", lw=0.8, ls="--")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{q.upper()}, rho = {rho}")
            if j == 0:
                ax.set_ylabel("test error")
        ax = axes[2, j]
        for n_series, (name, s) in enumerate((n, s) for n, s in series.items() if "distance" in s):
            color = "k" if name == "ridge simulation" else f"C{n_series + 3}"
            for q, mfc in (("tm", None), ("idg", "none")):
                for b, ls, marker in (("dmmse", "--", "s"), ("gmmse", ":", "D")):
                    vals = np.array(s["distance"][q][b], dtype=float)
                    ax.errorbar(kappas, vals[:, 0], yerr=np.nan_to_num(vals[:, 1]), color=color if b == "dmmse" else
                                "tab:green", ls=ls, marker=marker, mfc=mfc, ms=4, capsize=2,
                                label=f"{name}, {q.upper()} prompts: to {'dMMSE' if b == 'dmmse' else 'GMMSE'}")
                    for n_k, kappa in enumerate(kappas):
                        dist_rows.append([rho, float(kappa), f"{name}, {q} prompts, to {b}", *map(float, vals[n_k])])
                kx = distance_crossover(kappas, np.array(s["distance"][q]["dmmse"])[:, 0],
                                        np.array(s["distance"][q]["gmmse"])[:, 0])
                kx_text = (f"< {kappas[0]:.3g}" if kx == 0 else f"{kx:.3g}") + (
                    "" if not np.isfinite(kx) or kx == 0 else f" (kappa_x/rho = {kx / rho:.2f})")
                caption.append(f"rho={rho}: {name}: prediction-distance crossover on {q.upper()} prompts "
                               f"kappa_x = {kx_text}")
                if q == "tm" and np.isfinite(kx) and kx > 0:
                    for i in range(3):
                        axes[i, j].axvline(kx, color="tab:purple", lw=1.0, alpha=0.6)
        ax.axvline(rho, color="gray", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("task diversity kappa = M0/D")
        ax.set_title(f"distance of predictions (filled: TM, open: IDG prompts), rho = {rho}", fontsize=9)
        if j == 0:
            ax.set_ylabel("mean (yhat - yhat_Bayes)^2")
        ax.legend(fontsize=6)
        base = {name: {q: np.array(series[name][q])[:, 0] for q in ("tm", "idg")}
                for name in ("dMMSE", "GMMSE theory")}
        for name in [n for n in series if n not in ("dMMSE", "GMMSE theory") and not n.startswith("GMMSE sampled")]:
            model = {q: np.array(series[name][q])[:, 0] for q in ("tm", "idg")}
            kx = crossover_kappa(kappas, model, base["dMMSE"], base["GMMSE theory"])
            k_half = transition_kappa(kappas, model["idg"])
            kx_text = f"< {kappas[0]:.3g} (closer to GMMSE everywhere)" if kx == 0 else f"{kx:.3g}"
            caption.append(f"rho={rho}: {name}: log-error crossover kappa_x = {kx_text}; IDG transition "
                           f"kappa_1/2 = {k_half:.3g} (kappa_1/2/rho = {k_half / rho:.2f})")
        k_half_d = transition_kappa(kappas, base["dMMSE"]["idg"])
        caption.append(f"rho={rho}: dMMSE: IDG transition kappa_1/2 = {k_half_d:.3g} (kappa_1/2/rho = {k_half_d / rho:.2f})")
        for name, s in series.items():
            ks = [np.inf] if name.startswith("GMMSE sampled") else list(kappas)
            for n_k, kappa in enumerate(ks):
                rows.append([rho, float(kappa), name] + [float(x) for q in ("tm", "idg", "odg") for x in s[q][n_k]])
    axes[0, 0].legend(fontsize=7, loc="best")
    p = POINT
    fig.suptitle(f"alpha={p['alpha']}, tau={p['tau']}, sigma={p['sigma']}, lam={p['lam']}, D={dim}; "
                 "gray: kappa = rho, purple: prediction-distance crossover", fontsize=9)
    files = save_figure(fig, out_dir, "bayes_crossover", TABLE_HEADER, rows)
    from lowrank_icl.validation.io import atomic_write_csv
    files.append(atomic_write_csv(Path(out_dir) / "bayes_crossover_distances.csv", DISTANCE_HEADER, dist_rows))
    caption.append("prediction distances (rho, kappa, series, mean, se):")
    caption += [f"  {r[0]} {r[1]:.3g} {r[2]}: {r[3]:.4g} +- {r[4]:.2g}" for r in dist_rows]
    plt.close(fig)
    return FigureOutput("bayes_crossover", files, TABLE_HEADER, rows, caption="\n".join(caption))
