r"""Monte Carlo twin of :func:`lowrank_icl.numerics.solve`: train Gamma_hat at finite D and measure it.

    res = simulate(dim, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, seeds=range(5))
    res.q, res.m, res.q_bar, res.m_bar, res.q0, res.m0      # Estimate(values, mean, sem)
    err = res.errors(alpha_test=None, sigma_test=None)      # err.tm, err.idg, err.odg: Estimates
    res.converged, res.residual, res.iterations

Same parameter names and field names as ``solve``. For each seed (an independent pretraining draw:
fresh Haar subspace, task pool and prompts, :mod:`lowrank_icl.validation.forward.sampling`):

1. integer sizes L = max(1, round(alpha D)), M = max(1, round(tau D^2)), M0 = max(1, round(kappa D)),
   r = min(D, max(1, round(rho D))) (half up);
2. Gamma_hat from :func:`lowrank_icl.validation.forward.ridge.fit_ridge` (automatic method);
3. the empirical order parameters (forward spec, section 2) through
   :func:`lowrank_icl.theory.forward.finite_size.order_summaries`: (m, q) with the pool second moment,
   (m0, q0) with (D/r) A A^T, (m_bar, q_bar) with I, and t_TM = tr S/D of the pool;
4. the EXACT test errors e(Gamma_hat) for TM, IDG, ODG from
   :func:`lowrank_icl.theory.forward.finite_size.error_from_summaries` -- no test prompts are sampled, so
   ``errors(alpha_test, sigma_test)`` is recomputed from the stored summaries for free
   (test context L~ = max(1, round(alpha_test D))).

``pool_repeats=K > 1`` trains K Gammas on independent prompt draws sharing one pool per seed and
splits every quadratic order parameter into signal (that of E[Gamma | pool]) and noise (the rest),
the unbiased estimates noise = K/(K-1) [mean_k q(Gamma_k) - q(mean_k Gamma_k)], signal = mean - noise.

Seeds are reproducible; ``workers`` (at most 2) runs seeds in parallel processes; progress goes to
stderr; ``cache_dir`` stores one JSON file per (all parameters, seed, method, code version).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from lowrank_icl.numerics import ForwardParams, check_int, check_real
from lowrank_icl.theory import SecondMoment, error_from_summaries, order_summaries
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_pretraining
from lowrank_icl.validation.io import atomic_write_json
from lowrank_icl.validation.parallel import run_parallel
from lowrank_icl.validation.stats import Estimate

# Bump when a change alters what a cached seed contains.
CODE_VERSION = "simulate-1"
MAX_WORKERS = 2
ORDER_FIELDS = ("q", "m", "q_bar", "m_bar", "q0", "m0")
_QUADRATIC = ("q", "q_bar", "q0")


@dataclass(frozen=True)
class SimulatedErrors:
    """Exact finite-D test errors of each trained Gamma: TM, IDG, ODG (Estimates over seeds)."""

    tm: Estimate
    idg: Estimate
    odg: Estimate

    def to_dict(self) -> dict:
        return {"tm": self.tm.to_dict(), "idg": self.idg.to_dict(), "odg": self.odg.to_dict()}


@dataclass(frozen=True)
class SimulationResult:
    """Per-seed order parameters of trained Gammas, with the solver diagnostics.

    Fields named as in :class:`lowrank_icl.numerics.forward.solver.ForwardSolution`: q, m (pool tasks),
    q_bar, m_bar (isotropic), q0, m0 (task subspace), each an :class:`Estimate` over seeds.
    ``t_tm`` = tr(S)/D of each pool (1 on average). ``converged`` is True if every fit converged,
    ``residual`` the largest relative normal-equation residual, ``iterations`` the largest count.
    ``parts`` (pool_repeats > 1 only) maps "q", "q_bar", "q0" to {"signal", "noise"} Estimates.
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
    parts: dict = field(default=None, repr=False, compare=False)

    def _test_setting(self, alpha_test, sigma_test):
        a_t = alpha_test if alpha_test is not None else (
            self.alpha_test if self.alpha_test is not None else float(self.params.alpha))
        s_t = sigma_test if sigma_test is not None else (
            self.sigma_test if self.sigma_test is not None else float(self.params.sigma))
        a_t = float(check_real("alpha_test", a_t, lower=0.0))
        s_t = float(check_real("sigma_test", s_t, lower=0.0, lower_inclusive=True))
        return max(1, int(np.floor(a_t * self.sizes.dim + 0.5))), s_t

    def errors(self, alpha_test=None, sigma_test=None) -> SimulatedErrors:
        """Exact e(Gamma_hat) per seed at test context ratio alpha_test and test noise sigma_test.

        Defaults: the values given to :func:`simulate`, else the training alpha and sigma.
        """
        Lt, s_t = self._test_setting(alpha_test, sigma_test)
        D = self.sizes.dim
        qb = np.array(self.q_bar.values)

        def err(t, m, q):
            return Estimate.of(error_from_summaries(np.asarray(t), np.array(m.values), np.array(q.values),
                                                    qb, D, Lt, s_t))
        ones = np.ones(len(qb))
        return SimulatedErrors(tm=err(self.t_tm.values, self.m, self.q),
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
        D = self.sizes.dim
        n = len(self.seeds)
        spec = {"tm": (np.array(self.t_tm.values), self.m, "q"), "idg": (np.ones(n), self.m0, "q0"),
                "odg": (np.ones(n), self.m_bar, "q_bar")}
        out = {}
        for name, (t, m, qname) in spec.items():
            sig = error_from_summaries(t, np.array(m.values), np.array(self.parts[qname]["signal"].values),
                                       np.array(self.parts["q_bar"]["signal"].values), D, Lt, s_t)
            noise = ((1 + 1 / Lt) * np.array(self.parts[qname]["noise"].values)
                     + (t + s_t**2) * (D / Lt) * np.array(self.parts["q_bar"]["noise"].values))
            out[name] = {"signal": Estimate.of(sig), "noise": Estimate.of(noise)}
        return out

    def effective_params(self) -> ForwardParams:
        """The ratios actually simulated: L/D, M/D^2, M0/D, r/D of the integer sizes (sigma, lam as given).

        Comparing theory at these ratios removes the rounding of the sizes from a finite-D comparison.
        """
        s = self.sizes
        return ForwardParams(alpha=s.alpha, tau=s.tau, kappa=s.kappa, rho=s.rho,
                             sigma=self.params.sigma, lam=self.params.lam)

    def effective_alpha_test(self, alpha_test=None) -> float:
        """L~/D of the integer test context used by :meth:`errors` for this alpha_test."""
        Lt, _ = self._test_setting(alpha_test, None)
        return Lt / self.sizes.dim

    def order_parameters(self) -> dict:
        """Means of the order parameters (CLI JSON)."""
        return {k: getattr(self, k).mean for k in ORDER_FIELDS}

    def to_dict(self, alpha_test=None, sigma_test=None) -> dict:
        err = self.errors(alpha_test, sigma_test).to_dict()
        return {**err, "order_parameters": self.order_parameters(),
                "order_parameter_sems": {k: getattr(self, k).sem for k in ORDER_FIELDS},
                "sizes": {"D": self.sizes.dim, "L": self.sizes.context_length, "M": self.sizes.n_prompts,
                          "M0": self.sizes.n_tasks, "r": self.sizes.rank},
                "seeds": list(self.seeds), "converged": self.converged, "residual": self.residual,
                "iterations": self.iterations, "methods": list(self.methods), "seconds": self.seconds}


# ----------------------------------------------------------------------------------------------
# one seed (top level: runs in worker processes)

def _summaries(gamma, pool_tasks, subspace) -> dict:
    pool = order_summaries(gamma, SecondMoment.pool(pool_tasks))
    sub = order_summaries(gamma, SecondMoment.subspace(subspace))
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
        fit = fit_ridge(data.x, data.h, data.y, job["lam"], s.n_tasks, method=job["method"], tol=job["tol"])
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


def _job_key(job: dict) -> str:
    blob = json.dumps({**job, "code_version": CODE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _run_cached(job: dict, cache_dir) -> dict:
    if cache_dir is None:
        return run_seed(job)
    path = Path(cache_dir) / f"seed-{_job_key(job)}.json"
    if path.exists():
        with open(path) as fh:
            stored = json.load(fh)
        if stored.get("job") == job:
            return stored["result"]
    result = run_seed(job)
    atomic_write_json(path, {"job": job, "code_version": CODE_VERSION, "result": result})
    return result


def _parse_seeds(seeds) -> tuple:
    if isinstance(seeds, (int, np.integer)):
        seeds = range(int(seeds))
    out = tuple(check_int("seed", s, lower=0) for s in seeds)
    if not out:
        raise ValueError("seeds must be a non-empty sequence of integers >= 0")
    return out


def run_jobs(jobs: list, workers: int = 1, cache_dir=None, progress: bool = False) -> list:
    """Run seed jobs (dicts as in :func:`run_seed`), in up to 2 processes, in input order."""
    workers = min(MAX_WORKERS, check_int("workers", workers, lower=1))
    t0 = time.perf_counter()
    done = [0]

    def report(i, r):
        done[0] += 1
        if progress:
            j = jobs[i]
            print(f"  simulate D={j['dim']} seed={j['seed']} [{done[0]}/{len(jobs)}] {r['method']} "
                  f"{r['seconds']:.1f}s (elapsed {time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)

    return run_parallel(_run_cached_job, [(job, cache_dir) for job in jobs], workers, report)


def _run_cached_job(job_and_cache):
    return _run_cached(*job_and_cache)


def make_jobs(dim, params: ForwardParams, seeds, method="auto", tol=1e-8, pool_repeats=1) -> list:
    """Seed jobs for one parameter point (plain dicts: picklable, hashable as JSON)."""
    return [{"dim": int(dim), "alpha": float(params.alpha), "tau": float(params.tau),
             "kappa": float(params.kappa), "rho": float(params.rho), "sigma": float(params.sigma),
             "lam": float(params.lam), "seed": int(s), "method": method, "tol": float(tol),
             "pool_repeats": int(pool_repeats)} for s in seeds]


def collect(dim, params: ForwardParams, seeds, results: list, alpha_test=None, sigma_test=None,
            seconds=0.0) -> SimulationResult:
    """Assemble a :class:`SimulationResult` from per-seed results of :func:`run_seed`."""
    sizes = Sizes.from_ratios(dim, params.alpha, params.tau, params.kappa, params.rho)
    est = {k: Estimate.of([r[k] for r in results]) for k in (*ORDER_FIELDS, "t_tm")}
    parts = None
    if "q_signal" in results[0]:
        parts = {q: {p: Estimate.of([r[f"{q}_{p}"] for r in results]) for p in ("signal", "noise")}
                 for q in _QUADRATIC}
    return SimulationResult(params=params, sizes=sizes, seeds=tuple(seeds), **est,
                            converged=all(r["converged"] for r in results),
                            residual=max(r["residual"] for r in results),
                            iterations=max(r["iterations"] for r in results),
                            seconds=float(seconds), methods=tuple(sorted({r["method"] for r in results})),
                            alpha_test=alpha_test, sigma_test=sigma_test, parts=parts)


def simulate(dim, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, *, alpha_test=None, sigma_test=None,
             seeds: Iterable[int] | int = range(5), method: str = "auto", tol: float = 1e-8,
             workers: int = 1, cache_dir=None, progress: bool = False,
             pool_repeats: int = 1, y2_column: bool = False) -> SimulationResult:
    """Train Gamma_hat at dimension ``dim`` for each seed and measure it (module docstring).

    Parameters as in :func:`lowrank_icl.numerics.solve` (alpha, tau, kappa, rho, sigma, lam: scalars)
    plus ``dim`` = D, ``seeds`` (iterable or a count), the ridge ``method`` and ``tol``
    (:func:`lowrank_icl.validation.forward.ridge.fit_ridge`; the default relative residual 1e-8 changes
    the errors by far less than one Monte Carlo SE), ``workers`` (<= 2 processes), ``cache_dir``,
    ``progress`` (stderr) and ``pool_repeats`` (signal/noise split). ``alpha_test``/``sigma_test``
    set the defaults of ``result.errors()``.

    ``y2_column=True`` trains the full-rank paper's model (the extra feature (1/L) sum_l y_l^2 times the
    query) beside the reduced one on the same prompts and returns a
    :class:`lowrank_icl.validation.forward.y2_column.Y2ColumnResult` (seeds, method, progress only).
    """
    if y2_column:
        from lowrank_icl.validation.forward.y2_column import simulate_y2_column
        return simulate_y2_column(dim, alpha, tau, kappa, rho, sigma, lam, seeds=seeds, method=method,
                                  progress=progress)
    dim = check_int("dim", dim, lower=1)
    params = ForwardParams(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    if params.shape != ():
        raise ValueError("simulate takes scalar parameters; loop (or use run_jobs) for sweeps")
    if alpha_test is not None:
        alpha_test = float(check_real("alpha_test", alpha_test, lower=0.0))
    if sigma_test is not None:
        sigma_test = float(check_real("sigma_test", sigma_test, lower=0.0, lower_inclusive=True))
    pool_repeats = check_int("pool_repeats", pool_repeats, lower=1)
    seeds = _parse_seeds(seeds)
    start = time.perf_counter()
    jobs = make_jobs(dim, params, seeds, method, tol, pool_repeats)
    results = run_jobs(jobs, workers=workers, cache_dir=cache_dir, progress=progress)
    return collect(dim, params, seeds, results, alpha_test, sigma_test, time.perf_counter() - start)
