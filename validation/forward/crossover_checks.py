"""Simulation checks of the phase-transition layer: the law of predictions of a trained Gamma_hat.

For each pretraining draw (seed) a Gamma_hat is trained by the reduced ridge; fresh test prompts of
the protocol (TM: pool tasks, IDG: fresh tasks in the subspace, ODG: isotropic tasks) give pairs
(y, yhat = x^T Gamma_hat h). Their second moments E yhat^2 and E y yhat are averaged over seeds
(SE over seeds includes both the pretraining-draw and the test-prompt fluctuations), extrapolated
in D by e(D) = e_inf + c/D and compared with the theory (lowrank_icl.numerics.prediction_law) by the
toolkit's rule |e_inf - theory| <= 3 SE. Model and protocols: docs/model.md.

Shape of the marginal: given h, yhat = x^T Gamma h is exactly Gaussian with variance |Gamma h|^2/D, so
at finite D the marginal is a Gaussian scale mixture with excess kurtosis O(1/D) (docs/phase_transition.md
gives the measured values). The limit law is Gaussian; the
check extrapolates the excess kurtosis in D to 0 with the same 3-SE rule, and reports the KS test
of yhat standardized by its own sample std at the largest D.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lowrank_icl.numerics import ForwardParams, prediction_law, solve
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import sample_pretraining, sample_test_prompts, sizes, task_pool
from lowrank_icl.validation.stats import compare, extrapolate
from scipy import stats
from lowrank_icl.numerics.results import PROTOCOLS as _PROTOCOLS


def prediction_samples(dim: int, params: ForwardParams, seed: int, protocol: str, n_test: int,
                       alpha_test=None, sigma_test=None):
    """(y, yhat) on ``n_test`` fresh test prompts of ``protocol`` for the Gamma_hat of pretraining draw ``seed``."""
    if protocol not in _PROTOCOLS:
        raise ValueError(f"protocol must be one of {_PROTOCOLS} (got {protocol!r})")
    s = sizes(dim, params.alpha, params.tau, params.kappa, params.rho)
    data = sample_pretraining(s, float(params.sigma), seed)
    gamma = fit_ridge(data.x, data.h, data.y, float(params.lam), s.n_tasks).gamma
    rng = np.random.default_rng([int(seed), 7919, _PROTOCOLS.index(protocol)])
    if protocol == "tm":
        tasks = data.pool
    elif protocol == "idg":
        tasks = task_pool(data.subspace, n_test, rng)
    else:
        tasks = task_pool(np.eye(dim), n_test, rng)
    a_t = float(params.alpha if alpha_test is None else alpha_test)
    s_t = float(params.sigma if sigma_test is None else sigma_test)
    x, h, y = sample_test_prompts(tasks, n_test, max(1, int(round(a_t * dim))), s_t, rng)
    return y, np.einsum("ni,ij,nj->n", x, gamma, h)


@dataclass(frozen=True)
class PredictionLawCheck:
    """Theory vs simulation for E yhat^2 and E y yhat of one protocol, plus the KS p-value."""

    protocol: str
    dims: tuple
    rows: list          # (quantity, theory, e_inf, se, z, passed)
    ks_pvalue: float
    samples: tuple      # (y, yhat) pooled at the largest D, for histograms

    @property
    def passed(self) -> bool:
        return all(r[-1] for r in self.rows)


def check_prediction_law(dims, params: ForwardParams, seeds, protocol: str = "idg", n_test: int = 4000,
                         progress=None) -> PredictionLawCheck:
    """Simulate at each D over ``seeds`` and compare the (y, yhat) second moments with theory."""
    means = {"var_yhat": [], "cov": [], "excess_kurtosis": []}
    sems = {"var_yhat": [], "cov": [], "excess_kurtosis": []}
    standardized, pooled = [], ([], [])
    for D in dims:
        per_seed = {"var_yhat": [], "cov": [], "excess_kurtosis": []}
        for seed in seeds:
            y, yhat = prediction_samples(D, params, seed, protocol, n_test)
            per_seed["var_yhat"].append(np.mean(yhat**2))
            per_seed["cov"].append(np.mean(y * yhat))
            per_seed["excess_kurtosis"].append(stats.kurtosis(yhat))
            if D == dims[-1]:
                standardized.append(yhat / np.std(yhat))
                pooled[0].append(y)
                pooled[1].append(yhat)
        for k, v in per_seed.items():
            means[k].append(np.mean(v))
            sems[k].append(np.std(v, ddof=1) / np.sqrt(len(v)))
        if progress:
            progress(f"{protocol} D={D}: E yhat^2 {means['var_yhat'][-1]:.4f}, E y yhat {means['cov'][-1]:.4f}")
    law = prediction_law(solve(alpha=params.alpha, tau=params.tau, kappa=params.kappa, rho=params.rho,
                               sigma=params.sigma, lam=params.lam), protocol)
    rows = []
    for name, theory in (("var_yhat", law.var_yhat), ("cov", law.cov), ("excess_kurtosis", 0.0)):
        cmp = compare(float(theory), extrapolate(dims, means[name], sems[name]))
        rows.append((name, cmp.theory, cmp.e_inf, cmp.se, cmp.z, cmp.passed))
    # KS on one draw of yhat per seed (prompts within a seed share Gamma_hat, so pool across seeds)
    ks = stats.kstest(np.concatenate(standardized), "norm").pvalue
    return PredictionLawCheck(protocol, tuple(dims), rows, float(ks),
                              (np.concatenate(pooled[0]), np.concatenate(pooled[1])))


def steepest_point_on_grid(kappa, errors) -> float:
    """kappa of the steepest descent of log e vs log kappa on a grid: the minimum of the neighbour
    slopes (at the log-midpoints), refined by the vertex of the parabola through the three smallest
    around it. The same estimator is applied to theory and simulation, so grid effects cancel."""
    x = np.log(np.asarray(kappa, float))
    f = np.log(np.asarray(errors, float))
    xm = 0.5 * (x[1:] + x[:-1])
    s = np.diff(f) / np.diff(x)
    i = int(np.clip(np.argmin(s), 1, len(s) - 2))
    a, b, _c = np.polyfit(xm[i - 1:i + 2], s[i - 1:i + 2], 2)
    vertex = -b / (2 * a) if a > 0 else xm[i]
    return float(np.exp(np.clip(vertex, xm[i - 1], xm[i + 1])))


@dataclass(frozen=True)
class CrossoverCheck:
    """Simulated vs theoretical crossover location at one (D, alpha)."""

    dim: int
    alpha: float
    kappa: np.ndarray
    e_mean: np.ndarray
    e_sem: np.ndarray
    e_theory: np.ndarray
    kappa_star_sim: float
    kappa_star_se: float
    kappa_star_theory_grid: float
    kappa_star_theory: float

    @property
    def z(self) -> float:
        return (self.kappa_star_sim - self.kappa_star_theory_grid) / self.kappa_star_se

    @property
    def passed(self) -> bool:
        return abs(self.z) <= 3.0


def check_crossover(dim: int, alpha: float, tau: float, rho: float, sigma: float, n_tasks, seeds,
                    lam: float = 0.0, n_boot: int = 1000, workers: int = 1, progress=None) -> CrossoverCheck:
    """Simulate e_IDG at pools of ``n_tasks`` (integers M0) and locate the crossover.

    Seeds are shared across the kappa points (a bootstrap resamples seed indices jointly, keeping
    that correlation); SE = bootstrap standard deviation of the simulated kappa*. The theory is
    evaluated at the simulated integer ratios (r/D, L/D, M/D^2) with the same grid estimator.
    """
    from lowrank_icl.numerics import phase_boundary
    from lowrank_icl.validation.forward.simulate import simulate

    seeds = list(seeds)
    kappas = np.asarray(n_tasks, float) / dim
    values = []
    for k in kappas:
        sim = simulate(dim=dim, alpha=alpha, tau=tau, kappa=k, rho=rho, sigma=sigma, lam=lam, seeds=seeds,
                       workers=workers)
        values.append(np.asarray(sim.errors().idg.values, float))
        if progress:
            progress(f"D={dim} alpha={alpha:g} kappa={k:.4f}: e_IDG {values[-1].mean():.4f}")
    values = np.array(values)                      # (n_kappa, n_seeds)
    s = sizes(dim, alpha, tau, kappas[0], rho)
    res = solve(alpha=s.alpha, tau=s.tau, kappa=kappas, rho=s.rho, sigma=sigma, lam=lam)
    e_th = np.asarray(res.errors().idg, float)
    k_sim = steepest_point_on_grid(kappas, values.mean(axis=1))
    rng = np.random.default_rng(12345)
    boot = [steepest_point_on_grid(kappas, values[:, rng.integers(len(seeds), size=len(seeds))].mean(axis=1))
            for _ in range(n_boot)]
    k_cont = float(phase_boundary(alpha=s.alpha, tau=s.tau, rho=s.rho, sigma=sigma, lam=lam).kappa_star)
    return CrossoverCheck(dim, float(alpha), kappas, values.mean(axis=1),
                          values.std(axis=1, ddof=1) / np.sqrt(len(seeds)), e_th, k_sim, float(np.std(boot, ddof=1)),
                          steepest_point_on_grid(kappas, e_th), k_cont)
