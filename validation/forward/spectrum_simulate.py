r"""Monte Carlo for a general task spectrum: :func:`simulate_spectrum`, the twin of
``solve(..., spectrum=spec)``.

For each seed (independent draw of everything):

1. the D-point spectrum: the pairs (s_j, t_j), j < D, of the quantile discretization of the
   spectrum's atoms (:func:`quantile_pairs`; for an n-atom equal-weight spectrum with n = D these
   are the atoms themselves);
2. a Haar eigenbasis O: Sigma = O diag(s) O^T, test law Sigma' = O diag(t) O^T;
3. the pool w_i = O diag(sqrt(s)) z_i, z_i ~ N(0, I_D), i < M0, and M prompts with the exact h | w
   sampler of :mod:`lowrank_icl.validation.forward.sampling` (same sizes L, M, M0 as ``simulate``);
4. Gamma_hat by :func:`lowrank_icl.validation.forward.ridge.fit_ridge`;
5. EXACT test errors for TM (the pool moment), IDG (Sigma) and the test law (Sigma'), from the order
   summaries of Gamma_hat (no test prompts are sampled).

The theory to compare with at finite D is ``solve`` at the effective ratios (L/D, M/D^2, M0/D) with
the D-point spectrum (:meth:`SpectrumSimulation.theory`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lowrank_icl.numerics import TaskSpectrum, solve
from lowrank_icl.numerics.utils import check_int, check_real, check_seeds
from lowrank_icl.theory import SecondMoment, error_from_summaries, order_summaries
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_h
from lowrank_icl.numerics.utils import json_document
from lowrank_icl.numerics.results import PROTOCOLS
from lowrank_icl.validation.forward.results import MonteCarloResult, emit_progress, fit_report
from lowrank_icl.validation.stats import Estimate, EstimatedErrors

_CHUNK = 1 << 14


def quantile_pairs(spectrum: TaskSpectrum, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) of ``dim`` directions: direction j gets the atom whose cumulative weight (atoms sorted by
    decreasing s, ties kept in order) covers (j + 1/2)/dim."""
    order = np.argsort(-spectrum.train, kind="stable")
    cum = np.cumsum(spectrum.weights[order])
    idx = np.minimum(np.searchsorted(cum, (np.arange(dim) + 0.5) / dim), order.size - 1)
    return spectrum.train[order][idx], spectrum.test[order][idx]


def _haar(dim, rng):
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def run_spectrum_seed(dim, alpha, tau, kappa, sigma, lam, spectrum, seed, method="auto", tol=1e-8) -> dict:
    """One seed: order summaries of Gamma_hat for the pool, the train law and the test law."""
    sizes = Sizes.from_ratios(dim, alpha, tau, kappa, 1.0)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5BEC]))
    s, t = quantile_pairs(spectrum, dim)
    basis = _haar(dim, rng)
    pool = (rng.standard_normal((sizes.n_tasks, dim)) * np.sqrt(s)) @ basis.T
    M = sizes.n_prompts
    idx = rng.integers(sizes.n_tasks, size=M)
    x, h, y = np.empty((M, dim)), np.empty((M, dim)), np.empty(M)
    for a in range(0, M, _CHUNK):
        w = pool[idx[a:a + _CHUNK]]
        k = w.shape[0]
        x[a:a + k] = rng.standard_normal((k, dim)) / np.sqrt(dim)
        y[a:a + k] = np.einsum("ij,ij->i", x[a:a + k], w) + sigma * rng.standard_normal(k)
        h[a:a + k] = sample_h(w, sizes.context_length, sigma, rng)
    fit = fit_ridge(x, h, y, lam, sizes.n_tasks, method=method, tol=tol)
    out = {"converged": bool(fit.converged), "residual": float(fit.residual), "iterations": int(fit.iterations)}
    laws = {"tm": SecondMoment.pool(pool), "idg": SecondMoment.from_factor(basis * np.sqrt(s)),
            "odg": SecondMoment.from_factor(basis * np.sqrt(t))}
    for name, law in laws.items():
        summ = order_summaries(fit.gamma, law)
        out.update({f"{name}_t": summ["t"], f"{name}_m": summ["m"], f"{name}_q": summ["q"]})
    out["q_bar"] = order_summaries(fit.gamma, None)["q_bar"]
    return out


@dataclass(frozen=True, repr=False)
class SpectrumSimulation(MonteCarloResult):
    """Per-seed summaries of a spectrum simulation; ``errors()`` gives exact TM/IDG/test-law Estimates.

    ``alpha``, ``tau``, ``kappa`` are the ratios as given (the integer sizes are in ``sizes``; their
    ratios L/D, M/D^2, M0/D are what :meth:`theory` uses). ``residual`` is the largest relative
    normal-equation residual of the seeds' ridge fits; ``converged`` means every fit met its tolerance
    and every value is finite; ``reason`` says what failed ("" when converged).

    Attributes
    ----------
    dim : int
        Token dimension D.
    alpha, tau, kappa, sigma, lam : float
        The model parameters as given.
    sizes : Sizes
        Integer sizes L, M, M0 of the run.
    spectrum : TaskSpectrum
        The train/test task law.
    seeds : tuple of int
        Independent pretraining draws.
    per_seed : tuple of dict
        The summaries of each seed.
    seconds : float
        Wall time of the run.
    alpha_test, sigma_test : float or None
        Test context ratio and noise (None: the training ones).
    method, tol : str, float
        Ridge solver and its relative residual.
    """

    dim: int
    alpha: float
    tau: float
    kappa: float
    sizes: Sizes
    spectrum: TaskSpectrum
    sigma: float
    lam: float
    seeds: tuple
    per_seed: tuple
    seconds: float
    alpha_test: float | None = None
    sigma_test: float | None = None
    method: str = "auto"
    tol: float = 1e-8

    def _report(self):
        return fit_report([{**r, "seed": sd} for sd, r in zip(self.seeds, self.per_seed)])

    @property
    def converged(self) -> bool:
        return self._report()[0]

    @property
    def residual(self) -> float:
        """The largest relative normal-equation residual over the seeds' ridge fits."""
        return self._report()[1]

    @property
    def iterations(self) -> int:
        """The largest iteration count of the seeds' ridge fits."""
        return self._report()[2]

    @property
    def reason(self) -> str:
        return self._report()[3]

    def parameters(self) -> dict:
        """The inputs as given (the ``"parameters"`` of the JSON document)."""
        return {"dim": self.dim, "alpha": self.alpha, "tau": self.tau, "kappa": self.kappa, "sigma": self.sigma,
                "lam": self.lam, "alpha_test": self.alpha_test, "sigma_test": self.sigma_test,
                "spectrum": self.spectrum.to_dict(), "seeds": list(self.seeds), "method": self.method,
                "tol": self.tol}

    def to_dict(self, alpha_test=None, sigma_test=None) -> dict:
        """The JSON document: ``parameters`` (the inputs as given), ``version``, ``errors`` (each
        {"mean", "sem", "n", "values"}) and ``test`` (the alpha_test, sigma_test and test context
        L~ they are measured at), ``theory`` (:meth:`theory`'s errors at the same test context and
        noise), the integer sizes and the solver diagnostics; strictly JSON-ready."""
        z = self.sizes
        a_t, s_t = self._test_setting(alpha_test, sigma_test)
        th = self.theory()   # at the simulated test context L~ = round(alpha_test D), as errors() uses
        th_err = th.errors(alpha_test=self._test_length(a_t) / self.dim, sigma_test=s_t)
        return json_document(self.parameters(), {
            "errors": self.errors(alpha_test, sigma_test).to_dict(),
            "test": {"alpha_test": a_t, "sigma_test": s_t, "L": self._test_length(a_t)},
            "theory": {"errors": {k: float(v) for k, v in th_err.items()},
                       "converged": bool(th.converged), "residual": float(th.residual)},
            "sizes": {"D": z.dim, "L": z.context_length, "M": z.n_prompts, "M0": z.n_tasks},
            "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations, "seconds": self.seconds})

    def _test_setting(self, alpha_test, sigma_test):
        if alpha_test is None:
            alpha_test = self.sizes.alpha if self.alpha_test is None else self.alpha_test
        if sigma_test is None:
            sigma_test = self.sigma if self.sigma_test is None else self.sigma_test
        return (float(check_real("alpha_test", alpha_test, lower=0.0)),
                float(check_real("sigma_test", sigma_test, lower=0.0, lower_inclusive=True)))

    def _test_length(self, alpha_test: float) -> int:
        """L~ = round(alpha_test D), at least 1 (rounding half up)."""
        return max(1, int(np.floor(alpha_test * self.dim + 0.5)))

    def errors(self, alpha_test=None, sigma_test=None) -> EstimatedErrors:
        """TM, IDG, test-law (``odg``) Estimates of e(Gamma_hat) over seeds at test context
        L~ = round(alpha_test D). Defaults: the values given to :func:`simulate_spectrum`, else L/D
        of the training context and the training sigma."""
        a_t, s_t = self._test_setting(alpha_test, sigma_test)
        Lt = self._test_length(a_t)
        qb = np.array([r["q_bar"] for r in self.per_seed])
        return EstimatedErrors(**{name: Estimate.of(error_from_summaries(
            np.array([r[f"{name}_t"] for r in self.per_seed]), np.array([r[f"{name}_m"] for r in self.per_seed]),
            np.array([r[f"{name}_q"] for r in self.per_seed]), qb, self.dim, Lt, s_t))
            for name in PROTOCOLS})

    def theory(self):
        """``solve`` at the simulated integer ratios with the D-point spectrum (the finite-D prediction)."""
        s, t = quantile_pairs(self.spectrum, self.dim)
        z = self.sizes
        return solve(alpha=z.alpha, tau=z.tau, kappa=z.kappa, sigma=self.sigma, lam=self.lam,
                     spectrum=TaskSpectrum(train=s, test=t))

    def __repr__(self) -> str:
        z = self.sizes
        return (f"SpectrumSimulation(D={z.dim}, L={z.context_length}, M={z.n_prompts}, M0={z.n_tasks}; "
                f"{len(self.seeds)} seeds; converged={self.converged}, residual={self.residual:.1e})\n"
                f"  errors: {self.errors()}")


def simulate_spectrum(*, dim, alpha, tau, kappa, sigma=0.0, lam=0.0, spectrum: TaskSpectrum, alpha_test=None,
                      sigma_test=None, seeds=range(5), method: str = "auto", tol: float = 1e-8,
                      progress=False) -> SpectrumSimulation:
    """Train Gamma_hat at dimension ``dim`` for each seed with tasks from the spectrum (module docstring).

    Parameters
    ----------
    dim : int
        Token dimension D (2 <= D <= 256).
    alpha, tau, kappa, sigma, lam : float
        As in :func:`lowrank_icl.numerics.solve` (kappa finite).
    spectrum : TaskSpectrum
        The task law (train and test spectra).
    alpha_test, sigma_test : float, optional
        Defaults of ``errors()``.
    seeds : int, str or sequence of int
        Distinct integers >= 0, a count n (the seeds 0 .. n-1) or a text such as "0-4" or "1,3,7"
        (:func:`lowrank_icl.numerics.utils.check_seeds`, the package's one seed rule).
    method, tol
        Ridge solver and its relative residual.
    progress : bool or callable
        One line per seed on stderr (True) or to a callable.

    Returns
    -------
    SpectrumSimulation
    """
    dim = check_int("dim", dim, lower=2, upper=256)
    if not isinstance(spectrum, TaskSpectrum):
        raise ValueError(f"spectrum must be a TaskSpectrum (got {type(spectrum).__name__})")
    seeds = check_seeds(seeds)
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    if alpha_test is not None:
        alpha_test = float(check_real("alpha_test", alpha_test, lower=0.0))
    if sigma_test is not None:
        sigma_test = float(check_real("sigma_test", sigma_test, lower=0.0, lower_inclusive=True))
    tol = float(check_real("tol", tol, lower=0.0, upper=1.0))
    sizes = Sizes.from_ratios(dim, alpha, tau, kappa, 1.0)
    if sizes.fresh_tasks:
        raise ValueError("kappa must be finite with a spectrum (got inf): the task pool is drawn from it")
    t0 = time.perf_counter()
    per_seed = []
    for i, sd in enumerate(seeds):
        per_seed.append(run_spectrum_seed(dim, alpha, tau, kappa, sigma, lam, spectrum, sd, method, tol))
        emit_progress(progress, f"  simulate --spectrum D={dim} seed={sd} [{i + 1}/{len(seeds)}] "
                        f"({time.perf_counter() - t0:.1f} s)")
    return SpectrumSimulation(dim=dim, alpha=float(alpha), tau=float(tau), kappa=float(kappa), sizes=sizes,
                              spectrum=spectrum, sigma=sigma, lam=lam, seeds=seeds, per_seed=tuple(per_seed),
                              seconds=time.perf_counter() - t0, alpha_test=alpha_test, sigma_test=sigma_test,
                              method=method, tol=tol)


__all__ = ["simulate_spectrum", "SpectrumSimulation", "quantile_pairs", "run_spectrum_seed"]
