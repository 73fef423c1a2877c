r"""Inverse ICL experiments: RE, TRE, LT (three losses) and ORE on fresh contexts, over training seeds.

One *run* (:func:`run_estimator`) fits one estimator on the n_s training contexts of one training
seed and scores ``||w_hat - w||^2 / d`` (MSE per coordinate) on n_test fresh test contexts. The
task distribution (the bases Q, U) is drawn from ``model_seed`` and is the same for every training
seed; training and test contexts of seed s come from their own generators, so runs are
reproducible one by one and can be cached one by one (:class:`RunCache`, content-addressed on the
whole job and the code). :func:`compare_estimators` runs every estimator for several seeds and
reports, per estimator, the mean over seeds and its standard error *across seeds* (which contains
both the training-set and the test-context variability), plus the test-context SE of each seed.

Sizes: :data:`SCALES` 'quick' (seconds), 'medium' and 'paper' (d = 100, N = 50, n_s = 1e4, K = 4,
5 training seeds).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lowrank_icl.numerics.inverse import (InverseModel, InverseParams, InverseRegimeWarning, LT, LT_LOSSES, ORE,
                                          RE, TRE, lt1_risk_per_coordinate, mse_per_coordinate,
                                          ore_risk_per_coordinate)
from lowrank_icl.numerics.power_law import log_log_fit
from lowrank_icl.numerics.results import ConvergenceReport
from lowrank_icl.numerics.utils import check_seeds, json_document

ESTIMATOR_ORDER = ("RE", "TRE", "LT-unsupervised", "LT-heldout", "LT-supervised", "ORE")
BASELINES = ("RE", "TRE", "ORE")


@dataclass(frozen=True)
class Scale:
    """Sizes of one run of the experiments."""

    d: int
    N: int
    r: int
    n_s: int
    n_test: int
    K: int
    seeds: tuple           # training seeds (>= 5 at the paper's scale)
    sigmas: tuple          # experiment 1 noise levels
    ranks: tuple           # experiment 3 ranks (r/N sweep of experiment 4)
    sigma_sweep: tuple     # experiment 4 noise sweep
    conds: tuple           # experiment 4 condition-number sweep
    n_prior: int           # experiment 2: contexts used for the output mean and covariance
    depths: tuple = (1, 2, 4, 8, 16)   # depth study


SCALES = {
    "quick": Scale(d=30, N=15, r=3, n_s=1500, n_test=600, K=2, seeds=(0, 1), sigmas=(0.03, 0.1, 0.3),
                   ranks=(1, 2, 3, 5, 8, 12, 15), sigma_sweep=(0.01, 0.03, 0.1, 0.3, 1.0), conds=(1, 10, 100),
                   n_prior=3000, depths=(1, 2, 4)),
    "medium": Scale(d=100, N=50, r=10, n_s=2000, n_test=1000, K=4, seeds=(0, 1, 2), sigmas=(0.03, 0.1, 0.3),
                    ranks=(2, 5, 10, 20, 30, 40, 50), sigma_sweep=(0.01, 0.03, 0.1, 0.3, 1.0),
                    conds=(1, 3, 10, 30, 100), n_prior=10000),
    "paper": Scale(d=100, N=50, r=10, n_s=10000, n_test=2000, K=4, seeds=(0, 1, 2, 3, 4), sigmas=(0.03, 0.1, 0.3),
                   ranks=(2, 5, 10, 20, 30, 40, 50), sigma_sweep=(0.01, 0.03, 0.1, 0.3, 1.0),
                   conds=(1, 3, 10, 30, 100), n_prior=10000),
}


def get_scale(name: str) -> Scale:
    """The :data:`SCALES` entry ``name`` (ValueError naming the choices otherwise)."""
    if name not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)} (got {name!r})")
    return SCALES[name]


def quiet_params(**kw) -> InverseParams:
    """InverseParams without the r >= N warning (sweeps through r = N on purpose)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InverseRegimeWarning)
        return InverseParams(**kw)


# --- one run -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LTSettings:
    """Training settings of the LT. Every field but ``workers`` enters a run's identity (and its cache
    key): the fast kernel's value and gradient are bit-identical for any number of threads."""

    rtol: float = 1e-6
    window: int = 10
    init: str = "auto"
    dtype: str = "float32"
    maxiter: int = 20_000
    holdout: float = 0.2
    precondition: str = "auto"
    workers: int = 1

    def build(self, K: int, loss: str) -> LT:
        return LT(K=K, loss=loss, rtol=self.rtol, window=self.window, init=self.init, dtype=np.dtype(self.dtype),
                  maxiter=self.maxiter, holdout=self.holdout, precondition=self.precondition, workers=self.workers)

    def key(self) -> dict:
        """The fields that determine the trained LT (all but ``workers``)."""
        return {k: v for k, v in self.__dict__.items() if k != "workers"}


RE_SETTINGS = {"method": "gcv", "n_grid": 121, "span": (-10.0, 3.0)}
TRE_SETTINGS = {"rank": None}


def params_job(p: InverseParams) -> dict:
    """Every field of the parameters, as plain JSON (Lambda and w0 included)."""
    return {"d": p.d, "N": p.N, "r": p.r, "sigma": p.sigma, "cond": p.cond, "n_s": p.n_s,
            "w0": p.w0.tolist(), "Lambda": p.Lambda.tolist()}


def draw_model(params: InverseParams, model_seed: int = 0) -> InverseModel:
    return InverseModel.draw(params, np.random.default_rng([model_seed, 0]))


def training_contexts(model: InverseModel, seed: int):
    return model.sample(model.params.n_s, np.random.default_rng([seed, 1]))


def test_contexts(model: InverseModel, seed: int, n_test: int):
    return model.sample(n_test, np.random.default_rng([seed, 2]))


@dataclass(frozen=True)
class RunResult(ConvergenceReport):
    """One estimator, one training seed: test MSE mean and its test-context SE, training record.

    ``converged``, ``iterations``, ``residual`` (the relative loss decrease over the last window)
    and ``train_loss`` describe an LT's training; the closed-form estimators (RE, TRE, ORE) are
    converged with 0 iterations and residual 0. ``reason`` is "" when converged, else the stop message.
    """

    estimator: str
    seed: int
    mse: float
    sem: float
    seconds: float
    converged: bool = True
    iterations: int = 0
    train_loss: float | None = None
    residual: float | None = 0.0
    extra: dict = field(default_factory=dict)     # e.g. TRE's rank, LT init loss

    @property
    def reason(self) -> str:
        return "" if self.converged else str(self.extra.get("stop") or "training stopped before its criterion held")

    def to_dict(self) -> dict:
        """JSON document: the estimator and seed as ``parameters``, ``version``, the scores and the training."""
        return json_document({"estimator": self.estimator, "seed": self.seed}, {
            "mse": self.mse, "sem": self.sem, "seconds": self.seconds, "converged": self.converged,
            "residual": self.residual, "reason": self.reason, "message": self.message,
            "iterations": self.iterations, "train_loss": self.train_loss, "extra": self.extra})


def _fit_and_score(name: str, model: InverseModel, K: int, seed: int, n_test: int, lt: LTSettings, train=None,
                   test=None):
    """Fit estimator ``name`` ('RE', 'TRE', 'ORE', 'LT-<loss>') and score it; returns (RunResult, arrays)."""
    train = training_contexts(model, seed) if train is None else train
    test = test_contexts(model, seed, n_test) if test is None else test
    t0 = time.perf_counter()
    arrays = {}
    extra = {}
    if name == "RE":
        est = RE(**RE_SETTINGS)
    elif name == "TRE":
        est = TRE(**TRE_SETTINGS).fit(train.X, train.Y)
        extra["rank_recovered"] = est.prior_.r
    elif name == "ORE":
        est = ORE.from_model(model)
    elif name.startswith("LT-"):
        est = lt.build(K, name[3:]).fit(train.X, train.Y, train.W)
        arrays = {"b": est.b, "Gammas": est.Gammas}
    else:
        raise ValueError(f"unknown estimator {name!r}")
    seconds = time.perf_counter() - t0
    e = mse_per_coordinate(est.predict(test.X, test.Y), test.W)
    mse, sem = float(e.mean()), float(e.std(ddof=1) / np.sqrt(e.size))
    if name.startswith("LT-"):
        tr = est.train_
        extra["init_loss"] = tr.initial_loss
        extra["evaluations"] = tr.evaluations
        extra["stop"] = tr.message
        return RunResult(name, seed, mse, sem, tr.seconds, tr.converged, tr.iterations, tr.loss, tr.residual,
                         extra), arrays
    return RunResult(name, seed, mse, sem, seconds, extra=extra), arrays


class RunCache:
    """Runs cached one by one in :class:`lowrank_icl.validation.cache.Cache` (namespace 'inverse').

    Key: every field of the parameters (Lambda and w0 included), K, the estimator, the training
    seed, the model seed, n_test, the LT/RE/TRE settings, and the fingerprint of the modules that
    compute a run (the inverse model, estimators and LT, the inverse theory they call, this module). ``directory=None``: the user
    cache folder; ``enabled=False``: no cache at all.
    """

    CODE = ("lowrank_icl.numerics.inverse.model", "lowrank_icl.numerics.inverse.estimators",
            "lowrank_icl.numerics.inverse.lt", "lowrank_icl.theory.inverse.bayes",
            "lowrank_icl.theory.inverse.linear_transformer", "lowrank_icl.validation.inverse.experiments")

    def __init__(self, directory=None, enabled: bool = True):
        self.cache = None
        if enabled:
            from lowrank_icl.validation.cache import Cache
            self.cache = Cache("inverse", code=self.CODE, directory=directory)

    @staticmethod
    def job(params, K, name, seed, model_seed, n_test, lt: LTSettings) -> dict:
        job = {"params": params_job(params), "estimator": name, "seed": seed, "model_seed": model_seed,
               "n_test": n_test}
        if name.startswith("LT-"):
            job["K"] = K
            job["lt"] = lt.key()
        elif name == "RE":
            job["re"] = RE_SETTINGS
        elif name == "TRE":
            job["tre"] = TRE_SETTINGS
        return job

    def run(self, params, K, name, seed, *, model_seed=0, n_test=2000, lt: LTSettings = LTSettings(),
            data=None) -> tuple[RunResult, dict]:
        """The cached run, else fit and score (``data``: optional (model, train, test) already drawn)."""
        job = self.job(params, K, name, seed, model_seed, n_test, lt)
        if self.cache is not None:
            hit = self.cache.load(job)
            if hit is not None:
                value, arrays = hit
                if not name.startswith("LT-") or {"b", "Gammas"} <= set(arrays):
                    return RunResult(**value), arrays
        model, train, test = data if data is not None else (draw_model(params, model_seed), None, None)
        result, arrays = _fit_and_score(name, model, K, seed, n_test, lt, train, test)
        if self.cache is not None:
            self.cache.store(job, result.__dict__, arrays or None)
        return result, arrays


# --- several estimators and seeds ----------------------------------------------------------------
@dataclass(frozen=True)
class EstimatorScore(ConvergenceReport):
    """Test error of one estimator over training seeds (MSE per coordinate, ||w_hat - w||^2 / d).

    Attributes
    ----------
    mean : float
        Mean over seeds of the per-seed test MSE.
    sem : float
        Its standard error across seeds (training sets and test contexts both vary); for one seed,
        the test-context standard error of that seed.
    sem_test : float
        Mean over seeds of the per-seed test-context standard error.
    seeds : int
        Training seeds.
    train_seconds : float
        Mean training time per seed.
    iterations : int
        Mean training iterations (0 for the untrained estimators).
    converged : bool
        Every seed's training converged.
    train_loss : float
        Mean final training loss (nan for the untrained estimators).
    per_seed : tuple of float
        The per-seed test MSE.
    """

    mean: float
    sem: float
    sem_test: float
    seeds: int
    train_seconds: float
    iterations: int = 0
    converged: bool = True
    train_loss: float = float("nan")
    per_seed: tuple = ()
    residual: float = 0.0       # largest training residual over the seeds (0 for closed-form estimators)
    unconverged: int = 0        # seeds whose training did not converge

    @property
    def reason(self) -> str:
        return "" if self.converged else f"the training of {self.unconverged} of {self.seeds} seeds did not converge"

    def to_dict(self) -> dict:
        """JSON document: the number of seeds as ``parameters``, ``version``, the scores and the training."""
        return json_document({"seeds": self.seeds}, {
            "mean": self.mean, "sem": self.sem, "sem_test": self.sem_test, "train_seconds": self.train_seconds,
            "converged": self.converged, "residual": self.residual, "reason": self.reason, "message": self.message,
            "iterations": self.iterations, "train_loss": self.train_loss, "per_seed": list(self.per_seed)})


def aggregate(runs: list[RunResult]) -> EstimatorScore:
    m = np.array([r.mse for r in runs])
    s = np.array([r.sem for r in runs])
    sem = float(m.std(ddof=1) / np.sqrt(m.size)) if m.size > 1 else float(s[0])
    losses = [r.train_loss for r in runs if r.train_loss is not None]
    return EstimatorScore(float(m.mean()), sem, float(s.mean()), len(runs),
                          float(np.mean([r.seconds for r in runs])), int(np.mean([r.iterations for r in runs])),
                          all(r.converged for r in runs), float(np.mean(losses)) if losses else float("nan"),
                          tuple(float(x) for x in m),
                          residual=max((float(r.residual) for r in runs if r.residual is not None), default=0.0),
                          unconverged=sum(not r.converged for r in runs))


@dataclass(frozen=True, eq=False)
class EstimatorComparison:
    """Result of :func:`compare_estimators`: every estimator's test error on one task distribution.

    Attributes
    ----------
    params : InverseParams
        The problem.
    K : int
        Depth of the LTs.
    seeds : tuple of int
        Training seeds.
    scores : dict
        Estimator name ('RE', 'TRE', 'ORE', 'LT-<loss>') -> :class:`EstimatorScore`.
    rank_recovered : tuple
        TRE's r_hat per seed.
    ore_theory : float or None
        Exact ORE risk per coordinate, E_X tr Sigma_post / d (None at sigma = 0 or without ``theory``).
    lt1_theory : float or None
        Optimal one-layer LT risk per coordinate, R* / d.
    seconds : float
        Wall-clock time.
    model : InverseModel
        The draw of the task distribution.
    ore_conditional : tuple
        Mean and standard error over the first seed's test designs of tr Sigma_post / d.
    runs, arrays : dict
        Per-estimator run records and cached arrays.
    """

    params: InverseParams
    K: int
    seeds: tuple
    scores: dict                    # name -> EstimatorScore
    rank_recovered: tuple           # TRE's r_hat per seed
    ore_theory: float | None        # exact ORE risk / d (theory), None where it does not apply
    lt1_theory: float | None        # optimal one-layer LT risk / d (theory)
    seconds: float
    model: InverseModel = field(repr=False)
    ore_conditional: tuple = (None, None)   # mean and SE over the seed-0 test designs of tr Sigma_post / d
    runs: dict = field(repr=False, default_factory=dict)   # name -> [RunResult]
    arrays: dict = field(repr=False, default_factory=dict)  # name -> [arrays per seed]

    def to_json(self) -> dict:
        def num(x):
            return None if x is None or not np.isfinite(x) else float(x)
        p = self.params
        return {"parameters": {"d": p.d, "N": p.N, "r": p.r, "sigma": p.sigma, "cond": p.cond, "n_s": p.n_s,
                               "K": self.K, "seeds": list(self.seeds), "Lambda": p.Lambda.tolist(),
                               "w0_norm": float(np.linalg.norm(p.w0))},
                "mse": {k: {"mean": v.mean, "sem": v.sem, "sem_test": v.sem_test, "seeds": v.seeds}
                        for k, v in self.scores.items()},
                "train": {k: {"seconds": v.train_seconds, "iterations": v.iterations,
                              "converged": v.converged, "loss": num(v.train_loss)}
                          for k, v in self.scores.items()},
                "ore_theory": self.ore_theory, "lt1_theory": self.lt1_theory,
                "ore_conditional_risk": {"mean": self.ore_conditional[0], "sem": self.ore_conditional[1]},
                "rank_recovered": list(self.rank_recovered), "seconds": self.seconds}


def compare_estimators(params: InverseParams, *, K: int = 4, losses=LT_LOSSES, n_test: int = 2000,
                       seeds=(0,), model_seed: int = 0, include=BASELINES, lt: LTSettings = LTSettings(),
                       cache: RunCache | None = None, progress=None, theory: bool = True) -> EstimatorComparison:
    """Fit RE, TRE, ORE (``include``) and one LT per loss on n_s tasks per training seed; score on fresh ones.

    The task distribution (Q, U) is drawn from ``model_seed``; training seed s draws n_s training
    contexts and ``n_test`` test contexts; each estimator's score is the per-seed mean of
    ||w_hat - w||^2 / d over the test contexts, aggregated over ``seeds`` by :func:`aggregate`.

    Parameters
    ----------
    params : InverseParams
        The problem (d, N, r, sigma, cond, n_s, w0, Lambda).
    K : int
        Depth of the LTs.
    losses : sequence of str
        One LT per loss (:data:`lowrank_icl.numerics.inverse.LT_LOSSES`).
    n_test : int
        Test contexts per seed.
    seeds : sequence of int
        Distinct training seeds.
    model_seed : int
        Seed of the task distribution's bases.
    include : sequence of str
        Untrained estimators to score ('RE', 'TRE', 'ORE').
    lt : LTSettings
        Training settings of the LTs.
    cache : RunCache, optional
        Content-addressed cache of the runs (default: every run computed).
    progress : callable, optional
        Receives one line per LT training.
    theory : bool
        Also evaluate the exact ORE and optimal one-layer LT risks.

    Returns
    -------
    EstimatorComparison
    """
    seeds = check_seeds(seeds)
    start = time.perf_counter()
    cache = cache or RunCache(enabled=False)
    say = progress or (lambda msg: None)
    model = draw_model(params, model_seed)
    names = [n for n in include] + [f"LT-{loss}" for loss in losses]
    runs = {n: [] for n in names}
    arrays = {n: [] for n in names}
    for seed in seeds:
        data = None
        for name in names:
            job = cache.job(params, K, name, seed, model_seed, n_test, lt)
            if cache.cache is None or job not in cache.cache:
                if data is None:
                    data = (model, training_contexts(model, seed), test_contexts(model, seed, n_test))
                if name.startswith("LT-"):
                    say(f"training {name} K={K} seed={seed} (d={params.d}, N={params.N}, r={params.r}, "
                        f"sigma={params.sigma:g}, cond={params.cond:g}, n_s={params.n_s})")
            res, arr = cache.run(params, K, name, seed, model_seed=model_seed, n_test=n_test, lt=lt, data=data)
            runs[name].append(res)
            arrays[name].append(arr)
    scores = {n: aggregate(runs[n]) for n in names}
    ordered = {k: scores[k] for k in ESTIMATOR_ORDER if k in scores}
    ordered.update({k: v for k, v in scores.items() if k not in ordered})
    rank = tuple(r.extra.get("rank_recovered") for r in runs.get("TRE", []))
    test0 = test_contexts(model, seeds[0], n_test)
    cond_risk = ORE.from_model(model).conditional_risk(test0.X)
    ore_conditional = (float(cond_risk.mean()), float(cond_risk.std(ddof=1) / np.sqrt(cond_risk.size)))
    # the exact ORE risk; None at sigma = 0, where the ORE recovers the task exactly
    ore = ore_risk_per_coordinate(model) if theory and model.sigma > 0 else None
    return EstimatorComparison(params, K, seeds, ordered, rank, ore, lt1_risk_per_coordinate(model) if theory else None,
                               time.perf_counter() - start, model,
                      ore_conditional=ore_conditional, runs=runs, arrays=arrays)


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
    fit = log_log_fit(x, mean, sem)
    if fit.n < 3:
        return SlopeFit(float("nan"), float("nan"), (float("nan"), float("nan")), float("nan"), fit.n)
    return SlopeFit(fit.exponent, fit.exponent_se, fit.exponent_ci, fit.chi2_dof, fit.n)


__all__ = ["SCALES", "Scale", "get_scale", "LTSettings", "RunCache", "RunResult", "EstimatorScore",
           "EstimatorComparison", "compare_estimators", "aggregate", "draw_model", "training_contexts", "test_contexts",
           "fit_loglog_slope", "SlopeFit", "quiet_params", "params_job"]
