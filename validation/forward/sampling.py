r"""Exact samplers of the pretraining data of the forward model.

Model: tokens x ~ N(0, I_D/D); a task w = sqrt(D/r) A v, v ~ N(0, I_r), in a Haar subspace A
(D x r, orthonormal columns); labels y = <w, x> + sigma xi; the reduced attention feature of a
prompt is h = (D/L) sum_{l<=L} y_l x_l and the prediction for the query x_{L+1} is x_{L+1}^T Gamma h.
A pool of M0 tasks is drawn once; each of M prompts picks a pool task uniformly with replacement.
kappa = inf (M0 = inf) means a fresh task for every prompt: no pool is drawn, each prompt gets its
own w = sqrt(D/r) A v (``Sizes.n_tasks`` is None, ``PretrainingData.pool`` and ``task_index`` are None).

Integer sizes from the ratios (:class:`Sizes`): L = max(1, round(alpha D)), M = max(1, round(tau D^2)),
M0 = max(1, round(kappa D)) (None for kappa = inf), r = min(D, max(1, round(rho D))), rounding half up.

The exact low-dimensional law of h given w (why the ridge simulator never builds contexts)
-------------------------------------------------------------------------------------------
Write e = w/||w|| and split the L x D context X_c = a e^T + X_c P_perp with a = X_c e ~ N(0, I_L/D)
independent of X_c P_perp (Gaussian rows, orthogonal projections). Then y = ||w|| a + sigma xi and

    h = (D/L) [ e (a.y) + P_perp X_c^T y ],    P_perp X_c^T y | (a, xi) ~ N(0, (||y||^2/D) P_perp),

so h = (D/L) [ e (a.y) + (||y||/sqrt(D)) P_perp g ] with g ~ N(0, I_D). Both a.y and ||y||^2 are
functions of the 2 x 2 Gram matrix of (sqrt(D) a, xi), which is Wishart_2(L, I_2); it is sampled
exactly by the Bartlett decomposition G = T T^T, T = [[c1, 0], [n, c2]], c1^2 ~ chi2(L),
c2^2 ~ chi2(L - 1), n ~ N(0, 1). Cost O(D) per prompt, whatever L. tests/test_sampling.py checks
this law against explicit contexts.

Reproducibility: everything drawn for seed s comes from ``np.random.SeedSequence(s).spawn(3)``,
the three streams feeding (subspace A, task pool, prompts). The subspace and the pool are the same
whether the prompts are drawn reduced (:func:`sample_pretraining`) or with full contexts
(:func:`sample_contexts`).

Public API
----------
- :class:`Sizes`, :func:`sizes` -- integer sizes from (dim, alpha, tau, kappa, rho).
- :func:`haar_subspace(dim, rank, rng)` -- D x r Haar-random orthonormal columns.
- :func:`task_pool(subspace, n_tasks, rng)` -- M0 x D rows w_i = sqrt(D/r) A v_i.
- :func:`sample_h(tasks, context_length, sigma, rng)` -- exact h | w, rows of ``tasks``.
- :func:`sample_h_and_label_power(tasks, context_length, sigma, rng)` -- (h, (1/L) sum_l y_l^2), same law.
- :func:`pretraining_pool(sizes, seed)` -- the (subspace, pool) of a seed, without prompts.
- :func:`sample_h_explicit(tasks, context_length, sigma, rng)` -- same law through explicit contexts.
- :func:`sample_pretraining(sizes, sigma, seed)` -> :class:`PretrainingData` (reduced: x, h, y).
- :func:`sample_contexts(sizes, sigma, seed)` -> :class:`Contexts` (X of shape (M, L+1, D),
  y of shape (M, L+1); the last token is the query) with ``.reduced()`` giving the
  :class:`PretrainingData` of the same prompts (h built from the contexts).
- :func:`sample_test_prompts(tasks, n_prompts, context_length, sigma, rng)` -- test (x, h, y) for
  explicit tasks (used only by checks: test errors are computed exactly, see theory.finite_size).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lowrank_icl.numerics.utils import check_int, check_real

_STREAMS = ("subspace", "pool", "prompts")
_CHUNK = 1 << 14  # prompts per chunk when drawing h (bounds temporaries)


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


@dataclass(frozen=True)
class Sizes:
    """Integer sizes of one simulation: D, L = alpha D, M = tau D^2, M0 = kappa D, r = rho D.

    ``n_tasks`` is None for kappa = inf (a fresh task for every prompt).
    """

    dim: int
    context_length: int
    n_prompts: int
    n_tasks: int | None
    rank: int

    @classmethod
    def from_ratios(cls, dim, alpha, tau, kappa, rho=1.0) -> "Sizes":
        dim = check_int("dim", dim, lower=1)
        alpha = float(check_real("alpha", alpha, lower=0.0))
        tau = float(check_real("tau", tau, lower=0.0))
        fresh = _is_infinite_kappa(kappa)
        kappa = float("inf") if fresh else float(check_real("kappa", kappa, lower=0.0))
        rho = float(check_real("rho", rho, lower=0.0, upper=1.0))
        return cls(dim=dim,
                   context_length=max(1, _round_half_up(alpha * dim)),
                   n_prompts=max(1, _round_half_up(tau * dim * dim)),
                   n_tasks=None if fresh else max(1, _round_half_up(kappa * dim)),
                   rank=min(dim, max(1, _round_half_up(rho * dim))))

    @property
    def fresh_tasks(self) -> bool:
        """True for kappa = inf: every prompt has its own task."""
        return self.n_tasks is None

    # ratio views (the exact ratios of the integer sizes)
    @property
    def alpha(self) -> float:
        return self.context_length / self.dim

    @property
    def tau(self) -> float:
        return self.n_prompts / self.dim**2

    @property
    def kappa(self) -> float:
        return float("inf") if self.n_tasks is None else self.n_tasks / self.dim

    @property
    def rho(self) -> float:
        return self.rank / self.dim


def _is_infinite_kappa(kappa) -> bool:
    try:
        return bool(np.ndim(kappa) == 0 and np.isposinf(float(kappa)))
    except (TypeError, ValueError):
        return False


def sizes(dim, alpha, tau, kappa, rho=1.0) -> Sizes:
    """Shorthand for :meth:`Sizes.from_ratios`."""
    return Sizes.from_ratios(dim, alpha, tau, kappa, rho)


def _streams(seed, prompt_draw: int = 0) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    if prompt_draw:
        children[2] = children[2].spawn(int(prompt_draw))[-1]
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def haar_subspace(dim: int, rank: int, rng: np.random.Generator) -> np.ndarray:
    """D x r matrix with orthonormal columns, Haar distributed: QR of a Gaussian, with the signs of
    R's diagonal moved into Q (without the fix QR's sign convention biases the distribution)."""
    dim = check_int("dim", dim, lower=1)
    rank = check_int("rank", rank, lower=1, upper=dim)
    q, r = np.linalg.qr(rng.standard_normal((dim, rank)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def task_pool(subspace: np.ndarray, n_tasks: int, rng: np.random.Generator) -> np.ndarray:
    """M0 x D array of pool tasks w_i = sqrt(D/r) A v_i, v_i ~ N(0, I_r) (so E w w^T = (D/r) A A^T)."""
    dim, rank = subspace.shape
    n_tasks = check_int("n_tasks", n_tasks, lower=1)
    v = rng.standard_normal((n_tasks, rank))
    return np.sqrt(dim / rank) * (v @ subspace.T)


def sample_h(tasks: np.ndarray, context_length: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    r"""h = (D/L) sum_l y_l x_l for one fresh context per row w of ``tasks`` (n x D), exactly, in O(D).

    h = (D/L) [ e (a.y) + (||y||/sqrt(D)) P_perp g ], e = w/||w||, with (a.a, a.xi, xi.xi) from a
    Bartlett-sampled Wishart_2(L, diag(1/D, 1)) (module docstring). ``tasks`` rows must be nonzero.
    """
    return sample_h_and_label_power(tasks, context_length, sigma, rng)[0]


def sample_h_and_label_power(tasks: np.ndarray, context_length: int, sigma: float,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    r"""(h, s) of the same contexts: h as in :func:`sample_h` (same random stream) and the label
    power s = (1/L) sum_l y_l^2 = ||y||^2 / L of the context labels (the full-rank model's extra feature)."""
    tasks = np.atleast_2d(np.asarray(tasks, dtype=float))
    n, dim = tasks.shape
    L = check_int("context_length", context_length, lower=1)
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    out = np.empty_like(tasks)
    power = np.empty(n)
    for start in range(0, n, _CHUNK):
        w = tasks[start:start + _CHUNK]
        k = w.shape[0]
        norm = np.linalg.norm(w, axis=1)
        e = w / norm[:, None]
        # Bartlett: Gram of (sqrt(D) a, xi) = T T^T, T lower triangular
        c1 = np.sqrt(rng.chisquare(L, size=k))
        nn = rng.standard_normal(k)
        c2 = np.sqrt(rng.chisquare(L - 1, size=k)) if L > 1 else np.zeros(k)
        aa = c1 * c1 / dim                    # a.a
        axi = c1 * nn / np.sqrt(dim)          # a.xi
        xixi = nn * nn + c2 * c2              # xi.xi
        ay = norm * aa + sigma * axi
        yy = np.maximum(norm**2 * aa + 2 * sigma * norm * axi + sigma**2 * xixi, 0.0)
        g = rng.standard_normal((k, dim))
        g -= e * np.einsum("ij,ij->i", e, g)[:, None]        # P_perp g
        out[start:start + k] = (dim / L) * (e * ay[:, None] + (np.sqrt(yy / dim))[:, None] * g)
        power[start:start + k] = yy / L
    return out, power


def sample_h_explicit(tasks: np.ndarray, context_length: int, sigma: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Reference sampler of h through explicit L x D contexts (O(L D) per row): for checks only."""
    tasks = np.atleast_2d(np.asarray(tasks, dtype=float))
    n, dim = tasks.shape
    L = check_int("context_length", context_length, lower=1)
    x = rng.standard_normal((n, L, dim)) / np.sqrt(dim)
    y = np.einsum("nld,nd->nl", x, tasks) + sigma * rng.standard_normal((n, L))
    return (dim / L) * np.einsum("nld,nl->nd", x, y)


@dataclass(frozen=True)
class PretrainingData:
    """Reduced pretraining data: for prompt mu, query x[mu] (D), feature h[mu] (D), label y[mu].

    ``task_index[mu]`` is the pool task of prompt mu; ``pool`` (M0 x D) the tasks, ``subspace`` A
    (``pool`` and ``task_index`` are None for kappa = inf: every prompt had a fresh task).
    The ridge fits y[mu] ~ x[mu]^T Gamma h[mu].
    """

    sizes: Sizes
    sigma: float
    subspace: np.ndarray
    pool: np.ndarray
    task_index: np.ndarray
    x: np.ndarray
    h: np.ndarray
    y: np.ndarray
    label_power: np.ndarray | None = None     # s = (1/L) sum_l y_l^2 per prompt (label_power=True)


@dataclass(frozen=True)
class Contexts:
    """Full pretraining prompts: X (M, L+1, D) tokens, y (M, L+1) labels; index L is the query."""

    sizes: Sizes
    sigma: float
    subspace: np.ndarray
    pool: np.ndarray
    task_index: np.ndarray
    X: np.ndarray
    y: np.ndarray

    def reduced(self) -> PretrainingData:
        """The reduced data of the same prompts: h = (D/L) sum_{l<L} y_l x_l, query x_L, label y_L."""
        L, dim = self.sizes.context_length, self.sizes.dim
        h = (dim / L) * np.einsum("nld,nl->nd", self.X[:, :L], self.y[:, :L])
        return PretrainingData(self.sizes, self.sigma, self.subspace, self.pool, self.task_index,
                               x=self.X[:, L].copy(), h=h, y=self.y[:, L].copy())


def _subspace_and_pool(s: Sizes, streams):
    A = haar_subspace(s.dim, s.rank, streams["subspace"])
    return A, (None if s.fresh_tasks else task_pool(A, s.n_tasks, streams["pool"]))


def _prompt_task_index(s: Sizes, rng, balanced: bool = False) -> np.ndarray | None:
    """Pool task of each prompt: uniform with replacement, or balanced; None for kappa = inf."""
    if s.fresh_tasks:
        return None
    if balanced:
        return rng.permutation(np.arange(s.n_prompts) % s.n_tasks)
    return rng.integers(s.n_tasks, size=s.n_prompts)


def _prompt_tasks(A, pool, idx, start: int, stop: int, streams) -> np.ndarray:
    """Tasks of prompts start..stop-1: pool rows, or fresh draws (kappa = inf) from the pool stream."""
    if pool is not None:
        return pool[idx[start:stop]]
    return task_pool(A, stop - start, streams["pool"])


def pretraining_pool(sizes: Sizes, seed) -> tuple[np.ndarray, np.ndarray]:
    """(subspace A, pool W) of ``seed``: the same as in :func:`sample_pretraining` for that seed,
    without drawing any prompt (for estimators that use the pool directly, e.g. the Bayes baselines)."""
    return _subspace_and_pool(sizes, _streams(seed))


def sample_pretraining(sizes: Sizes, sigma: float, seed, prompt_draw: int = 0,
                       label_power: bool = False, balanced: bool = False) -> PretrainingData:
    """Draw subspace, pool and M reduced prompts (x, h, y) for ``seed`` (exact law, no contexts).

    ``label_power=True`` also returns s = (1/L) sum_l y_l^2 of each context (the same prompts: the
    random stream is consumed identically). ``balanced=True`` assigns the pool tasks to prompts as evenly
    as possible (each task floor(M/M0) or ceil(M/M0) times, in random order) instead of uniformly with
    replacement, as the full-rank paper's code does (it repeats every task exactly M/M0 times).

    ``prompt_draw = k > 0`` keeps the subspace and pool of ``seed`` and draws the k-th independent
    set of prompts (used to separate E[Gamma | pool] from its fluctuations).
    Memory: two M x D float64 arrays (x, h); D = 256, tau = 2 is 2 x 268 MB.
    """
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    streams = _streams(seed, prompt_draw)
    A, pool = _subspace_and_pool(sizes, streams)
    rng = streams["prompts"]
    M, dim = sizes.n_prompts, sizes.dim
    idx = _prompt_task_index(sizes, rng, balanced)
    x = np.empty((M, dim))
    h = np.empty((M, dim))
    y = np.empty(M)
    power = np.empty(M) if label_power else None
    # fixed-size chunks: reproducible, and no M x D temporary besides x and h themselves
    for s in range(0, M, _CHUNK):
        w = _prompt_tasks(A, pool, idx, s, min(M, s + _CHUNK), streams)
        k = w.shape[0]
        x[s:s + k] = rng.standard_normal((k, dim)) / np.sqrt(dim)
        y[s:s + k] = np.einsum("ij,ij->i", x[s:s + k], w) + sigma * rng.standard_normal(k)
        h[s:s + k], pw = sample_h_and_label_power(w, sizes.context_length, sigma, rng)
        if label_power:
            power[s:s + k] = pw
    return PretrainingData(sizes, sigma, A, pool, idx, x=x, h=h, y=y, label_power=power)


def sample_contexts(sizes: Sizes, sigma: float, seed) -> Contexts:
    """Draw subspace, pool (the same as :func:`sample_pretraining` for this seed) and M full prompts.

    X has shape (M, L+1, D) (tokens ~ N(0, I/D)), y shape (M, L+1), y = <w_task, x> + sigma xi.
    Memory M (L+1) D floats: meant for moderate D (the full-attention check).
    """
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    streams = _streams(seed)
    A, pool = _subspace_and_pool(sizes, streams)
    rng = streams["prompts"]
    M, L, dim = sizes.n_prompts, sizes.context_length, sizes.dim
    idx = _prompt_task_index(sizes, rng)
    X = rng.standard_normal((M, L + 1, dim)) / np.sqrt(dim)
    y = (np.einsum("nld,nd->nl", X, _prompt_tasks(A, pool, idx, 0, M, streams))
         + sigma * rng.standard_normal((M, L + 1)))
    return Contexts(sizes, sigma, A, pool, idx, X=X, y=y)


def sample_test_prompts(tasks: np.ndarray, n_prompts: int, context_length: int, sigma: float,
                        rng: np.random.Generator):
    """n test prompts with tasks drawn uniformly from the rows of ``tasks``: returns (x, h, y)."""
    tasks = np.atleast_2d(np.asarray(tasks, dtype=float))
    n = check_int("n_prompts", n_prompts, lower=1)
    idx = rng.integers(tasks.shape[0], size=n)
    w = tasks[idx]
    x = rng.standard_normal(w.shape) / np.sqrt(w.shape[1])
    y = np.einsum("ij,ij->i", x, w) + sigma * rng.standard_normal(n)
    return x, sample_h(w, context_length, sigma, rng), y
