r"""Monte Carlo twin of :func:`lowrank_icl.numerics.solve`: train Gamma_hat at finite D and measure it.

    res = simulate(dim=12, alpha=2, tau=2, kappa=1, rho=0.5, sigma=0.3, lam=0.1, seeds=range(5))
    res.q, res.m, res.q_bar, res.m_bar, res.q0, res.m0      # Estimate(values, mean, sem)
    err = res.errors(alpha_test=None, sigma_test=None)      # err.tm, err.idg, err.odg: Estimates
    res.converged, res.residual, res.iterations

Every argument is keyword-only: ``solve`` reads ``(alpha, tau, kappa, ...)`` positionally while a
simulation also needs ``dim``, so a positional call would silently shift every ratio by one place.
Same parameter names and field names as ``solve``. For each seed (an independent pretraining draw:
fresh Haar subspace, task pool and prompts, :mod:`lowrank_icl.validation.forward.sampling`):

1. integer sizes L = max(1, round(alpha D)), M = max(1, round(tau D^2)), M0 = max(1, round(kappa D)),
   r = min(D, max(1, round(rho D))) (half up);
2. Gamma_hat from :func:`lowrank_icl.validation.forward.ridge.fit_ridge` (automatic method);
3. the empirical order parameters through :func:`lowrank_icl.theory.order_summaries`: (m, q) with
   the pool second moment, (m0, q0) with (D/r) A A^T, (m_bar, q_bar) with I, and t_TM = tr S/D of
   the pool;
4. the EXACT test errors e(Gamma_hat) for TM, IDG, ODG from
   :func:`lowrank_icl.theory.error_from_summaries` -- no test prompts are sampled, so
   ``errors(alpha_test, sigma_test)`` is recomputed from the stored summaries for free, for scalars
   or arrays (test context L~ = max(1, round(alpha_test D)); arrays broadcast as in ``solve``).

kappa = inf: a fresh task for every prompt (an infinite pool). The pool's second moment is then the
task distribution's own, (D/r) A A^T, so the train-task error equals the in-distribution one:
``errors().tm`` is reported equal to ``errors().idg`` (and q = q0, m = m0, t_TM = 1). The penalty
lam M0 ||Gamma||^2 has no finite limit as M0 -> inf unless lam = 0, so kappa = inf requires lam = 0.

``pool_repeats=K > 1`` trains K Gammas on independent prompt draws sharing one pool per seed and
splits every quadratic order parameter into signal (that of E[Gamma | pool]) and noise (the rest),
the unbiased estimates noise = K/(K-1) [mean_k q(Gamma_k) - q(mean_k Gamma_k)], signal = mean - noise.

Before anything is allocated the memory and time of the run are estimated from the sizes
(:mod:`lowrank_icl.validation.forward.resources`) and a run that cannot fit or finish is refused
with the estimate and the limit. Seeds are reproducible and must be distinct; ``workers`` (at most
the number of available cores) runs seeds in parallel processes, which never re-import the calling
script (so a script without a ``__main__`` guard works); progress goes to stderr. ``cache_dir``
keeps one entry per seed in a :class:`lowrank_icl.validation.cache.Cache` keyed on every parameter,
the seed, the solver settings and a fingerprint of the code that computes it.
"""
from __future__ import annotations

import math
import time
from time import perf_counter as _perf_counter  # simulate() has a parameter named time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
from lowrank_icl.numerics import ForwardParams
from lowrank_icl.numerics.utils import check_int, check_real, check_seeds
from lowrank_icl.theory import SecondMoment, error_from_summaries, order_summaries
from lowrank_icl.validation.forward.resources import check_resources, format_bytes, format_seconds
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_pretraining
from lowrank_icl.validation.parallel import check_workers, run_parallel
from lowrank_icl.numerics.utils import json_document
from lowrank_icl.validation.forward.results import MonteCarloResult, emit_progress, fit_report
from lowrank_icl.validation.stats import Estimate, EstimatedErrors, format_mean_sem

ORDER_FIELDS = ("q", "m", "q_bar", "m_bar", "q0", "m0")
_QUADRATIC = ("q", "q_bar", "q0")
# the modules whose source decides what a seed returns: the cache key carries their fingerprint
SIMULATION_CODE = ("lowrank_icl.validation.forward.simulate", "lowrank_icl.validation.forward.sampling",
                   "lowrank_icl.validation.forward.ridge", "lowrank_icl.theory")
CACHE_NAMESPACE = "simulate"
_SEED_FIELDS = (*ORDER_FIELDS, "t_tm", "converged", "residual", "iterations", "method", "seconds")


@dataclass(frozen=True, repr=False)
class SimulationResult(MonteCarloResult):
    """Per-seed order parameters of trained Gammas, with the solver diagnostics.

    Fields named as in :class:`lowrank_icl.numerics.ForwardSolution`: q, m (pool tasks),
    q_bar, m_bar (isotropic), q0, m0 (task subspace), each an :class:`Estimate` over seeds.
    ``t_tm`` = tr(S)/D of each pool (1 on average). ``converged`` is True if every ridge fit met its
    tolerance and every value is finite; ``residual`` is the largest relative normal-equation
    residual ||N(Gamma) - B||_F / ||B||_F of the fits, ``iterations`` the largest iteration count,
    ``reason`` "" or what failed (``message`` one line).
    ``parts`` (pool_repeats > 1 only) maps "q", "q_bar", "q0" to {"signal", "noise"} Estimates.

    Attributes
    ----------
    params : ForwardParams
        The model.
    sizes : Sizes
        D, L, M, M0, r.
    seeds : tuple of int
        Pretraining draws.
    q, m, q_bar, m_bar, q0, m0, t_tm : Estimate
        Order parameters over seeds.
    converged, residual, iterations : bool, float, int
        Ridge-fit diagnostics.
    seconds : float
        Wall-clock time.
    methods : tuple of str
        Ridge method per seed.
    alpha_test, sigma_test : float or None
        Defaults of ``errors()``.
    parts : dict or None
        Signal/noise splits (pool_repeats > 1).
    method, tol, pool_repeats : str, float, int
        The settings used.
    """

    params: ForwardParams
    sizes: Sizes
    seeds: tuple
    q: Estimate
    m: Estimate
    q_bar: Estimate
    m_bar: Estimate
    q0: Estimate
    m0: Estimate
    t_tm: Estimate
    converged: bool
    residual: float
    iterations: int
    seconds: float
    methods: tuple
    alpha_test: float | None = None
    sigma_test: float | None = None
    parts: dict = field(default=None, compare=False)
    method: str = "auto"
    tol: float = 1e-8
    pool_repeats: int = 1
    reason: str = ""

    def _test_setting(self, alpha_test, sigma_test):
        a_t = alpha_test if alpha_test is not None else (
            self.alpha_test if self.alpha_test is not None else float(self.params.alpha))
        s_t = sigma_test if sigma_test is not None else (
            self.sigma_test if self.sigma_test is not None else float(self.params.sigma))
        a_t = check_real("alpha_test", a_t, lower=0.0)
        s_t = check_real("sigma_test", s_t, lower=0.0, lower_inclusive=True)
        Lt = np.maximum(1.0, np.floor(a_t * self.sizes.dim + 0.5))
        if Lt.ndim == 0 and s_t.ndim == 0:
            return int(Lt), float(s_t)
        return Lt, s_t

    @staticmethod
    def _per_seed(values, grid_ndim: int) -> np.ndarray:
        """Per-seed values shaped to broadcast against a test grid: (n_seeds, 1, ..., 1)."""
        v = np.asarray(values, dtype=float)
        return v.reshape(v.shape + (1,) * grid_ndim)

    def errors(self, alpha_test=None, sigma_test=None) -> EstimatedErrors:
        """Exact e(Gamma_hat) per seed at test context ratio alpha_test and test noise sigma_test.

        Defaults: the values given to :func:`simulate`, else the training alpha and sigma.
        Arrays broadcast against each other (as in ``solve(...).errors``); each Estimate's mean
        and sem then have the broadcast shape and its values a leading seed axis.
        """
        Lt, s_t = self._test_setting(alpha_test, sigma_test)
        grid = np.broadcast(Lt, s_t)
        D = self.sizes.dim

        def P(values):
            return self._per_seed(values, grid.ndim)

        def err(t, m, q):
            e = error_from_summaries(P(t), P(m.values), P(q.values), P(self.q_bar.values), D, Lt, s_t)
            return Estimate.of(e * np.ones(grid.shape))
        ones = np.ones(len(self.seeds))
        return EstimatedErrors(tm=err(self.t_tm.values, self.m, self.q),
                               idg=err(ones, self.m0, self.q0),
                               odg=err(ones, self.m_bar, self.q_bar))

    def error_parts(self, alpha_test=None, sigma_test=None) -> dict:
        """Signal / noise split of the TM, IDG, ODG errors (needs pool_repeats > 1).

        e_signal = sigma_t^2 + t - 2 m + (1 + 1/L~) q_sig + (t + sigma_t^2)(D/L~) q_bar_sig and
        e_noise = (1 + 1/L~) q_noise + (t + sigma_t^2)(D/L~) q_bar_noise (m is linear in Gamma, so
        it has no noise part). Returns {"tm"|"idg"|"odg": {"signal"|"noise": Estimate}}.
        """
        if not self.parts:
            raise ValueError("error_parts needs simulate(..., pool_repeats=K) with K >= 2")
        Lt, s_t = self._test_setting(alpha_test, sigma_test)
        ndim = np.broadcast(Lt, s_t).ndim
        D = self.sizes.dim
        n = len(self.seeds)

        def P(values):
            return self._per_seed(values, ndim)
        protocols = {"tm": (P(self.t_tm.values), self.m, "q"), "idg": (P(np.ones(n)), self.m0, "q0"),
                "odg": (P(np.ones(n)), self.m_bar, "q_bar")}
        out = {}
        for name, (t, m, qname) in protocols.items():
            sig = error_from_summaries(t, P(m.values), P(self.parts[qname]["signal"].values),
                                       P(self.parts["q_bar"]["signal"].values), D, Lt, s_t)
            noise = ((1 + 1 / Lt) * P(self.parts[qname]["noise"].values)
                     + (t + s_t**2) * (D / Lt) * P(self.parts["q_bar"]["noise"].values))
            out[name] = {"signal": Estimate.of(sig), "noise": Estimate.of(noise)}
        return out

    def effective_params(self) -> ForwardParams:
        """The ratios actually simulated: L/D, M/D^2, M0/D, r/D of the integer sizes (sigma, lam as given).

        Comparing theory at these ratios removes the rounding of the sizes from a finite-D comparison.
        """
        s = self.sizes
        return _forward_params(alpha=s.alpha, tau=s.tau, kappa=s.kappa, rho=s.rho,
                               sigma=self.params.sigma, lam=self.params.lam)

    def effective_alpha_test(self, alpha_test=None):
        """L~/D of the integer test context used by :meth:`errors` for this alpha_test."""
        Lt, _ = self._test_setting(alpha_test, None)
        return Lt / self.sizes.dim

    def order_parameters(self) -> dict:
        """Means of the order parameters."""
        return {k: getattr(self, k).mean for k in ORDER_FIELDS}

    def parameters(self) -> dict:
        """The inputs of this simulation (the ``"parameters"`` of its JSON document)."""
        p = self.params
        return {"dim": self.sizes.dim, "alpha": float(p.alpha), "tau": float(p.tau), "kappa": float(p.kappa),
                "rho": float(p.rho), "sigma": float(p.sigma), "lam": float(p.lam),
                "alpha_test": self.alpha_test, "sigma_test": self.sigma_test, "seeds": list(self.seeds),
                "method": self.method, "tol": self.tol, "pool_repeats": self.pool_repeats}

    def to_dict(self, alpha_test=None, sigma_test=None) -> dict:
        """The JSON document: ``parameters``, ``version``, ``errors`` and ``order_parameters`` (each
        as {"mean", "sem", "values"}), the integer sizes and the solver diagnostics.

        Strictly JSON-ready (NaN as null, inf as "inf"): see :func:`lowrank_icl.validation.io.json_document`.
        """
        s = self.sizes
        return json_document(self.parameters(), {
            "errors": self.errors(alpha_test, sigma_test).to_dict(),
            "order_parameters": {k: getattr(self, k).to_dict() for k in ORDER_FIELDS},
            "sizes": {"D": s.dim, "L": s.context_length, "M": s.n_prompts,
                      "M0": "inf" if s.fresh_tasks else s.n_tasks, "r": s.rank},
            "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations,
            "methods": list(self.methods), "seconds": self.seconds})

    def __repr__(self) -> str:
        s = self.sizes
        err = self.errors()
        m0 = "inf" if s.fresh_tasks else s.n_tasks
        lines = [f"SimulationResult(D={s.dim}, L={s.context_length}, M={s.n_prompts}, M0={m0}, r={s.rank}; "
                 f"{len(self.seeds)} seeds; converged={self.converged}, residual={self.residual:.1e})",
                 f"  errors: {err}",
                 "  " + ", ".join(f"{k} = {format_mean_sem(getattr(self, k).mean, getattr(self, k).sem)}"
                                  for k in ORDER_FIELDS)]
        if not self.converged:
            lines.append(f"  reason: {self.reason}")
        return "\n".join(lines)


def _forward_params(**values) -> ForwardParams:
    """ForwardParams, accepting kappa = inf (a fresh task for every prompt) also where the
    numerics layer's parameter object does not take it yet: the other fields are validated there."""
    try:
        return ForwardParams(**values)
    except ValueError:
        if not _is_inf(values.get("kappa")):
            raise
    params = ForwardParams(**{**values, "kappa": 1.0})
    object.__setattr__(params, "kappa", float("inf"))
    return params


def _is_inf(x) -> bool:
    try:
        return np.ndim(x) == 0 and math.isinf(float(x)) and float(x) > 0
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# one seed (top level: runs in worker processes)

def _summaries(gamma, pool_tasks, subspace) -> dict:
    sub = order_summaries(gamma, SecondMoment.subspace(subspace))
    # kappa = inf: the pool is the task distribution itself, so its moments are the subspace's
    # (with tr C / D = 1 exactly, as the IDG error uses it)
    pool = {**sub, "t": 1.0} if pool_tasks is None else order_summaries(gamma, SecondMoment.pool(pool_tasks))
    iso = order_summaries(gamma, None)
    return {"q": pool["q"], "m": pool["m"], "t_tm": pool["t"], "q0": sub["q"], "m0": sub["m"],
            "q_bar": iso["q"], "m_bar": iso["m"]}


def run_seed(job: dict) -> dict:
    """Train and measure one seed. ``job`` keys: dim, alpha, tau, kappa, rho, sigma, lam, seed,
    method, tol, pool_repeats. Returns the JSON-ready summaries (and fit diagnostics)."""
    start = time.perf_counter()
    s = Sizes.from_ratios(job["dim"], job["alpha"], job["tau"], job["kappa"], job["rho"])
    K = int(job.get("pool_repeats", 1))
    gamma_sum, per_draw, fits = None, [], []
    for k in range(K):
        data = sample_pretraining(s, job["sigma"], job["seed"], prompt_draw=k)
        # kappa = inf needs lam = 0 (make_jobs), so the penalty lam M0 is 0 whatever M0 stands for
        fit = fit_ridge(data.x, data.h, data.y, job["lam"], s.n_tasks or 1, method=job["method"], tol=job["tol"])
        fits.append(fit)
        per_draw.append(_summaries(fit.gamma, data.pool, data.subspace))
        gamma_sum = fit.gamma.copy() if gamma_sum is None else gamma_sum + fit.gamma
        pool, subspace = data.pool, data.subspace
        del data
    out = {k: float(np.mean([d[k] for d in per_draw])) for k in per_draw[0]}
    if K > 1:
        of_mean = _summaries(gamma_sum / K, pool, subspace)
        for name in _QUADRATIC:
            noise = K / (K - 1) * (out[name] - of_mean[name])
            out[f"{name}_noise"] = noise
            out[f"{name}_signal"] = out[name] - noise
    out.update({"converged": all(f.converged for f in fits), "residual": max(f.residual for f in fits),
                "iterations": max(f.iterations for f in fits), "method": fits[0].method,
                "seconds": time.perf_counter() - start})
    return out


# ----------------------------------------------------------------------------------------------
# many seeds: cache, resources, parallel runs

def _decode_seed(value: dict, job: dict) -> dict:
    """A cached seed result back as Python numbers (the cache stores non-finite floats as strings)."""
    out = {}
    for k, v in value.items():
        if k in ("converged", "method"):
            out[k] = v
        elif k == "iterations":
            out[k] = int(v)
        else:
            out[k] = float(v)
    missing = [k for k in _SEED_FIELDS if k not in out]
    if int(job.get("pool_repeats", 1)) > 1:
        missing += [f"{q}_{p}" for q in _QUADRATIC for p in ("signal", "noise") if f"{q}_{p}" not in out]
    if missing or not isinstance(out["converged"], bool):
        raise ValueError(f"stored seed lacks {missing or ['a boolean converged']}")
    return out


def simulation_cache(cache_dir):
    """The per-seed :class:`~lowrank_icl.validation.cache.Cache` in ``cache_dir`` (None: no cache)."""
    if cache_dir is None:
        return None
    from lowrank_icl.validation.cache import Cache
    return Cache(CACHE_NAMESPACE, SIMULATION_CODE, directory=cache_dir)


def run_jobs(jobs: list, workers: int = 1, cache_dir=None, progress: bool | Callable[[str], None] = False) -> list:
    """Run seed jobs (dicts as in :func:`run_seed`) in up to ``workers`` processes, in input order.

    Refuses (ValueError) a run that would not fit in memory or finish in time. Cached seeds are
    read in this process; only the missing ones run, and each is stored as soon as it finishes.
    ``progress``: False, True (stderr) or a callable receiving one line per finished seed.
    """
    if not jobs:
        return []
    workers = check_workers(workers)
    cache = simulation_cache(cache_dir)
    results: list = [None] * len(jobs)
    todo = []
    for i, job in enumerate(jobs):
        hit = cache.load(job, validate=lambda v, j=job: _decode_seed(v, j)) if cache is not None else None
        if hit is not None:
            results[i] = _decode_seed(hit[0], job)
        else:
            todo.append(i)
    if not todo:
        return results
    sizes = {(j["dim"], j["alpha"], j["tau"], j["kappa"], j["rho"], j["method"], j.get("pool_repeats", 1))
             for j in (jobs[i] for i in todo)}
    estimates = [check_resources([Sizes.from_ratios(*key[:5])], method=key[5], pool_repeats=key[6],
                                 workers=workers, n_seeds=1) for key in sizes]
    est_bytes = max(e.bytes for e in estimates) * min(workers, len(todo))
    est_seconds = sum(e.seconds for e in estimates) * len(todo) / len(sizes) / min(workers, len(todo))
    emit_progress(progress, f"  simulate: {len(todo)} seed(s) to train ({len(jobs) - len(todo)} cached), {workers} "
                    f"worker(s), about {format_bytes(est_bytes)} and {format_seconds(est_seconds)}")
    t0 = time.perf_counter()
    done = [0]

    def finished(k, r):
        i = todo[k]
        results[i] = r
        if cache is not None:
            cache.store(jobs[i], r)
        done[0] += 1
        j = jobs[i]
        emit_progress(progress, f"  simulate D={j['dim']} seed={j['seed']} [{done[0]}/{len(todo)}] {r['method']} "
                        f"{r['seconds']:.1f}s (elapsed {time.perf_counter() - t0:.0f}s)")

    run_parallel(run_seed, [jobs[i] for i in todo], workers, finished)
    return results


def make_jobs(dim, params: ForwardParams, seeds, method="auto", tol=1e-8, pool_repeats=1) -> list:
    """Seed jobs for one parameter point (plain dicts: picklable, hashable as JSON)."""
    if _is_inf(params.kappa) and float(params.lam) != 0.0:
        raise ValueError(f"kappa = inf needs lam = 0 (got lam = {float(params.lam):g}): the penalty "
                         "lam M0 ||Gamma||^2 grows without bound as M0 -> inf")
    return [{"dim": int(dim), "alpha": float(params.alpha), "tau": float(params.tau),
             "kappa": float(params.kappa), "rho": float(params.rho), "sigma": float(params.sigma),
             "lam": float(params.lam), "seed": int(s), "method": method, "tol": float(tol),
             "pool_repeats": int(pool_repeats)} for s in seeds]


def collect(dim, params: ForwardParams, seeds, results: list, alpha_test=None, sigma_test=None,
            seconds=0.0, method="auto", tol=1e-8, pool_repeats=1) -> SimulationResult:
    """Assemble a :class:`SimulationResult` from per-seed results of :func:`run_seed`."""
    sizes = Sizes.from_ratios(dim, params.alpha, params.tau, params.kappa, params.rho)
    est = {k: Estimate.of([r[k] for r in results]) for k in (*ORDER_FIELDS, "t_tm")}
    parts = None
    if "q_signal" in results[0]:
        parts = {q: {p: Estimate.of([r[f"{q}_{p}"] for r in results]) for p in ("signal", "noise")}
                 for q in _QUADRATIC}
    converged, residual, iterations, reason = fit_report(
        [{**{k: r[k] for k in ("converged", "residual", "iterations", *ORDER_FIELDS, "t_tm")}, "seed": sd}
         for sd, r in zip(seeds, results)])
    return SimulationResult(params=params, sizes=sizes, seeds=tuple(seeds), **est,
                            converged=converged, residual=residual, iterations=iterations, reason=reason,
                            seconds=float(seconds), methods=tuple(sorted({r["method"] for r in results})),
                            alpha_test=alpha_test, sigma_test=sigma_test, parts=parts,
                            method=method, tol=float(tol), pool_repeats=int(pool_repeats))


def simulate(*, dim, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, alpha_test=None, sigma_test=None,
             seeds: Iterable[int] | int = range(5), method: str = "auto", tol: float = 1e-8,
             workers: int = 1, cache_dir=None, progress: bool | Callable[[str], None] = False,
             pool_repeats: int = 1, y2_column: bool = False, spectrum=None, time=None, steps=None,
             lr=None) -> MonteCarloResult:
    """Train Gamma_hat at dimension ``dim`` for each seed and measure it (module docstring).

    Parameters
    ----------
    dim : int
        Token dimension D.
    alpha, tau, kappa, rho, sigma, lam : float
        Model parameters as in :func:`lowrank_icl.numerics.solve` (scalars); ``kappa`` may be
        ``inf`` (a fresh task for every prompt), which needs ``lam = 0``.
    alpha_test, sigma_test : float, optional
        Defaults of ``result.errors()`` (the training alpha and sigma when None).
    seeds : int, str or sequence of int
        Distinct integers >= 0, a count n (the seeds 0 .. n-1) or a text such as "0-4" or "1,3,7"
        (:func:`lowrank_icl.numerics.utils.check_seeds`, the package's one seed rule).
    method, tol
        Ridge solver and its relative residual (:func:`lowrank_icl.validation.forward.ridge.fit_ridge`;
        the default 1e-8 changes the errors by far less than one Monte Carlo SE).
    workers : int
        Processes (at most the available cores).
    cache_dir : path, optional
        Folder of the per-seed cache (None: no cache).
    progress : bool or callable
        One line per seed on stderr (True) or to a callable.
    pool_repeats : int
        K >= 2 splits the order parameters into signal and noise (module docstring).
    y2_column : bool
        Train the full-rank paper's model (the extra feature (1/L) sum_l y_l^2 times the query)
        beside the reduced one on the same prompts.
    spectrum : TaskSpectrum, optional
        Draw tasks from N(0, Sigma) in a Haar eigenbasis instead of the rank-r law (D <= 256).
    time : float or sequence of float, optional
        Training times of gradient flow from Gamma = 0, dGamma/dt = -(D/2) grad F: the exact finite-D
        learning curves (docs/learning_curves.md; ``tol`` is then the Lanczos tolerance).
    steps, lr : int or sequence of int, float, optional
        Gradient descent Gamma_{k+1} = Gamma_k - lr (D/2) grad F(Gamma_k) after ``steps`` steps.

    Returns
    -------
    MonteCarloResult
        :class:`SimulationResult`; with ``spectrum=`` a
        :class:`lowrank_icl.validation.forward.spectrum_simulate.SpectrumSimulation`; with
        ``y2_column=True`` a :class:`lowrank_icl.validation.forward.y2_column.Y2ColumnResult`; with
        ``time=`` or ``steps=`` a :class:`lowrank_icl.validation.forward.flow.FlowSimulation`. All
        share ``errors()`` (EstimatedErrors), the convergence words and ``to_dict()``.

    Raises
    ------
    ValueError
        For an invalid parameter, naming it, and for an argument the chosen mode cannot honour
        (``y2_column=True`` takes no alpha_test, sigma_test, workers, cache_dir or pool_repeats;
        ``spectrum=`` no rho, workers, cache_dir or pool_repeats).
    """
    if time is not None or steps is not None or lr is not None:
        # gradient flow (time=) or gradient descent (steps=, lr=): validation.forward.flow
        from lowrank_icl.validation.forward.flow import simulate_flow
        unsupported = {"y2_column": y2_column, "spectrum": spectrum is not None, "pool_repeats": pool_repeats != 1,
                       "workers": workers != 1, "cache_dir": cache_dir is not None, "alpha_test": alpha_test is not None,
                       "sigma_test": sigma_test is not None, "method": method != "auto"}
        given = [name for name, bad in unsupported.items() if bad]
        if given:
            raise ValueError(f"simulate(time=/steps=) cannot honour {', '.join(given)}: the learning curves run the "
                             "exact flow in one process (pass the test setting to .errors())")
        return simulate_flow(dim=dim, alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam, time=time,
                             steps=steps, lr=lr, seeds=seeds, tol=tol)
    if y2_column and spectrum is not None:
        raise ValueError("give y2_column=True or spectrum=, not both")
    if y2_column or spectrum is not None:
        mode = "y2_column=True" if y2_column else "spectrum="
        unsupported = {"workers": workers != 1, "cache_dir": cache_dir is not None, "pool_repeats": pool_repeats != 1}
        if y2_column:
            unsupported.update(alpha_test=alpha_test is not None, sigma_test=sigma_test is not None)
        else:
            unsupported["rho"] = rho != 1.0
        given = [name for name, bad in unsupported.items() if bad]
        if given:
            raise ValueError(f"simulate({mode}) cannot honour {', '.join(given)}: "
                             + ("the spectrum sets the task law and runs in one process without a cache"
                                if spectrum is not None else
                                "the label-power model is measured at the training context and noise, "
                                "in one process without a cache"))
    if y2_column:
        from lowrank_icl.validation.forward.y2_column import simulate_y2_column
        if _is_inf(kappa):
            raise ValueError("y2_column needs a finite kappa (the label-power model is trained on a task pool)")
        return simulate_y2_column(dim=dim, alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam,
                                  seeds=check_seeds(seeds), method=method, tol=tol, progress=progress)
    if spectrum is not None:
        from lowrank_icl.validation.forward.spectrum_simulate import simulate_spectrum
        return simulate_spectrum(dim=dim, alpha=alpha, tau=tau, kappa=kappa, sigma=sigma, lam=lam, spectrum=spectrum,
                                 alpha_test=alpha_test, sigma_test=sigma_test, seeds=check_seeds(seeds),
                                 method=method, tol=tol, progress=progress)
    dim = check_int("dim", dim, lower=1)
    params = _forward_params(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    if params.shape != ():
        raise ValueError("simulate takes scalar parameters; loop (or use run_jobs) for sweeps")
    if alpha_test is not None:
        alpha_test = float(check_real("alpha_test", alpha_test, lower=0.0))
    if sigma_test is not None:
        sigma_test = float(check_real("sigma_test", sigma_test, lower=0.0, lower_inclusive=True))
    pool_repeats = check_int("pool_repeats", pool_repeats, lower=1)
    tol = float(check_real("tol", tol, lower=0.0, upper=1.0))
    seeds = check_seeds(seeds)
    start = _perf_counter()
    jobs = make_jobs(dim, params, seeds, method, tol, pool_repeats)
    results = run_jobs(jobs, workers=workers, cache_dir=cache_dir, progress=progress)
    return collect(dim, params, seeds, results, alpha_test, sigma_test, _perf_counter() - start,
                   method=method, tol=tol, pool_repeats=pool_repeats)
