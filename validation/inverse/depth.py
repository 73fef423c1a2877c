r"""Depth study of the trained LT: K = 1, 2, 4, 8, 16 layers for each loss, against TRE and ORE.

Three questions, each answered by one function of the cached runs (``RunCache``):

* does the test error approach TRE and ORE as K grows? (:func:`depth_runs`: MSE per K, loss, sigma);
* does the error vs sigma become linear (a power law) with depth? (:func:`sigma_slopes`: the log-log
  slope of the MSE in sigma per K and loss, with its 95% interval and chi2/dof);
* how do the learned Gamma_k relate to preconditioned GD steps towards the posterior mean?
  (:func:`gamma_alignment`). A GD step on the context misfit ||Y - X w||^2 / (2N) preconditioned
  by the prior covariance is w <- w + eta Sigma_w X^T (Y - X w) / N: Gamma_k = eta_k Sigma_w. For
  each learned Gamma_k we report the best such eta_k = <Gamma_k, Sigma_w>_F / ||Sigma_w||_F^2, the
  cosine between Gamma_k and Sigma_w (1: exactly a prior-preconditioned GD step), the share of
  ||Gamma_k||_F inside span U (P_U Gamma_k P_U), and eta_k times the largest eigenvalue of the
  preconditioned design (stability of GD needs < 2).

Sizes: :data:`DEPTH_SCALE` keeps the paper's ratios d/N = 2 and r/N = 0.2 at d = 20 (n_s = 2000).
Training: :data:`DEPTH_LT`, the default LT settings with a safety stop at 3000 L-BFGS iterations per
precision phase: the data-misfit losses have no finite minimizer at depth (K >= 8 layers can
approach the interpolating fit of each context, so the loss creeps towards its infimum), and such
runs end unconverged at the cap, reported as ``converged=False``.
"""
from __future__ import annotations

import numpy as np

from lowrank_icl.numerics.inverse import LT_LOSSES
from lowrank_icl.validation.inverse.experiments import (
    BASELINES,
    LTSettings,
    RunCache,
    Scale,
    compare_estimators,
    fit_loglog_slope,
    quiet_params,
)

DEPTH_SCALE = Scale(d=20, N=10, r=2, n_s=2000, n_test=1000, K=4, seeds=(0, 1, 2), sigmas=(0.1,),
                    ranks=(2,), sigma_sweep=(0.01, 0.1, 0.3), conds=(1,), n_prior=0, depths=(1, 2, 4, 8, 16))
DEPTH_LT = LTSettings(maxiter=3000)


def depth_runs(sc: Scale = DEPTH_SCALE, progress=None, seeds=None, sigmas=None, depths=None, losses=LT_LOSSES,
               cache: RunCache | None = None, cached_only: bool = False) -> dict:
    """{(sigma, K): EstimatorComparison} for every depth (LT rows) and {(sigma, 0): EstimatorComparison} for the baselines.

    ``cached_only``: use only the runs already in the cache (per cell, the seeds found; a cell or a
    loss without any is left out), computing nothing -- for reports while runs are still going.
    """
    cache = cache or RunCache()
    seeds = tuple(sc.seeds if seeds is None else seeds)
    out = {}
    for sigma in (sc.sigma_sweep if sigmas is None else sigmas):
        p = quiet_params(d=sc.d, N=sc.N, r=sc.r, sigma=sigma, n_s=sc.n_s)
        kw = dict(n_test=sc.n_test, cache=cache, progress=progress, theory=False, lt=DEPTH_LT)

        def found(K, name, p=p):
            if not cached_only:
                return seeds
            return tuple(s for s in seeds if cache.job(p, K, name, s, 0, sc.n_test, DEPTH_LT) in cache.cache)
        base = found(1, "ORE")
        if base:
            out[(sigma, 0)] = compare_estimators(p, K=1, losses=(), include=BASELINES, seeds=base, **kw)
        for K in (sc.depths if depths is None else depths):
            per_loss = {loss: found(K, f"LT-{loss}") for loss in losses}
            scores, arrays, runs, model = {}, {}, {}, None
            for loss, sd in per_loss.items():
                if sd:
                    c = compare_estimators(p, K=K, losses=(loss,), include=(), seeds=sd, **kw)
                    scores.update(c.scores)
                    arrays.update(c.arrays)
                    runs.update(c.runs)
                    model = c
            if model is not None:
                from dataclasses import replace
                out[(sigma, K)] = replace(model, scores=scores, arrays=arrays, runs=runs)
    return out


def sigma_slopes(runs: dict, losses=LT_LOSSES) -> list[tuple]:
    """(estimator, K, slope, ci_lo, ci_hi, chi2/dof) of log MSE vs log sigma, per depth and loss (+ TRE, ORE).

    Uses the sigmas at which that estimator and depth have runs (nan slope below three).
    """
    depths = sorted({K for _, K in runs if K > 0})
    rows = []

    def fit(K, name):
        pts = sorted((s, runs[(s, k)].scores[name]) for s, k in runs if k == K and name in runs[(s, k)].scores)
        f = fit_loglog_slope([p[0] for p in pts], [p[1].mean for p in pts], [p[1].sem for p in pts])
        return (name, K, f.slope, f.ci[0], f.ci[1], f.chi2_dof)
    rows += [fit(0, name) for name in BASELINES]
    rows += [fit(K, f"LT-{loss}") for loss in losses for K in depths]
    return rows


def gamma_alignment(Gammas: np.ndarray, model) -> list[dict]:
    """Per layer k: eta_k, cosine(Gamma_k, Sigma_w), share of ||Gamma_k||_F in span U, eta_k * rho (see module)."""
    Sigma_w = model.Sigma_w
    U = model.U
    P = U @ U.T
    # largest eigenvalue of the prior-preconditioned population design Sigma_w Sigma_x (for the GD stability bound)
    rho = float(np.max(np.linalg.eigvals(Sigma_w @ model.Sigma_x).real))
    out = []
    for G in Gammas:
        eta = float(np.sum(G * Sigma_w) / np.sum(Sigma_w * Sigma_w))
        out.append({"eta": eta, "cosine": float(np.sum(G * Sigma_w) / (np.linalg.norm(G) * np.linalg.norm(Sigma_w))),
                    "in_span": float(np.linalg.norm(P @ G @ P) / np.linalg.norm(G)),
                    "eta_rho": eta * rho})
    return out


def median_errors(runs: dict, sc: Scale = DEPTH_SCALE) -> dict:
    """{(sigma, K, estimator): (mean over seeds of the per-seed median test MSE, its SE across seeds)}
    for every cell of :func:`depth_runs` output (baselines under K = 0): see
    :func:`lowrank_icl.validation.inverse.medians.median_test_errors`."""
    from lowrank_icl.validation.inverse.medians import median_test_errors
    out = {}
    for (s, K), res in runs.items():
        names = ("ORE", "TRE") if K == 0 else tuple(res.arrays)
        out.update({(s, K, name): v for name, v in median_test_errors(res, sc.n_test, names).items()})
    return out
