r"""The ``full_attention`` figure: full linear attention trained from small init vs reduced ridge vs theory.

For each D and seed, :func:`lowrank_icl.validation.forward.attention.compare_with_ridge` trains the full
one-layer linear self-attention (V, W of size (D+1) x (D+1), L-BFGS on the hand-derived gradient) and
the reduced ridge Gamma_hat on the same pretraining prompts, and computes both models' exact test
errors (TM, IDG, ODG) at every test context ratio alpha_t, plus a sampled-prompt check of the
attention at alpha_t = alpha.

Panel (a): errors vs alpha_t at the largest D -- theory (numerics.solve, curves), attention (filled
markers, mean +- SE over seeds), ridge (open markers), at lam = 0.1. Panel (b): for lam = 0.1 and
lam = 0.01, the paired excess
e_attention - e_ridge at alpha_t = alpha vs D on log axes (mean +- SE of the per-seed differences),
with weighted power-law fits a D^-b.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lowrank_icl.numerics import solve
from lowrank_icl.numerics.power_law import log_log_fit
from lowrank_icl.numerics.results import PROTOCOLS
from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure
from lowrank_icl.validation.forward.attention import run_comparisons
from lowrank_icl.validation.forward.sampling import Sizes
from lowrank_icl.validation.stats import Estimate, compare, extrapolate

POINT = {"alpha": 2.0, "tau": 2.0, "kappa": 1.0, "rho": 0.5, "sigma": 0.3, "lam": 0.1}
SMALL_LAM = 0.01            # second ridge strength: panel (b) and the table only
ALPHA_TEST_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
COLORS = {"tm": "tab:blue", "idg": "tab:orange", "odg": "tab:green"}
TABLE_HEADER = ("lam", "D", "protocol", "attention", "attention_se", "attention_sampled", "attention_sampled_se",
                "ridge", "ridge_se", "excess", "excess_se", "excess_gamma_part", "gamma_distance", "theory", "pass_3se",
                "sec_per_training")


def _settings(quick: bool, tiny: bool = False):
    """(dims, seeds, sampled test prompts per seed); ``tiny`` is the smoke-test size."""
    if tiny:
        return (4, 5, 6), tuple(range(3)), 200
    if quick:
        return (12, 16, 20), tuple(range(4)), 2000
    return (20, 30, 40, 60), tuple(range(6)), 5000


def _theory(sizes: Sizes, p: dict, alpha_test: float):
    """Asymptotic errors at the ratios the simulation actually used (integer L, M, M0, r, L~)."""
    sol = solve(alpha=sizes.alpha, tau=sizes.tau, kappa=sizes.kappa, rho=sizes.rho, sigma=p["sigma"], lam=p["lam"])
    return sol.errors(alpha_test=alpha_test)


def excess_power_law(dims, estimates):
    """Fit the paired excess as a D^(-b) by weighted least squares of log(excess) on log(D), weights
    (mean/SE)^2 (delta method), over the points with mean > 2 SE. Returns (a, b, SE(b)), SE(b)
    widened by the Birge ratio sqrt(chi^2/dof) when above 1 (as in validation.stats); NaNs when
    fewer than two points are resolved."""
    d = np.asarray(dims, dtype=float)
    y = np.array([e.mean for e in estimates])
    se = np.array([e.sem for e in estimates])
    keep = y > 2 * se
    if keep.sum() < 2:
        return float("nan"), float("nan"), float("nan")
    fit = log_log_fit(d[keep], y[keep], se[keep])
    return fit.prefactor, -fit.exponent, fit.exponent_se


def _point_rows(p, dims, by_dim, i_train, excess):
    rows = []
    for D in dims:
        rs = by_dim[D]
        sizes = Sizes.from_ratios(D, p["alpha"], p["tau"], p["kappa"], p["rho"])
        th = _theory(sizes, p, rs[0]["context_lengths"][i_train] / D)
        sec = float(np.mean([r["seconds_attention"] for r in rs]))
        for q in PROTOCOLS:
            att = Estimate.of([r["attention"][q][i_train] for r in rs])
            rid = Estimate.of([r["ridge"][q][i_train] for r in rs])
            dif = Estimate.of(np.array(att.values) - np.array(rid.values))
            excess[q].append(dif)
            # the part of the excess carried by Gamma_eff alone (the rest is the bypass variance)
            dif_gamma = float(np.mean([r["attention_gamma"][q][i_train] - r["ridge"][q][i_train] for r in rs]))
            gdist = float(np.mean([r["gamma_distance"] for r in rs]))
            if q in ("idg", "odg") and "sampled" in rs[0]:
                sm = np.array([r["sampled"][q] for r in rs])   # (seeds, [mean, se]) per seed
                samp, samp_se = float(sm[:, 0].mean()), float(np.sqrt(np.sum(sm[:, 1] ** 2)) / len(rs))
            else:
                samp, samp_se = float("nan"), float("nan")
            rows.append((p["lam"], D, q, att.mean, att.sem, samp, samp_se, rid.mean, rid.sem, dif.mean, dif.sem,
                         dif_gamma, gdist, float(getattr(th, q)), "", sec))
    return rows


@figure("full_attention", "full linear attention (L-BFGS) vs reduced ridge vs theory, errors vs alpha_t")
def build_full_attention(out_dir, quick, progress, tiny=False) -> FigureOutput:
    import matplotlib.pyplot as plt

    p = POINT
    p_small = {**POINT, "lam": SMALL_LAM}
    dims, seeds, n_test = _settings(quick, tiny)
    a_tests = [f * p["alpha"] for f in ALPHA_TEST_FACTORS]
    i_train = ALPHA_TEST_FACTORS.index(1.0)
    jobs = [dict(dim=D, seed=s, alpha_tests=a_tests, n_test_prompts=n_test, **p) for D in dims for s in seeds]
    jobs += [dict(dim=D, seed=s, alpha_tests=[p["alpha"]], **p_small) for D in dims for s in seeds]
    progress(f"{len(jobs)} trainings (lam in {{{p['lam']}, {SMALL_LAM}}} x D in {list(dims)} x {len(seeds)} seeds), "
             "attention + ridge each")
    results = run_comparisons(jobs, workers=1 if tiny else 2, progress=progress)
    n_main = len(dims) * len(seeds)
    by_dim = {D: [r for r in results[:n_main] if r["dim"] == D] for D in dims}
    by_dim_small = {D: [r for r in results[n_main:] if r["dim"] == D] for D in dims}

    excess = {q: [] for q in PROTOCOLS}
    excess_small = {q: [] for q in PROTOCOLS}
    rows = _point_rows(p, dims, by_dim, i_train, excess)
    rows += _point_rows(p_small, dims, by_dim_small, 0, excess_small)
    # 1/D extrapolation of both models at alpha_t = alpha, compared with theory at the nominal point
    nominal = solve(**p).errors()
    for q in PROTOCOLS:
        for model in ("attention", "ridge"):
            means, sems = [], []
            for D in dims:
                rs = by_dim[D]
                sizes = Sizes.from_ratios(D, p["alpha"], p["tau"], p["kappa"], p["rho"])
                shift = float(getattr(_theory(sizes, p, rs[0]["context_lengths"][i_train] / D), q)) \
                    - float(getattr(nominal, q))
                e = Estimate.of([r[model][q][i_train] for r in rs])
                means.append(e.mean - shift)
                sems.append(e.sem)
            ex = extrapolate(dims, means, sems)
            cmp = compare(float(getattr(nominal, q)), ex)
            rows.append((p["lam"], f"inf({model})", q, ex.e_inf, ex.se, float("nan"), float("nan"), float("nan"),
                         float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), cmp.theory, "pass" if cmp.passed else "FAIL", ""))
    # the paired excess fitted as a D^-b, both ridge strengths (value b, SE(b))
    for lam_value, exc in ((p["lam"], excess), (SMALL_LAM, excess_small)):
        for q in PROTOCOLS:
            _, b, b_se = excess_power_law(dims, exc[q])
            rows.append((lam_value, "excess~D^-b", q, b, b_se, float("nan"), float("nan"), float("nan"), float("nan"),
                         float("nan"), float("nan"), float("nan"), float("nan"), float("nan"), "", ""))

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    D = dims[-1]
    rs = by_dim[D]
    grid = np.geomspace(a_tests[0], a_tests[-1], 60)
    th_curve = solve(**p).errors(alpha_test=grid)
    x_sim = np.array(rs[0]["context_lengths"]) / D
    for q in PROTOCOLS:
        c = COLORS[q]
        ax.plot(grid, getattr(th_curve, q), color=c, lw=1.5, label=f"{q.upper()} theory")
        for model, mk, fill in (("attention", "o", c), ("ridge", "s", "none")):
            vals = np.array([r[model][q] for r in rs])          # (seeds, alpha_tests)
            ax.errorbar(x_sim * (1.03 if model == "ridge" else 1.0), vals.mean(0),
                        yerr=vals.std(0, ddof=1) / np.sqrt(len(rs)), fmt=mk, color=c, mfc=fill, ms=5,
                        capsize=2, label=f"{q.upper()} {'full attention' if model == 'attention' else 'reduced ridge'}")
    ax.set_xscale("log")
    ax.set_xticks(a_tests, [f"{a:g}" for a in a_tests])
    ax.minorticks_off()
    ax.set_xlabel(r"test context ratio $\alpha_t = \tilde L / D$")
    ax.set_ylabel(r"test error $e$")
    ax.set_title(rf"(a) $\lambda$ = {p['lam']}: means $\pm$ SE at D = {D} ({len(rs)} seeds), not extrapolated",
                 fontsize=10)
    ax.legend(fontsize=7, ncol=1)
    dd = np.array(dims, dtype=float)
    for lam_value, exc, mk, ls in ((p["lam"], excess, "o", "-"), (SMALL_LAM, excess_small, "^", "--")):
        for k, q in enumerate(PROTOCOLS):
            ests = exc[q]
            m = np.array([e.mean for e in ests])
            e_se = np.array([e.sem for e in ests])
            pos = m > 0                                   # log axis: non-positive means are not drawn
            amp, b, b_se = excess_power_law(dims, ests)
            lab = rf"{q.upper()}, $\lambda$={lam_value:g}" + ("" if np.isnan(b) else rf", $b$={b:.2f}$\pm${b_se:.2f}")
            bx.errorbar(dd[pos] * (1 + 0.02 * (k - 1)), m[pos], yerr=np.minimum(e_se[pos], 0.95 * m[pos]), fmt=mk,
                        color=COLORS[q], capsize=2, label=lab)
            if not np.isnan(b):
                xs = np.geomspace(dd.min() * 0.9, dd.max() * 1.1, 20)
                bx.plot(xs, amp * xs ** (-b), ls=ls, color=COLORS[q], lw=0.9)
    bx.set_xscale("log")
    bx.set_yscale("log")
    bx.set_xticks(list(dims), [str(x) for x in dims])
    bx.minorticks_off()
    bx.set_xlabel(r"token dimension $D$")
    bx.set_ylabel(r"$e_{\rm attention} - e_{\rm ridge}$ at $\alpha_t = \alpha$")
    bx.set_title(r"(b) paired excess (mean $\pm$ SE over seeds), fits $a D^{-b}$")
    bx.legend(fontsize=7, ncol=2)
    fig.suptitle(rf"Full linear attention vs reduced ridge: $\alpha$={p['alpha']}, $\tau$={p['tau']}, "
                 rf"$\kappa$={p['kappa']}, $\rho$={p['rho']}, $\sigma$={p['sigma']}, $\lambda$={p['lam']} (b: also {SMALL_LAM}), "
                 rf"$\sigma_t=\sigma$", fontsize=10)
    fig.tight_layout()
    files = save_figure(fig, Path(out_dir), "full_attention", TABLE_HEADER, rows)
    plt.close(fig)
    caption = (f"Full one-layer linear attention trained by L-BFGS from small random init on the same prompts "
               f"as the reduced ridge; exact test errors at alpha_t = alpha; D in {list(dims)}, {len(seeds)} seeds; "
               f"lam = {p['lam']} and {SMALL_LAM}. Rows inf(model): 1/D extrapolation vs theory (pass = within "
               f"3 SE); rows excess~D^-b: the paired excess fitted as a D^-b (b, SE).")
    return FigureOutput("full_attention", files, TABLE_HEADER, rows, caption)
