r"""Experiments of issue 5 (inverse ICL): RE, TRE, LT (three losses) and ORE on fresh contexts.

:func:`compare_estimators` is the one runner: it draws one task distribution (seeded), n_s training
contexts and n_test test contexts, fits every estimator on the training contexts, and scores
``||w_hat - w||^2 / d`` (MSE per coordinate) on the test contexts with its standard error. The
four experiments call it over parameter sweeps; the CLI calls it once.

Sizes: ``SCALES`` holds 'quick' (README job, small d), 'medium' (d=100, N=50 but fewer tasks,
fewer layers and L-BFGS iterations) and 'full' (the stated d=100, N=50, n_s=1e4, K=4). The figure
builders use 'quick' or 'full'; the environment variable LOWRANK_ICL_INVERSE_SCALE overrides the
full-mode scale (e.g. 'medium').
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
from lowrank_icl.numerics import (
    LT,
    LT_LOSSES,
    ORE,
    RE,
    TRE,
    InverseModel,
    InverseParams,
    InverseRegimeWarning,
    mse_per_coordinate,
)

ESTIMATOR_ORDER = ("RE", "TRE", "LT-unsupervised", "LT-heldout", "LT-supervised", "ORE")


@dataclass(frozen=True)
class Scale:
    """Sizes of one run of the experiments."""

    d: int
    N: int
    r: int
    n_s: int
    n_test: int
    K: int
    maxiter: int
    sigmas: tuple          # experiment 1 noise levels
    ranks: tuple           # experiment 3 ranks (r/N sweep of experiment 4)
    sigma_sweep: tuple     # experiment 4 noise sweep
    conds: tuple           # experiment 4 condition-number sweep
    n_prior: int           # experiment 2: contexts used for the output mean and covariance


SCALES = {
    "quick": Scale(d=30, N=15, r=3, n_s=1500, n_test=600, K=2, maxiter=80, sigmas=(0.03, 0.1, 0.3),
                   ranks=(1, 2, 3, 5, 8, 12, 15), sigma_sweep=(0.01, 0.03, 0.1, 0.3, 1.0), conds=(1, 10, 100),
                   n_prior=3000),
    "medium": Scale(d=100, N=50, r=10, n_s=2000, n_test=1000, K=2, maxiter=80, sigmas=(0.03, 0.1, 0.3),
                    ranks=(2, 5, 10, 20, 30, 40, 50), sigma_sweep=(0.01, 0.03, 0.1, 0.3, 1.0),
                    conds=(1, 3, 10, 30, 100), n_prior=10000),
    "full": Scale(d=100, N=50, r=10, n_s=10000, n_test=2000, K=4, maxiter=250, sigmas=(0.03, 0.1, 0.3),
                  ranks=(2, 5, 10, 20, 30, 40, 50), sigma_sweep=(0.01, 0.03, 0.1, 0.3, 1.0),
                  conds=(1, 3, 10, 30, 100), n_prior=10000),
}


def scale_for(quick: bool) -> tuple[str, Scale]:
    name = "quick" if quick else os.environ.get("LOWRANK_ICL_INVERSE_SCALE", "full")
    if name not in SCALES:
        raise ValueError(f"LOWRANK_ICL_INVERSE_SCALE must be one of {sorted(SCALES)} (got {name!r})")
    return name, SCALES[name]


@dataclass(frozen=True)
class EstimatorScore:
    """Test error of one estimator: mean and SE of ||w_hat - w||^2/d, plus its train cost."""

    mean: float
    sem: float
    train_seconds: float
    iterations: int = 0
    converged: bool = True
    train_loss: float = float("nan")


@dataclass(frozen=True, eq=False)
class Comparison:
    """Result of :func:`compare_estimators`."""

    params: InverseParams
    K: int
    scores: dict                    # name -> EstimatorScore
    rank_recovered: int | None      # TRE's r_hat
    ore_theory: float | None        # exact ORE risk / d (theory), None where it does not apply
    lt1_theory: float | None        # optimal one-layer LT risk / d (theory), None where it does not apply
    seconds: float
    model: InverseModel = field(repr=False)
    ore_conditional: tuple = (None, None)   # mean and SE over the test designs of tr Sigma_post / d
    estimators: dict = field(repr=False, default_factory=dict)

    def to_json(self) -> dict:
        def num(x):
            return None if x is None or not np.isfinite(x) else float(x)
        return {"mse": {k: {"mean": v.mean, "sem": v.sem} for k, v in self.scores.items()},
                "train": {k: {"seconds": v.train_seconds, "iterations": v.iterations,
                              "converged": v.converged, "loss": num(v.train_loss)}
                          for k, v in self.scores.items()},
                "ore_theory": self.ore_theory, "lt1_theory": self.lt1_theory,
                "ore_conditional_risk": {"mean": self.ore_conditional[0], "sem": self.ore_conditional[1]},
                "rank_recovered": self.rank_recovered, "seconds": self.seconds,
                "params": {"d": self.params.d, "N": self.params.N, "r": self.params.r,
                           "sigma": self.params.sigma, "cond": self.params.cond, "n_s": self.params.n_s,
                           "K": self.K}}


# --- theory hooks (one home: theory/inverse.py, numerics/inverse_theory.py, owned by the theory workstream)
def ore_theory(model: InverseModel) -> float | None:
    """Exact ORE risk per coordinate, E_X tr Sigma_post / d (numerics.inverse_theory.ore_risk)."""
    from lowrank_icl.numerics import ore_risk
    if model.sigma <= 0:
        return None
    return float(ore_risk(model.Sigma_x, model.U, model.Lambda, model.sigma, model.N).risk) / model.d


def lt1_theory(model: InverseModel) -> float | None:
    """Risk per coordinate of the optimal one-layer LT (K = 1, supervised, n_s -> infinity)."""
    from lowrank_icl.numerics import lt1_optimal
    return float(lt1_optimal(model.Sigma_x, model.Sigma_w, model.w0, model.sigma, model.N).risk) / model.d


# --- the runner ------------------------------------------------------------------------------
def _score(est, test, seconds, train=None) -> EstimatorScore:
    e = mse_per_coordinate(est.predict(test.X, test.Y), test.W)
    if train is None:
        return EstimatorScore(float(e.mean()), float(e.std(ddof=1) / np.sqrt(e.size)), seconds)
    return EstimatorScore(float(e.mean()), float(e.std(ddof=1) / np.sqrt(e.size)), train.seconds,
                          train.iterations, train.converged, train.value)


def compare_estimators(params: InverseParams, *, K: int = 4, losses=LT_LOSSES, n_test: int = 2000,
                       seed: int = 0, maxiter: int = 250, include=("RE", "TRE", "ORE"), progress=None,
                       keep_estimators: bool = False, theory: bool = True) -> Comparison:
    """Fit RE, TRE, LT (one per loss in ``losses``) and ORE on n_s tasks and score them on n_test fresh ones.

    The model (Q, U) comes from ``seed``; training and test contexts from the same generator,
    so every run is reproducible. Theory values come from numerics.inverse_theory.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    model = InverseModel.draw(params, rng)
    train = model.sample(params.n_s, rng)
    test = model.sample(n_test, rng)
    say = progress or (lambda msg: None)
    scores, ests = {}, {}
    rank = None
    for name in include:
        t0 = time.perf_counter()
        est = {"RE": RE, "TRE": TRE}.get(name, None)
        est = ORE.from_model(model) if name == "ORE" else est()
        est.fit(train.X, train.Y)
        if name == "TRE":
            rank = est.prior_.r
        scores[name] = _score(est, test, time.perf_counter() - t0)
        ests[name] = est
    for loss in losses:
        say(f"training LT K={K} loss={loss} on n_s={params.n_s} (d={params.d}, N={params.N}, r={params.r}, "
            f"sigma={params.sigma:g}, cond={params.cond:g})")
        lt = LT(K=K, loss=loss, maxiter=maxiter).fit(train.X, train.Y, train.W)
        scores[f"LT-{loss}"] = _score(lt, test, 0.0, lt.train_)
        ests[f"LT-{loss}"] = lt
    cond_risk = ORE.from_model(model).conditional_risk(test.X)
    ore_conditional = (float(cond_risk.mean()), float(cond_risk.std(ddof=1) / np.sqrt(cond_risk.size)))
    ordered = {k: scores[k] for k in ESTIMATOR_ORDER if k in scores}
    ordered.update({k: v for k, v in scores.items() if k not in ordered})
    return Comparison(params, K, ordered, rank, ore_theory(model) if theory else None,
                      lt1_theory(model) if theory else None, time.perf_counter() - start, model,
                      ore_conditional=ore_conditional, estimators=ests if keep_estimators else {})


# --- statistics --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlopeFit:
    r"""Weighted least-squares fit log(err) = a + slope log(x).

    Weights from the SE of log(err) ~ sem/mean (delta method). ``ci`` is the 95% interval
    slope +- t_{0.975, n-2} SE x max(1, sqrt(chi2/dof)): the SE is inflated by the lack of fit
    when the points are not on a power law (then the slope is an average, not a law).
    """

    slope: float
    se: float
    ci: tuple
    chi2_dof: float
    n: int


def fit_loglog_slope(x, mean, sem) -> SlopeFit:
    from scipy import stats
    x, mean, sem = (np.asarray(a, dtype=float) for a in (x, mean, sem))
    ok = (mean > 0) & np.isfinite(mean) & (x > 0)
    x, mean, sem = x[ok], mean[ok], sem[ok]
    n = x.size
    if n < 3:
        return SlopeFit(float("nan"), float("nan"), (float("nan"), float("nan")), float("nan"), n)
    lx, ly = np.log(x), np.log(mean)
    sd = np.maximum(sem / mean, 1e-12)
    A = np.column_stack([np.ones(n), lx]) / sd[:, None]
    coef, *_ = np.linalg.lstsq(A, ly / sd, rcond=None)
    cov = np.linalg.inv(A.T @ A)
    chi2 = float(np.sum(((ly - coef[0] - coef[1] * lx) / sd) ** 2))
    dof = n - 2
    inflate = max(1.0, np.sqrt(chi2 / dof))
    se = float(np.sqrt(cov[1, 1]) * inflate)
    t = float(stats.t.ppf(0.975, dof))
    return SlopeFit(float(coef[1]), se, (float(coef[1] - t * se), float(coef[1] + t * se)), chi2 / dof, n)


def quiet_params(**kw) -> InverseParams:
    """InverseParams without the r >= N warning (sweeps through r = N on purpose)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InverseRegimeWarning)
        return InverseParams(**kw)
