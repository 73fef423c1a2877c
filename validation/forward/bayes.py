r"""Bayes baselines of in-context regression: the estimators a trained model is measured against.

Model (the toolkit's conventions): tokens x ~ N(0, I_D/D); a context of L = alpha D tokens with
labels y_l = <w, x_l> + sigma xi_l; the query x_q with label y_q = <w, x_q> + sigma xi_q. Every
estimator here is a posterior mean w_hat(X, y) and predicts yhat = x_q^T w_hat.

- **dMMSE** (discrete prior): the posterior mean under the uniform prior on the M0 pool tasks,

      w_hat = sum_i p_i w_i,   p_i = exp(l_i) / sum_j exp(l_j),   l_i = -||y - X w_i||^2 / (2 sigma^2).

  The residuals are formed directly (not as ||y||^2 - 2 w^T X^T y + ..., which cancels when a task
  fits) and normalised by log-sum-exp. sigma = 0 is the limit sigma -> 0: uniform weight on the
  task(s) of smallest residual.
- **GMMSE** (Gaussian prior): the posterior mean under w ~ N(0, C), with C = F F^T given as a
  :class:`lowrank_icl.theory.SecondMoment` (the population rank-r prior is C = (D/r) A A^T, the factor
  sqrt(D/r) A). Two algebraically equal routes:

      task side   (ridge / Woodbury):   w_hat = F (F^T X^T X F + sigma^2 I_k)^{-1} F^T X^T y,
      context side (Gaussian conditioning): w_hat = C X^T (X C X^T + sigma^2 I_L)^{-1} y.

  ``route="auto"`` takes the smaller system (task side when k <= L). At sigma = 0 this is also the
  side that is invertible (the limit sigma -> 0 of either formula).

Test errors (:func:`bayes_errors`). For each seed: the subspace A and the pool of the pretraining
draw of that seed (:func:`lowrank_icl.validation.forward.sampling.pretraining_pool`, so the pool is
the one the ridge-trained model sees), then n test prompts per protocol:
TM a uniformly chosen pool task, IDG a fresh task sqrt(D/r) A v, ODG an isotropic task w ~ N(0, I).
The query is averaged exactly given the context and the task,

    E_q (y_q - x_q^T w_hat)^2 = sigma_t^2 + ||w - w_hat||^2 / D,

so only contexts and tasks are sampled. Per seed the error is the mean over the n prompts; the result
is the mean and SE over seeds (:class:`lowrank_icl.validation.stats.Estimate`). The test prompts of
seed s use a fourth stream, ``SeedSequence(s).spawn(4)[3]``, independent of the pretraining streams.
kappa = inf (a fresh task for every prompt) has no pool: then TM = IDG in law, and dMMSE is
undefined (its kappa -> inf limit is GMMSE).

Exact per-context errors of any estimator that is linear in y given X (:func:`linear_context_errors`):
with w_hat = K y, K = K(X) (D x L), and test tasks of second moment C_t,

    e(X) = sigma_t^2 + (1/D) [ tr((I - K X) C_t (I - K X)^T) + sigma_t^2 ||K||_F^2 ],

so for GMMSE only the contexts need to be sampled (:func:`gmmse_context_errors`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from lowrank_icl.numerics.utils import check_int, check_real, check_seeds
from lowrank_icl.theory import SecondMoment
from lowrank_icl.validation.forward.sampling import Sizes, pretraining_pool
from lowrank_icl.numerics.utils import json_document
from lowrank_icl.numerics.results import PROTOCOLS, ConvergenceReport
from lowrank_icl.validation.stats import EstimatedErrors

ESTIMATORS = ("dmmse", "gmmse")
_CHUNK_FLOATS = 1 << 22       # bound on the largest temporary per chunk (32 MB)
_TEST_STREAM = 3              # index of the test-prompt stream among SeedSequence(seed).spawn(4)


# ----------------------------------------------------------------------------------------------
# estimators

def _as_contexts(X, y):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim == 2:
        X, y = X[None], y[None]
    if X.ndim != 3 or y.shape != X.shape[:2]:
        raise ValueError(f"X must be (n, L, D) and y (n, L) (got {X.shape} and {y.shape})")
    return X, y


def dmmse_estimate(X, y, pool, sigma) -> np.ndarray:
    r"""Posterior mean of w under the uniform prior on the rows of ``pool`` (M0 x D).

    ``X`` (n, L, D) contexts, ``y`` (n, L) labels (a single (L, D), (L) prompt is accepted), ``sigma``
    the noise std. Returns (n, D). sigma = 0 gives the sigma -> 0 limit: the pool task(s) of smallest
    residual ||y - X w_i|| (ties share the weight equally).

    Parameters
    ----------
    X : ndarray
        Contexts, (n, L, D).
    y : ndarray
        Labels, (n, L).
    pool : ndarray
        Pool tasks w_i, (M0, D).
    sigma : float
        Noise standard deviation.

    Returns
    -------
    ndarray
        w_hat = sum_i p_i w_i, p_i proportional to exp(-||y - X w_i||^2 / (2 sigma^2)), shape (n, D).
    """
    X, y = _as_contexts(X, y)
    W = np.atleast_2d(np.asarray(pool, dtype=float))
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    n, L, dim = X.shape
    if W.shape[1] != dim:
        raise ValueError(f"pool has dimension {W.shape[1]}, contexts have {dim}")
    out = np.empty((n, dim))
    step = max(1, _CHUNK_FLOATS // max(1, L * W.shape[0]))
    for s in range(0, n, step):
        resid = y[s:s + step, :, None] - X[s:s + step] @ W.T          # (k, L, M0)
        sq = np.einsum("klm,klm->km", resid, resid)                   # ||y - X w_i||^2
        if sigma > 0:
            logits = -sq / (2.0 * sigma * sigma)
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
        else:
            p = (sq <= sq.min(axis=1, keepdims=True)).astype(float)
        p /= p.sum(axis=1, keepdims=True)
        out[s:s + step] = p @ W
    return out


def _prior_factor(prior, dim) -> np.ndarray:
    """A factor F (D x k) with C = F F^T for a SecondMoment, a D x D matrix, or None (C = I)."""
    if prior is None:
        return np.eye(dim)
    if not isinstance(prior, SecondMoment):
        prior = SecondMoment.from_matrix(prior)
    if prior.dim != dim:
        raise ValueError(f"prior has dimension {prior.dim}, contexts have {dim}")
    if prior.kind == "identity":
        return np.eye(dim)
    if prior.kind == "factor":
        return prior.data
    evals, evecs = np.linalg.eigh((prior.data + prior.data.T) / 2)
    if evals.min() < -1e-10 * max(1.0, evals.max()):
        raise ValueError("prior covariance must be positive semidefinite")
    keep = evals > evals.max() * dim * np.finfo(float).eps
    return evecs[:, keep] * np.sqrt(evals[keep])


def gmmse_operator(X, prior, sigma, *, route: str = "auto") -> np.ndarray:
    r"""The linear map K(X) (n, D, L) of the Gaussian posterior mean, w_hat = K y.

    Task side K = F (F^T X^T X F + sigma^2 I)^{-1} F^T X^T; context side K = C X^T (X C X^T + sigma^2 I)^{-1}.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 2:
        X = X[None]
    n, L, dim = X.shape
    F = _prior_factor(prior, dim)
    k = F.shape[1]
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    route = _pick_route(route, k, L, sigma)
    XF = X @ F                                                          # (n, L, k)
    if route == "task":
        A = np.swapaxes(XF, 1, 2) @ XF
        A[:, np.arange(k), np.arange(k)] += sigma * sigma
        return F @ np.linalg.solve(A, np.swapaxes(XF, 1, 2))            # (n, D, L)
    B = XF @ np.swapaxes(XF, 1, 2)
    B[:, np.arange(L), np.arange(L)] += sigma * sigma
    FXt = F @ np.swapaxes(XF, 1, 2)                                     # C X^T  (n, D, L)
    return np.swapaxes(np.linalg.solve(B, np.swapaxes(FXt, 1, 2)), 1, 2)  # B symmetric


def _pick_route(route, k, L, sigma):
    if route not in ("auto", "task", "context"):
        raise ValueError(f"route must be 'auto', 'task' or 'context' (got {route!r})")
    if route == "auto":
        return "task" if k <= L else "context"
    if sigma == 0 and ((route == "task" and k > L) or (route == "context" and L > k)):
        raise ValueError(f"at sigma = 0 the {route}-side system is singular (k = {k}, L = {L}); use route='auto'")
    return route


def gmmse_estimate(X, y, prior, sigma, *, route: str = "auto") -> np.ndarray:
    r"""Posterior mean of w under the Gaussian prior N(0, C) (module docstring), shape (n, D).

    ``prior``: a :class:`SecondMoment` (factor form is cheapest), a D x D covariance, or None (C = I).
    ``route``: "task" (ridge/Woodbury form), "context" (Gaussian conditioning) or "auto".

    Parameters
    ----------
    X : ndarray
        Contexts, (n, L, D).
    y : ndarray
        Labels, (n, L).
    prior : SecondMoment, ndarray or None
        C = F F^T.
    sigma : float
        Noise standard deviation.
    route : {'auto', 'task', 'context'}
        Which of the two equal formulas to evaluate.

    Returns
    -------
    ndarray
        w_hat = C X^T (X C X^T + sigma^2 I)^{-1} y, shape (n, D).
    """
    X, y = _as_contexts(X, y)
    n, L, dim = X.shape
    F = _prior_factor(prior, dim)
    k = F.shape[1]
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    route = _pick_route(route, k, L, sigma)
    out = np.empty((n, dim))
    step = max(1, _CHUNK_FLOATS // max(1, L * max(k, L if route == "context" else 1)))
    for s in range(0, n, step):
        XF = X[s:s + step] @ F                                          # (c, L, k)
        yc = y[s:s + step]
        if route == "task":
            A = np.swapaxes(XF, 1, 2) @ XF
            A[:, np.arange(k), np.arange(k)] += sigma * sigma
            coef = np.linalg.solve(A, np.einsum("clk,cl->ck", XF, yc)[..., None])[..., 0]
        else:
            B = XF @ np.swapaxes(XF, 1, 2)
            B[:, np.arange(L), np.arange(L)] += sigma * sigma
            alpha_ = np.linalg.solve(B, yc[..., None])[..., 0]         # (X C X^T + s^2)^{-1} y
            coef = np.einsum("clk,cl->ck", XF, alpha_)                 # F^T X^T (...)
        out[s:s + step] = coef @ F.T
    return out


# ----------------------------------------------------------------------------------------------
# exact errors of a linear estimator given the context

def linear_context_errors(K, X, test_moment=None, sigma_test=0.0) -> np.ndarray:
    r"""Exact error of w_hat = K y given the context X, averaged over the test task, its labels' noise
    and the query: sigma_t^2 + (1/D)[tr((I - K X) C_t (I - K X)^T) + sigma_t^2 ||K||_F^2] (per prompt).

    ``K`` (n, D, L), ``X`` (n, L, D), ``test_moment`` C_t (SecondMoment, matrix or None for I).
    """
    K = np.asarray(K, dtype=float)
    X = np.asarray(X, dtype=float)
    dim = X.shape[-1]
    s2 = float(sigma_test) ** 2
    Rm = np.eye(dim) - K @ X                                            # (n, D, D)
    Ft = _prior_factor(test_moment, dim)
    RF = Rm @ Ft
    return s2 + (np.einsum("nij,nij->n", RF, RF) + s2 * np.einsum("nij,nij->n", K, K)) / dim


def gmmse_context_errors(X, prior, sigma, test_moment=None, sigma_test=None) -> np.ndarray:
    """Exact per-context errors of GMMSE (prior C, noise sigma) on test tasks of second moment C_t."""
    sigma_test = sigma if sigma_test is None else sigma_test
    X = np.asarray(X, dtype=float)
    n, L, dim = X.shape
    out = np.empty(n)
    step = max(1, _CHUNK_FLOATS // max(1, dim * max(L, dim)))
    for s in range(0, n, step):
        K = gmmse_operator(X[s:s + step], prior, sigma)
        out[s:s + step] = linear_context_errors(K, X[s:s + step], test_moment, sigma_test)
    return out


# ----------------------------------------------------------------------------------------------
# test prompts and errors

def _test_rng(seed) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(_TEST_STREAM + 1)[_TEST_STREAM])


def draw_test_tasks(protocol, n, subspace, pool, rng) -> np.ndarray:
    """n test tasks: TM uniform pool tasks, IDG sqrt(D/r) A v, ODG isotropic N(0, I_D)."""
    dim, rank = subspace.shape
    if protocol == "tm":
        if pool is None:                       # kappa = inf: the pool is the population
            protocol = "idg"
        else:
            return pool[rng.integers(pool.shape[0], size=n)]
    if protocol == "idg":
        return np.sqrt(dim / rank) * (rng.standard_normal((n, rank)) @ subspace.T)
    if protocol == "odg":
        return rng.standard_normal((n, dim))
    raise ValueError(f"protocol must be one of {PROTOCOLS} (got {protocol!r})")


def draw_contexts(tasks, context_length, sigma, rng):
    """Explicit contexts for the rows of ``tasks``: X (n, L, D) with N(0, I/D) tokens, y = X w + sigma xi."""
    n, dim = tasks.shape
    X = rng.standard_normal((n, context_length, dim)) / np.sqrt(dim)
    y = np.einsum("nld,nd->nl", X, tasks) + sigma * rng.standard_normal((n, context_length))
    return X, y


@dataclass(frozen=True, repr=False)
class BayesResult(ConvergenceReport):
    """TM/IDG/ODG errors of a Bayes estimator over seeds (each seed the mean over ``prompts`` prompts).

    ``errors()`` gives the :class:`EstimatedErrors`. The posterior means are closed forms (no
    iteration), so ``residual`` is 0 and ``iterations`` 0; ``converged`` means every error is
    finite, and ``reason`` names the protocols whose error is not (for example GMMSE at sigma = 0
    and alpha = rho). ``parameters`` are the inputs as given.

    Attributes
    ----------
    estimator : str
        "dmmse" or "gmmse".
    estimates : EstimatedErrors
        TM/IDG/ODG over the seeds (also ``errors()``).
    parameters : dict
        The inputs as given.
    sizes : dict
        Integer sizes D, L, M0, r.
    seeds : tuple of int
        Independent pretraining draws.
    prompts : int
        Test prompts per protocol and seed.
    seconds : float
        Wall time of the run.
    """

    estimator: str
    estimates: EstimatedErrors
    parameters: dict
    sizes: dict
    seeds: tuple
    prompts: int
    seconds: float

    def errors(self) -> EstimatedErrors:
        """The TM/IDG/ODG Estimates over seeds (at the alpha_test and sigma_test given)."""
        return self.estimates

    @property
    def converged(self) -> bool:
        return not self.reason

    @property
    def residual(self) -> float:
        return 0.0

    @property
    def iterations(self) -> int:
        return 0

    @property
    def reason(self) -> str:
        bad = [p for p, e in self.estimates.items() if not all(np.isfinite(e.values))]
        return f"non-finite {', '.join(bad)} error (the estimator's error diverges at these parameters)" if bad else ""

    def to_dict(self) -> dict:
        """The JSON document: ``parameters``, ``version``, ``errors`` (each {"mean", "sem", "n", "values"}),
        ``estimator``, ``sizes``, ``seeds``, ``prompts``, the convergence words and ``seconds``."""
        return json_document(self.parameters, {
            "errors": self.estimates.to_dict(), "estimator": self.estimator, "sizes": self.sizes,
            "seeds": list(self.seeds), "prompts": self.prompts, "converged": self.converged,
            "residual": self.residual, "reason": self.reason, "message": self.message,
            "iterations": self.iterations, "seconds": self.seconds})

    def __repr__(self) -> str:
        return f"BayesResult({self.estimator}: {self.estimates}; {len(self.seeds)} seeds x {self.prompts} prompts)"


def _is_infinite(kappa) -> bool:
    try:
        return math.isinf(float(kappa)) and float(kappa) > 0
    except (TypeError, ValueError):
        return False


def estimate_for(estimator, X, y, subspace, pool, sigma) -> np.ndarray:
    """w_hat of ``estimator`` ("dmmse" or "gmmse" with the population prior of ``subspace``)."""
    if estimator == "dmmse":
        return dmmse_estimate(X, y, pool, sigma)
    if estimator == "gmmse":
        return gmmse_estimate(X, y, SecondMoment.subspace(subspace), sigma)
    raise ValueError(f"estimator must be one of {ESTIMATORS} (got {estimator!r})")


def bayes_seed_errors(estimator, dim, *, alpha, kappa, rho, sigma, seed, prompts, alpha_test=None,
                      sigma_test=None) -> dict:
    """Mean error over ``prompts`` test prompts per protocol for one seed (one pool); see module docstring."""
    L = max(1, int(np.floor((alpha if alpha_test is None else alpha_test) * dim + 0.5)))
    s_t = sigma if sigma_test is None else sigma_test
    infinite = _is_infinite(kappa)
    sizes = Sizes.from_ratios(dim, 1.0, 1.0, 1.0 if infinite else kappa, rho)
    A, pool = pretraining_pool(sizes, seed)
    if infinite:
        pool = None
    rng = _test_rng(seed)
    out = {}
    for protocol in PROTOCOLS:
        w = draw_test_tasks(protocol, prompts, A, pool, rng)
        total = 0.0
        step = max(1, _CHUNK_FLOATS // (L * dim))
        for s in range(0, prompts, step):
            X, y = draw_contexts(w[s:s + step], L, s_t, rng)
            w_hat = estimate_for(estimator, X, y, A, pool, sigma)
            total += float(np.sum(np.sum((w[s:s + step] - w_hat) ** 2, axis=1))) / dim
        out[protocol] = s_t**2 + total / prompts
    return out


def bayes_errors(*, dim, alpha, kappa, rho=1.0, sigma=0.0, estimator: str = "dmmse", seeds=range(8),
                 prompts: int = 1000, alpha_test=None, sigma_test=None) -> BayesResult:
    r"""TM/IDG/ODG test errors of the dMMSE or GMMSE estimator (module docstring), mean ± SE over seeds.

    ``dim`` = D; context L = round(alpha_test D) (alpha_test defaults to alpha: the Bayes estimators are
    not trained, so alpha is the context ratio); M0 = round(kappa D) pool tasks (kappa = inf allowed
    for gmmse), r = round(rho D). ``sigma`` is the noise std the posterior assumes and the test labels
    carry (``sigma_test`` overrides the latter). Keyword-only parameters: there is no tau or lam here.

    Parameters
    ----------
    dim : int
        D.
    alpha, kappa, rho, sigma : float
        Context ratio, task diversity (inf allowed for gmmse), rank ratio, noise std.
    estimator : {'dmmse', 'gmmse'}
        Discrete (pool) prior or Gaussian prior.
    seeds : int, str or sequence of int
        Distinct integers >= 0, a count n (the seeds 0 .. n-1) or a text such as "0-4" or "1,3,7"
        (:func:`lowrank_icl.numerics.utils.check_seeds`, the package's one seed rule); one pretraining
        draw (pool and subspace) per seed.
    prompts : int
        Test prompts per protocol and seed.
    alpha_test, sigma_test : float, optional
        Test context ratio and test-label noise.

    Returns
    -------
    BayesResult
        ``errors()`` the TM/IDG/ODG Estimates over seeds, with the inputs in ``parameters``.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS} (got {estimator!r})")
    dim = check_int("dim", dim, lower=1)
    alpha = float(check_real("alpha", alpha, lower=0.0))
    infinite = _is_infinite(kappa)
    if infinite:
        if estimator == "dmmse":
            raise ValueError("kappa = inf needs estimator='gmmse' (dMMSE needs a finite pool; "
                             "its kappa -> inf limit is GMMSE)")
        kappa = float("inf")
    else:
        kappa = float(check_real("kappa", kappa, lower=0.0))
    rho = float(check_real("rho", rho, lower=0.0, upper=1.0))
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    if alpha_test is not None:
        alpha_test = float(check_real("alpha_test", alpha_test, lower=0.0))
    if sigma_test is not None:
        sigma_test = float(check_real("sigma_test", sigma_test, lower=0.0, lower_inclusive=True))
    prompts = check_int("prompts", prompts, lower=1)
    seeds = check_seeds(seeds)
    start = time.perf_counter()
    per_seed = [bayes_seed_errors(estimator, dim, alpha=alpha, kappa=kappa, rho=rho, sigma=sigma, seed=s,
                                  prompts=prompts, alpha_test=alpha_test, sigma_test=sigma_test)
                for s in seeds]
    L = max(1, int(np.floor((alpha if alpha_test is None else alpha_test) * dim + 0.5)))
    sizes = {"D": dim, "L": L, "M0": None if infinite else max(1, int(np.floor(kappa * dim + 0.5))),
             "r": min(dim, max(1, int(np.floor(rho * dim + 0.5))))}
    params = {"alpha": alpha, "kappa": None if infinite else kappa, "rho": rho, "sigma": sigma,
              "estimator": estimator, "dim": dim, "alpha_test": alpha_test, "sigma_test": sigma_test,
              "prompts": prompts, "seeds": list(seeds)}
    if infinite:
        params["kappa"] = "inf"
    return BayesResult(estimator=estimator, estimates=EstimatedErrors.of(per_seed), parameters=params, sizes=sizes,
                       seeds=seeds, prompts=prompts, seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------
# distance between a model's predictions and the Bayes predictions on the same prompts

def prediction_distances(predict, dim, seed, *, alpha, kappa, rho, sigma, prompts=500,
                         protocols=("tm", "idg")) -> dict:
    r"""Mean squared distance between a model's predictions and dMMSE's / GMMSE's on the same prompts.

    ``predict(X, y, x_query) -> yhat`` for contexts X (n, L, D), labels y (n, L) and queries (n, D). For
    each protocol, n = ``prompts`` test prompts of ``seed``'s subspace and pool (TM: pool tasks, IDG:
    fresh subspace tasks) and one query each; returns {protocol: {"dmmse": d, "gmmse": d}} with
    d = mean_n (yhat_model - x_q^T w_hat_B)^2 (the query is sampled: ``predict`` may be nonlinear).
    This is the distance used to say which baseline a trained model "tracks".
    """
    L = max(1, int(np.floor(alpha * dim + 0.5)))
    A, pool = pretraining_pool(Sizes.from_ratios(dim, 1.0, 1.0, kappa, rho), seed)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(_TEST_STREAM + 2)[_TEST_STREAM + 1])
    out = {}
    for protocol in protocols:
        w = draw_test_tasks(protocol, prompts, A, pool, rng)
        X, y = draw_contexts(w, L, sigma, rng)
        xq = rng.standard_normal((prompts, dim)) / np.sqrt(dim)
        yhat = np.asarray(predict(X, y, xq), dtype=float)
        out[protocol] = {}
        for name in ESTIMATORS:
            w_b = estimate_for(name, X, y, A, pool, sigma)
            out[protocol][name] = float(np.mean((yhat - np.einsum("nd,nd->n", xq, w_b)) ** 2))
    return out


def linear_attention_predictor(gamma):
    """predict(X, y, x_q) = x_q^T Gamma h with h = (D/L) sum_l y_l x_l: the reduced linear attention."""
    G = np.asarray(gamma, dtype=float)

    def predict(X, y, xq):
        n, L, dim = X.shape
        h = (dim / L) * np.einsum("nld,nl->nd", X, y)
        return np.einsum("nd,nd->n", xq, h @ G.T)
    return predict
