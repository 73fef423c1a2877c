r"""Monte Carlo of the full-rank paper's exact finite-d model: the reduced attention plus the
label-power column, trained side by side with the reduced model on the same prompts.

    res = simulate_y2_column(dim=12, alpha=2, tau=2, kappa=1, rho=1.0, sigma=0.1, lam=1e-3, seeds=range(5))
    res.y2_column.odg, res.reduced.odg, res.excess.odg      # Estimates over seeds (paired excess)
    res.population_excess.odg                                # infinite-pretraining excess of the same pools

Model: yhat = x_q^T (Gamma h + b s), s = (1/L) sum_l y_l^2 of the context (the d x (d+1) matrix
[Gamma, b] acting on [h, s]). Training: the ridge of the reduced model with the feature [h, s] in
place of h, penalty lam M0 (||Gamma||_F^2 + ||b||^2) -- the full-rank paper's penalty
lam_Lu (M/D) ||[Gamma, b]||_F^2 with lam_Lu = lam kappa/tau. Solved by
:func:`lowrank_icl.validation.forward.ridge.fit_ridge` with D' = D + 1 feature columns.
Each seed draws the subspace, pool and prompts of :func:`sampling.sample_pretraining` (so the
reduced fit is exactly the one :func:`simulate` trains for that seed), with s sampled exactly from
the same contexts. Test errors are exact (:func:`lowrank_icl.theory.forward.y2_column.y2_column_test_error`).

Differences from the published pipeline that do not change the effect: pool tasks are drawn
Gaussian w = sqrt(D/r) A v (the published task-diversity runs also draw Gaussian tasks; some other
runs normalise them to ||w|| = sqrt(D)), and prompts pick pool tasks uniformly with replacement (the
published code repeats every task exactly round(M/M0) times; ``balanced=True`` does the same as
closely as M allows).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from lowrank_icl.numerics import ForwardParams
from lowrank_icl.numerics.results import PROTOCOLS
from lowrank_icl.numerics.utils import check_int, check_real, check_seeds, json_document
from lowrank_icl.theory import population_excess, task_law_moments, y2_column_test_error
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_pretraining
from lowrank_icl.validation.forward.results import MonteCarloResult, emit_progress, fit_report
from lowrank_icl.validation.stats import Estimate, EstimatedErrors

@dataclass(frozen=True, repr=False)
class Y2ColumnResult(MonteCarloResult):
    """Exact errors of both models per seed, the paired excess, and the infinite-pretraining excess.

    ``y2_column``, ``reduced``, ``excess`` (paired: y2_column - reduced per seed) and
    ``population_excess`` are :class:`EstimatedErrors` over seeds; :meth:`errors` is ``y2_column``
    (the model this mode trains), measured at the training context length and noise.
    ``b_norm2`` is ||b||^2/D of the trained column and ``pool_mean_norm2`` ||w_bar||^2/D of the pool
    (1/M0 on average); ``b_cosine`` the cosine between b and w_bar. ``residual`` is the largest
    relative normal-equation residual of the two ridge fits over the seeds; ``converged`` means
    every fit met its tolerance and every value is finite; ``reason`` says what failed.

    Attributes
    ----------
    params : ForwardParams
        The model.
    sizes : Sizes
        D, L, M, M0, r.
    seeds : tuple of int
        Pretraining draws.
    reduced, y2_column, excess, population_excess : EstimatedErrors
        TM/IDG/ODG errors of both models, their paired difference and its infinite-pretraining limit.
    b_norm2, pool_mean_norm2, b_cosine : Estimate
        The trained column (above).
    converged, residual, reason : bool, float, str
        Ridge-fit diagnostics (above).
    seconds : float
        Wall-clock time.
    """

    params: ForwardParams
    sizes: Sizes
    seeds: tuple
    reduced: EstimatedErrors
    y2_column: EstimatedErrors
    excess: EstimatedErrors
    population_excess: EstimatedErrors
    b_norm2: Estimate
    pool_mean_norm2: Estimate
    b_cosine: Estimate
    converged: bool
    residual: float
    seconds: float
    iterations: int = 0
    reason: str = ""
    method: str = "auto"
    tol: float = 1e-8
    balanced: bool = False

    def errors(self) -> EstimatedErrors:
        """The label-power-column model's TM/IDG/ODG errors (Estimates over seeds)."""
        return self.y2_column

    def parameters(self) -> dict:
        """The inputs (the ``"parameters"`` of the JSON document)."""
        p = self.params
        return {"dim": self.sizes.dim, **{k: float(getattr(p, k)) for k in ForwardParams.field_names()},
                "seeds": list(self.seeds), "method": self.method, "tol": self.tol, "balanced": self.balanced,
                "y2_column": True}

    def to_dict(self) -> dict:
        """The JSON document: ``parameters``, ``version``, ``errors`` (the y2-column model), ``reduced``,
        ``excess``, ``population_excess`` (each protocol {"mean", "sem", "n", "values"}), the column's
        norms, the integer sizes and the solver diagnostics."""
        s = self.sizes
        return json_document(self.parameters(), {
            "errors": self.y2_column.to_dict(), "reduced": self.reduced.to_dict(),
            "excess": self.excess.to_dict(), "population_excess": self.population_excess.to_dict(),
            "b_norm2": self.b_norm2.to_dict(), "pool_mean_norm2": self.pool_mean_norm2.to_dict(),
            "b_cosine": self.b_cosine.to_dict(),
            "sizes": {"D": s.dim, "L": s.context_length, "M": s.n_prompts, "M0": s.n_tasks, "r": s.rank},
            "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations, "seconds": self.seconds})

    def __repr__(self) -> str:
        s = self.sizes
        return (f"Y2ColumnResult(D={s.dim}, L={s.context_length}, M={s.n_prompts}, M0={s.n_tasks}, r={s.rank}; "
                f"{len(self.seeds)} seeds; converged={self.converged}, residual={self.residual:.1e})\n"
                f"  y2_column: {self.y2_column}\n  excess: {self.excess}")


def run_y2_seed(sizes: Sizes, sigma: float, lam: float, seed: int, method: str = "auto",
                balanced: bool = False, tol: float = 1e-8) -> dict:
    """Train both models on the prompts of ``seed`` and measure them exactly (one dict per seed)."""
    data = sample_pretraining(sizes, sigma, seed, label_power=True, balanced=balanced)
    D, L = sizes.dim, sizes.context_length
    red = fit_ridge(data.x, data.h, data.y, lam, sizes.n_tasks, method=method, tol=tol)
    ext = fit_ridge(data.x, np.column_stack([data.h, data.label_power]), data.y, lam, sizes.n_tasks, method=method,
                    tol=tol)
    gamma, b = ext.gamma[:, :D], ext.gamma[:, D]
    laws = {"tm": task_law_moments("pool", pool=data.pool, sigma_test=sigma),
            "idg": task_law_moments("subspace", subspace=data.subspace, sigma_test=sigma),
            "odg": task_law_moments("isotropic", dim=D, sigma_test=sigma)}
    zero = np.zeros(D)
    r = {p: y2_column_test_error(red.gamma, zero, law, L, sigma) for p, law in laws.items()}
    e = {p: y2_column_test_error(gamma, b, law, L, sigma) for p, law in laws.items()}
    w_bar = data.pool.mean(axis=0)
    pop = population_excess(data.pool, data.subspace, L, sigma)["excess"]
    return {"reduced": r, "y2_column": e, "excess": {p: e[p] - r[p] for p in PROTOCOLS}, "population": pop,
            "b_norm2": float(b @ b) / D, "pool_mean_norm2": float(w_bar @ w_bar) / D,
            "b_cosine": float(b @ w_bar / (np.linalg.norm(b) * np.linalg.norm(w_bar))),
            "converged": red.converged and ext.converged, "residual": max(red.residual, ext.residual),
            "iterations": max(red.iterations, ext.iterations)}


def simulate_y2_column(*, dim, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, seeds=range(5),
                       method: str = "auto", tol: float = 1e-8, progress=False,
                       balanced: bool = False) -> Y2ColumnResult:
    """Reduced model and label-power-column model trained on the same prompts (module docstring).

    Parameters
    ----------
    dim : int
        Token dimension D >= 2.
    alpha, tau, kappa, rho, sigma, lam : float
        As in :func:`lowrank_icl.numerics.solve` (scalars, kappa finite).
    seeds : int, str or sequence of int
        Distinct integers >= 0, a count n (the seeds 0 .. n-1) or a text such as "0-4" or "1,3,7"
        (:func:`lowrank_icl.numerics.utils.check_seeds`, the package's one seed rule).
    method, tol
        Ridge solver and its relative residual (both models).
    progress : bool or callable
        One line per seed on stderr (True) or to a callable.
    balanced : bool
        Every pool task in floor(M/M0) or ceil(M/M0) prompts (the published repetitions).

    Returns
    -------
    Y2ColumnResult
        Exact errors of the reduced model yhat = x_q^T Gamma h and of the model with the extra feature
        b^T x_q (1/L) sum_l y_l^2, and their difference.
    """
    dim = check_int("dim", dim, lower=2)
    params = ForwardParams(alpha=alpha, tau=tau, kappa=kappa, rho=rho, sigma=sigma, lam=lam)
    if params.shape != ():
        raise ValueError("simulate_y2_column takes scalar parameters")
    seeds = check_seeds(seeds)
    tol = float(check_real("tol", tol, lower=0.0, upper=1.0))
    s = Sizes.from_ratios(dim, alpha, tau, kappa, rho)
    start = time.perf_counter()
    rows = []
    for i, seed in enumerate(seeds):
        rows.append(run_y2_seed(s, float(sigma), float(lam), seed, method, balanced, tol))
        emit_progress(progress, f"  y2-column D={dim} seed={seed} [{i + 1}/{len(seeds)}] "
                                f"({time.perf_counter() - start:.1f} s)")
    converged, residual, iterations, reason = fit_report(
        [{"seed": sd, "converged": r["converged"], "residual": r["residual"], "iterations": r["iterations"],
          **{f"{k}_{p}": float(r[k][p]) for k in ("reduced", "y2_column") for p in PROTOCOLS}}
         for sd, r in zip(seeds, rows)])
    return Y2ColumnResult(params=params, sizes=s, seeds=seeds,
                          reduced=EstimatedErrors.of(rows, "reduced"),
                          y2_column=EstimatedErrors.of(rows, "y2_column"),
                          excess=EstimatedErrors.of(rows, "excess"),
                          population_excess=EstimatedErrors.of(rows, "population"),
                          b_norm2=Estimate.of([r["b_norm2"] for r in rows]),
                          pool_mean_norm2=Estimate.of([r["pool_mean_norm2"] for r in rows]),
                          b_cosine=Estimate.of([r["b_cosine"] for r in rows]),
                          converged=converged, residual=residual, iterations=iterations, reason=reason,
                          seconds=time.perf_counter() - start, method=method, tol=tol, balanced=bool(balanced))
