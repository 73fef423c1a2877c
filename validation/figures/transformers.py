r"""Trained transformers against the linear theory (``transformers_kappa``, ``transformers_rho``,
``transformers_alpha_test``; need the ``[nn]`` extra).

At every point the three models of :mod:`lowrank_icl.validation.forward.transformers` -- the full
linear attention (exact test errors), the one-layer softmax attention and the two-block MLP
transformer (sampled test errors, mean +- SE over fresh prompts) -- are trained with Adam on the
pretraining prompts of the seed, the same prompts the reduced model sees. Lines: the asymptotic
theory (:func:`lowrank_icl.numerics.solve`) at the ratios of the integer sizes, lam = 0.
Crosses: the ridgeless reduced model fitted on the same prompts (exact errors).

- ``transformers_kappa``: errors vs task diversity kappa at rho = 0.25 and 0.5 (dotted line kappa = rho);
- ``transformers_rho``: errors vs rank ratio rho at fixed kappa;
- ``transformers_alpha_test``: errors vs test context ratio alpha_t for one trained point.

Runs are shared between the three figures within one process (memoized on the job).
"""
from __future__ import annotations

import textwrap

import numpy as np

from lowrank_icl.validation.figures.registry import FigureOutput, figure, save_figure
from lowrank_icl.numerics.results import PROTOCOLS
from lowrank_icl.validation.stats import mean_and_sem

MODELS = ("linear", "softmax", "mlp")
COLORS = {"tm": "tab:blue", "idg": "tab:orange", "odg": "tab:green"}
MARKERS = {"linear": "s", "softmax": "o", "mlp": "^"}
TABLE_HEADER = ("model", "rho", "kappa", "alpha_test", "protocol", "trained", "trained_se", "method", "reduced",
                "theory", "loss", "train_seconds")


def _settings(quick: bool) -> dict:
    if quick:
        return {"point": {"dim": 6, "alpha": 3.0, "tau": 3.0, "sigma": 0.1},
                "kappas": (0.5, 2.0), "rhos_kappa": (0.5,), "rhos": (0.5, 1.0), "kappa_rho": 0.5,
                "alpha_factors": (0.5, 1.0, 2.0), "alpha_point": (0.5, 2.0),
                "steps": {"linear": 300, "softmax": 150, "mlp": 40}, "batch": {"mlp": None},
                "learning_rate": {"mlp": 2e-3},
                "n_test": 200, "seed": 0}
    return {"point": {"dim": 16, "alpha": 4.0, "tau": 8.0, "sigma": 0.1},
            "kappas": (0.125, 0.25, 0.5, 2.0), "rhos_kappa": (0.25, 0.5), "rhos": (0.25, 0.5, 1.0),
            "kappa_rho": 0.5, "alpha_factors": (0.25, 0.5, 1.0, 2.0, 4.0), "alpha_point": (0.5, 2.0),
            "steps": {"linear": 2000, "softmax": 800, "mlp": 400}, "batch": {"mlp": 256},
            "learning_rate": {"mlp": 2e-3}, "n_test": 1000, "seed": 0}


_MEMO: dict = {}


def _run(model, rho, kappa, cfg, progress, alpha_tests=None):
    from lowrank_icl.validation.forward.transformers import train_transformer
    p = cfg["point"]
    key = (model, rho, kappa, tuple(sorted(p.items())), cfg["steps"][model], cfg["batch"].get(model),
           cfg["learning_rate"].get(model), cfg["n_test"], cfg["seed"],
           None if alpha_tests is None else tuple(alpha_tests))
    if key not in _MEMO:
        res = train_transformer(model=model, dim=p["dim"], alpha=p["alpha"], tau=p["tau"], kappa=kappa, rho=rho,
                                sigma=p["sigma"], lam=0.0, steps=cfg["steps"][model], seed=cfg["seed"],
                                batch_size=cfg["batch"].get(model), alpha_tests=alpha_tests,
                                learning_rate=cfg["learning_rate"].get(model),
                                n_test_prompts=cfg["n_test"])
        progress(f"{model} rho={rho} kappa={kappa}: trained {res.train['seconds']:.1f} s, loss "
                 f"{res.loss:.4g}, IDG {mean_and_sem(res.errors().idg)[0]:.4g} "
                 f"(theory {float(res.theory_errors().idg):.4g})")
        _MEMO[key] = res
    return _MEMO[key]


def _alpha_tests(cfg, rho, kappa):
    if (rho, kappa) == cfg["alpha_point"]:
        a = cfg["point"]["alpha"]
        return [a] + [a * f for f in cfg["alpha_factors"] if f != 1.0]
    return None


def _rows(res, rho, kappa, alpha_test=None):
    a = res.alpha_tests[0] if alpha_test is None else alpha_test
    return [(res.model, rho, kappa, a, p, *mean_and_sem(getattr(res.errors(a), p)),
             res.error_method, getattr(res.reduced_errors(a), p), float(getattr(res.theory_errors(a), p)), res.loss,
             res.train["seconds"]) for p in PROTOCOLS]


def _theory_curve(xname, xs, cfg, fixed):
    from lowrank_icl.numerics import solve
    from lowrank_icl.validation.forward.sampling import Sizes
    p = cfg["point"]
    out = {q: [] for q in PROTOCOLS}
    for x in xs:
        args = dict(fixed, **{xname: x})
        if xname == "alpha_test":
            s = Sizes.from_ratios(p["dim"], p["alpha"], p["tau"], args["kappa"], args["rho"])
            err = solve(alpha=s.alpha, tau=s.tau, kappa=s.kappa, rho=s.rho, sigma=p["sigma"]).errors(
                alpha_test=x, sigma_test=p["sigma"])
        else:
            err = solve(alpha=p["alpha"], tau=p["tau"], kappa=args["kappa"], rho=args["rho"], sigma=p["sigma"]).errors()
        for q in PROTOCOLS:
            out[q].append(float(getattr(err, q)))
    return out


def _draw(ax, xs_by_model, res_by_model, xgrid, theory, alpha_test=None):
    for q in PROTOCOLS:
        ax.plot(xgrid, theory[q], color=COLORS[q], lw=1.3, label=f"theory {q.upper()}")
    for m in MODELS:
        xs, rs = xs_by_model[m], res_by_model[m]
        for q in PROTOCOLS:
            if alpha_test is None:
                y, e = zip(*(mean_and_sem(getattr(r.errors(), q)) for r in rs))
            else:
                y, e = zip(*(mean_and_sem(getattr(rs[0].errors(a), q)) for a in xs))
            ax.errorbar(xs, y, yerr=e, fmt=MARKERS[m], color=COLORS[q], ms=5, capsize=2,
                        mfc="white" if m == "linear" else COLORS[q], label=f"{m} {q.upper()}" if q == "tm" else None)
    for q in PROTOCOLS:
        if alpha_test is None:
            red = [getattr(r.reduced_errors(), q) for r in res_by_model["linear"]]
            ax.plot(xs_by_model["linear"], red, "x", color=COLORS[q], ms=6,
                    label="reduced ridge (same data)" if q == "tm" else None)
        else:
            r0 = res_by_model["linear"][0]
            ax.plot(xs_by_model["linear"], [getattr(r0.reduced_errors(a), q) for a in xs_by_model["linear"]], "x", color=COLORS[q],
                    ms=6, label="reduced ridge (same data)" if q == "tm" else None)
    ax.set_yscale("log")
    ax.set_ylabel("test error")


def _caption(cfg):
    p = cfg["point"]
    return (f"D={p['dim']}, alpha={p['alpha']}, tau={p['tau']}, sigma={p['sigma']}, lam=0, seed {cfg['seed']}; "
            f"Adam steps {cfg['steps']}, MLP batch {cfg['batch'].get('mlp')}; markers: square linear attention (exact), circle softmax, triangle MLP "
            f"(mean +- SE over {cfg['n_test']} fresh prompts); colors TM/IDG/ODG; lines theory")


def _finish(fig, out_dir, name, rows, cfg) -> FigureOutput:
    """Caption, save (PNG, PDF, CSV) and close a transformer figure."""
    import matplotlib.pyplot as plt
    fig.suptitle(textwrap.fill(_caption(cfg), 110), fontsize=7)
    files = save_figure(fig, out_dir, name, TABLE_HEADER, rows)
    plt.close(fig)
    return FigureOutput(name, files, TABLE_HEADER, rows, _caption(cfg))


@figure("transformers_kappa", "trained linear/softmax/MLP transformers vs kappa at rho = 0.25, 0.5, with theory",
        extra="nn", requires=("jax", "optax"))
def build_kappa(out_dir, quick, progress) -> FigureOutput:
    import matplotlib.pyplot as plt
    cfg = _settings(quick)
    rhos = cfg["rhos_kappa"]
    fig, axes = plt.subplots(1, len(rhos), figsize=(5.2 * len(rhos), 4.2), squeeze=False)
    rows = []
    kgrid = np.geomspace(min(cfg["kappas"]) / 1.3, max(cfg["kappas"]) * 1.3, 60)
    for ax, rho in zip(axes[0], rhos):
        res = {m: [_run(m, rho, k, cfg, progress, _alpha_tests(cfg, rho, k)) for k in cfg["kappas"]] for m in MODELS}
        for m in MODELS:
            for k, r in zip(cfg["kappas"], res[m]):
                rows += _rows(r, rho, k)
        _draw(ax, {m: list(cfg["kappas"]) for m in MODELS}, res, kgrid,
              _theory_curve("kappa", kgrid, cfg, {"rho": rho}))
        ax.axvline(rho, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("task diversity kappa = M0/D")
        ax.set_title(f"rho = {rho}")
    axes[0][0].legend(fontsize=7, ncol=2)
    return _finish(fig, out_dir, "transformers_kappa", rows, cfg)


@figure("transformers_rho", "trained linear/softmax/MLP transformers vs rho at fixed kappa, with theory",
        extra="nn", requires=("jax", "optax"))
def build_rho(out_dir, quick, progress) -> FigureOutput:
    import matplotlib.pyplot as plt
    cfg = _settings(quick)
    kappa = cfg["kappa_rho"]
    res = {m: [_run(m, rho, kappa, cfg, progress, _alpha_tests(cfg, rho, kappa)) for rho in cfg["rhos"]]
           for m in MODELS}
    rows = [row for m in MODELS for rho, r in zip(cfg["rhos"], res[m]) for row in _rows(r, rho, kappa)]
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    rgrid = np.linspace(min(cfg["rhos"]), 1.0, 40)
    _draw(ax, {m: list(cfg["rhos"]) for m in MODELS}, res, rgrid, _theory_curve("rho", rgrid, cfg, {"kappa": kappa}))
    ax.axvline(kappa, color="k", ls=":", lw=1)
    ax.set_xlabel("rank ratio rho = r/D")
    ax.set_title(f"kappa = {kappa}")
    ax.legend(fontsize=7, ncol=2)
    return _finish(fig, out_dir, "transformers_rho", rows, cfg)


@figure("transformers_alpha_test", "trained transformers vs test context ratio alpha_t, with theory",
        extra="nn", requires=("jax", "optax"))
def build_alpha_test(out_dir, quick, progress) -> FigureOutput:
    import matplotlib.pyplot as plt
    cfg = _settings(quick)
    rho, kappa = cfg["alpha_point"]
    a_tests = _alpha_tests(cfg, rho, kappa)
    res = {m: [_run(m, rho, kappa, cfg, progress, a_tests)] for m in MODELS}
    xs = sorted(a_tests)
    rows = [row for m in MODELS for a in xs for row in _rows(res[m][0], rho, kappa, a)]
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    agrid = np.geomspace(xs[0], xs[-1], 40)
    _draw(ax, {m: xs for m in MODELS}, res, agrid, _theory_curve("alpha_test", agrid, cfg,
                                                               {"rho": rho, "kappa": kappa}), alpha_test=True)
    ax.axvline(cfg["point"]["alpha"], color="k", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("test context ratio alpha_t = L~/D")
    ax.set_title(f"rho = {rho}, kappa = {kappa} (dotted: training alpha)")
    ax.legend(fontsize=7, ncol=2)
    return _finish(fig, out_dir, "transformers_alpha_test", rows, cfg)
