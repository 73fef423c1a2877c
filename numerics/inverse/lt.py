r"""The K-layer linear transformer (LT) of inverse ICL, in preconditioned-gradient-descent form, and its training.

    w_0 = b,   w_k = w_{k-1} + Gamma_k X^T (Y - X w_{k-1}) / N,   k = 1..K,

with parameters theta = [b, Gamma_1..Gamma_K] shared by all tasks (von Oswald et al. 2023; Ahn et
al. 2023). With S = X^T X / N and z = X^T Y / N a step is w_k = w_{k-1} + Gamma_k (z - S w_{k-1}):
a context enters only through (S, z), and S v is computed as X^T (X v) / N (2 N d multiply-adds,
the same as a dense d x d S when N = d / 2, at half the memory).

Training losses (n contexts), :data:`LT_LOSSES`:

* ``'supervised'``   (1/n) sum_j ||w_K^j - w^j||^2 (needs the true task vectors);
* ``'unsupervised'`` (1/n) sum_j ||X^j w_K^j - Y^j||^2, the data misfit;
* ``'heldout'``      (1/n) sum_j ||X_val^j w_K^j - Y_val^j||^2, w_K from the first rows, scored on the rest.

Two evaluations of the same loss and gradient:

* :func:`lt_loss_and_grad_reference` -- the reference kernel: whole-array passes over X, 4K+1 passes
  through main memory per evaluation (kept as the benchmark baseline and the test oracle);
* :class:`LTObjective` -- the fast kernel: contexts are processed in cache-sized blocks that go
  through the whole forward and backward recursion while resident (X read from memory once per
  evaluation), z = X^T Y / N precomputed, an optional float32 working precision (sums over
  blocks in float64), the gradient a_k^T g_k accumulated block by block, and the blocks split
  over threads with a result that does not depend on the number of threads.

Backpropagation (both kernels): with a_k = dL/dw_k,
    dL/dGamma_k = sum_j a_k^j (g_k^j)^T,  g_k = z - S w_{k-1},
    a_{k-1} = a_k - S Gamma_k^T a_k,
    dL/db = sum_j a_0^j.

:class:`LT` trains theta by L-BFGS until a stated convergence criterion holds (:class:`LT`
docstring), from a warm start at the closed-form optimal one-layer LT under moments estimated
from the training contexts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lowrank_icl.numerics._blas import single_threaded_blas
from lowrank_icl.numerics._checks import check_int, check_real
from lowrank_icl.numerics.inverse.model import check_batch as _check_batch

LT_LOSSES = ("unsupervised", "heldout", "supervised")


def lt_forward(b, Gammas, X, Y) -> tuple[np.ndarray, np.ndarray]:
    r"""Run w_0 = b, w_k = w_{k-1} + Gamma_k X^T (Y - X w_{k-1}) / N, k = 1..K, batched.

    Parameters
    ----------
    b : ndarray
        Start w_0, shape (d,).
    Gammas : ndarray
        Preconditioners Gamma_1..Gamma_K, shape (K, d, d).
    X, Y : ndarray
        Contexts, shapes (n, N, d) and (n, N).

    Returns
    -------
    w : ndarray
        w_0..w_K, shape (K+1, n, d); w[-1] is the LT's estimate.
    g : ndarray
        The normalized gradients X^T (Y - X w_{k-1}) / N, shape (K, n, d) (kept for backpropagation).
    """
    n, N, d = X.shape
    K = Gammas.shape[0]
    w = np.empty((K + 1, n, d))
    g = np.empty((K, n, d))
    w[0] = b
    for k in range(K):
        res = Y - np.einsum("nij,nj->ni", X, w[k])
        g[k] = np.einsum("nij,ni->nj", X, res) / N
        w[k + 1] = w[k] + g[k] @ Gammas[k].T
    return w, g


def lt_loss_and_grad_reference(theta, d: int, K: int, loss: str, X, Y, W=None, X_val=None, Y_val=None):
    r"""Loss and gradient with respect to theta = [b, Gamma_1..Gamma_K]: the reference (whole-array) kernel.

    Same value as :class:`LTObjective` (to rounding); kept as the benchmark baseline and test oracle.
    """
    n, N, _ = X.shape
    b = theta[:d]
    Gammas = theta[d:].reshape(K, d, d)
    w, g = lt_forward(b, Gammas, X, Y)
    wK = w[K]
    if loss == "supervised":
        diff = wK - W
        value = float(np.sum(diff ** 2)) / n
        a = 2.0 * diff / n
    elif loss == "unsupervised":
        res = np.einsum("nij,nj->ni", X, wK) - Y
        value = float(np.sum(res ** 2)) / n
        a = 2.0 * np.einsum("nij,ni->nj", X, res) / n
    elif loss == "heldout":
        res = np.einsum("nij,nj->ni", X_val, wK) - Y_val
        value = float(np.sum(res ** 2)) / n
        a = 2.0 * np.einsum("nij,ni->nj", X_val, res) / n
    else:
        raise ValueError(f"loss must be one of {LT_LOSSES} (got {loss!r})")
    grad = np.empty_like(theta)
    gG = grad[d:].reshape(K, d, d)
    for k in range(K - 1, -1, -1):
        gG[k] = a.T @ g[k]
        h = a @ Gammas[k]                                            # rows: (Gamma_k^T a_k)^T
        a = a - np.einsum("nij,ni->nj", X, np.einsum("nij,nj->ni", X, h)) / N
    grad[:d] = a.sum(axis=0)
    return value, grad


class LTObjective:
    r"""Fast loss-and-gradient of the K-layer LT on fixed training contexts: ``value, grad = obj(theta)``.

    Parameters
    ----------
    X, Y        training contexts (n, N, d), (n, N): the rows the LT reads.
    K, loss     depth and one of :data:`LT_LOSSES`.
    W           (n, d) true task vectors (``loss='supervised'``).
    X_val, Y_val  held-out rows (n, N_val, d), (n, N_val) (``loss='heldout'``).
    dtype       working precision: float64 (equal to the reference kernel to rounding) or float32
                (X, z, Gamma and the recursion w_k, a_k held in float32: half the memory traffic and
                twice the vector width, relative error ~1e-6; the loss and every sum over blocks
                accumulate in float64). Training uses float32 to approach the minimum and float64
                to finish (:class:`LT`).
    block       contexts per cache block (default: about 2.5 MB of X per block, 131 contexts at
                N = 50, d = 100 in float32, 65 in float64).
    workers     threads over the blocks (numpy releases the GIL in its kernels).

    Blocks are grouped into at most :data:`CHUNKS` fixed chunks whose partial sums are added in
    chunk order, so the value and gradient are bit-identical for any ``workers``.

    Cost of one evaluation: each block goes through the whole forward and backward recursion while
    it is in cache, so X is read from memory once; per context and layer, S v = X^T (X v) / N twice
    (forward and backward), and per block three (block x d) x (d x d) products with Gamma_k
    (forward step, backward step, gradient a_k^T g_k accumulated per chunk).
    """

    CHUNKS = 8

    def __init__(self, X, Y, *, K: int, loss: str, W=None, X_val=None, Y_val=None, dtype=np.float64,
                 block: int | None = None, workers: int = 1):
        X, Y = _check_batch(X, Y)
        self.K = check_int("K", K, lower=1)
        if loss not in LT_LOSSES:
            raise ValueError(f"loss must be one of {LT_LOSSES} (got {loss!r})")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32 (got {dtype})")
        self.loss = loss
        self.n, self.N, self.d = X.shape
        self.workers = check_int("workers", workers, lower=1, upper=64)
        row_bytes = self.N * self.d * dtype.itemsize
        self.block = check_int("block", block if block is not None else max(4, (5 << 19) // row_bytes), lower=1)
        self.dtype = dtype
        with single_threaded_blas():
            z = np.einsum("nij,ni->nj", X, Y) / self.N          # X^T Y / N, float64 from the input
        self.z = z.astype(dtype, copy=False)
        self.X = np.ascontiguousarray(X, dtype=dtype)
        self.Y = self.W = self.X_val = self.Y_val = None
        if loss == "supervised":
            if W is None:
                raise ValueError("loss='supervised' needs W (the true task vectors)")
            W = np.asarray(W, dtype=float)
            if W.shape != (self.n, self.d):
                raise ValueError(f"W must have shape ({self.n}, {self.d}) (got {W.shape})")
            self.W = W.astype(dtype, copy=False)
        elif loss == "unsupervised":
            self.Y = Y.astype(dtype, copy=False)
        else:
            if X_val is None or Y_val is None:
                raise ValueError("loss='heldout' needs X_val and Y_val (the held-out rows)")
            X_val, Y_val = _check_batch(X_val, Y_val, d=self.d)
            if X_val.shape[0] != self.n:
                raise ValueError("X_val must hold the same contexts as X")
            self.X_val = np.ascontiguousarray(X_val, dtype=dtype)
            self.Y_val = Y_val.astype(dtype, copy=False)
        starts = np.arange(0, self.n, self.block)
        self._chunks = [c for c in np.array_split(starts, min(self.CHUNKS, starts.size)) if c.size]
        self.evaluations = 0

    @property
    def size(self) -> int:
        """Number of parameters d + K d^2."""
        return self.d + self.K * self.d * self.d

    def flops(self) -> float:
        """Dominant multiply-adds x 2 of one evaluation: 4K(+2) passes of X and 3K products with d x d matrices."""
        passes = 4 * self.K + (2 if self.loss != "supervised" else 0)
        return passes * 2.0 * self.n * self.N * self.d + 3 * self.K * 2.0 * self.n * self.d ** 2

    def __call__(self, theta) -> tuple[float, np.ndarray]:
        theta = np.asarray(theta, dtype=float)
        d, K = self.d, self.K
        if theta.shape != (self.size,):
            raise ValueError(f"theta must have shape ({self.size},) (got {theta.shape})")
        self.evaluations += 1
        b = theta[:d].astype(self.dtype)
        Gammas = theta[d:].reshape(K, d, d).astype(self.dtype)
        with single_threaded_blas():
            if self.workers == 1 or len(self._chunks) == 1:
                parts = [self._chunk(c, b, Gammas) for c in self._chunks]
            else:
                from concurrent.futures import ThreadPoolExecutor
                with ThreadPoolExecutor(min(self.workers, len(self._chunks))) as pool:
                    parts = list(pool.map(lambda c: self._chunk(c, b, Gammas), self._chunks))
        value = 0.0
        grad = np.zeros(self.size)
        for v, g in parts:          # fixed chunk order: the same sum for any number of workers
            value += v
            grad += g
        return value / self.n, grad

    def _chunk(self, starts, b, Gammas):
        """Forward and backward over the blocks starting at ``starts``; returns (n x loss part, gradient part)."""
        K, N, n, d = self.K, self.N, self.n, self.d
        dt = self.dtype
        value = 0.0
        grad = np.zeros(self.size)
        gG = grad[d:].reshape(K, d, d)
        gs = [None] * K
        two_over_n = dt.type(2.0 / n)
        for s in starts:
            e = min(n, s + self.block)
            x = self.X[s:e]
            w = np.broadcast_to(b, (e - s, d))
            for k in range(K):
                g = self.z[s:e] - _apply_gram(x, w) / N
                gs[k] = g
                w = w + g @ Gammas[k].T
            if self.loss == "supervised":
                diff = w - self.W[s:e]
                value += float(np.sum(diff * diff, dtype=np.float64))
                a = two_over_n * diff
            else:
                xr, yr = (x, self.Y[s:e]) if self.loss == "unsupervised" else (self.X_val[s:e], self.Y_val[s:e])
                res = _apply(xr, w) - yr
                value += float(np.sum(res * res, dtype=np.float64))
                a = two_over_n * _apply_transpose(xr, res)
            for k in range(K - 1, -1, -1):
                gG[k] += a.T @ gs[k]
                h = a @ Gammas[k]
                a = a - _apply_gram(x, h) / N
            grad[:d] += a.sum(axis=0, dtype=np.float64)
        return value, grad


def _apply_gram(x, v):
    """X_j^T (X_j v_j) for a block x (c, N, d), v (c, d): two batched matrix-vector products (x's precision)."""
    return np.matmul(np.matmul(x, v[:, :, None]).transpose(0, 2, 1), x)[:, 0, :]


def _apply(x, v):
    """X_j v_j (c, N) in x's precision."""
    return np.matmul(x, v[:, :, None])[:, :, 0]


def _apply_transpose(x, r):
    """X_j^T r_j (c, d) in x's precision."""
    return np.matmul(r[:, None, :], x)[:, 0, :]


def lt_loss_and_grad(theta, d: int, K: int, loss: str, X, Y, W=None, X_val=None, Y_val=None):
    r"""Loss and its hand-derived gradient with respect to theta = [b, Gamma_1..Gamma_K] (fast kernel, float64).

    One-shot convenience around :class:`LTObjective` (which a training loop builds once).
    Losses and backpropagation: module docstring.

    Parameters
    ----------
    theta : ndarray
        [b, vec Gamma_1, ..., vec Gamma_K], length d + K d^2.
    d, K : int
        Dimension and depth.
    loss : {'unsupervised', 'heldout', 'supervised'}
        The training loss (:data:`LT_LOSSES`).
    X, Y : ndarray
        Training contexts (n, N, d), (n, N).
    W : ndarray, optional
        True tasks (n, d), for 'supervised': loss = mean_j ||w_K^j - w^j||^2 / d.
    X_val, Y_val : ndarray, optional
        Held-out rows, for 'heldout': loss = mean of (y - <x, w_K>)^2 over them.

    Returns
    -------
    value : float
        The loss at theta ('unsupervised': mean of (y - <x, w_K>)^2 over the fitted rows).
    grad : ndarray
        Its gradient with respect to theta, same shape as theta.
    """
    obj = LTObjective(X, Y, K=K, loss=loss, W=W, X_val=X_val, Y_val=Y_val)
    if obj.d != d:
        raise ValueError(f"d={d} does not match X (d={obj.d})")
    return obj(theta)


@dataclass(frozen=True, repr=False)
class LTTrainResult:
    """Training record of :class:`LT`: final loss, convergence and cost.

    ``objective`` names the training loss (one of ``LT_LOSSES``) and ``loss`` is its final value.
    ``converged`` is True when the stated criterion held (:class:`LT`); ``residual`` is the
    relative loss decrease (f_{t-window} - f_t) / f_t over the last ``window`` iterations at the end;
    ``grad_norm`` the largest absolute gradient entry; ``message`` says why the iteration stopped and
    ``reason`` is "" when converged, else that message.

    Attributes
    ----------
    objective : str
        The training loss (:data:`LT_LOSSES`).
    loss : float
        Final value of the training loss.
    converged : bool
        The stopping criterion of :class:`LT` held.
    residual : float
        Relative loss decrease over the last window of iterations.
    grad_norm : float
        Largest absolute gradient entry at the end.
    iterations, evaluations : int
        L-BFGS iterations and loss-and-gradient evaluations.
    seconds : float
        Wall-clock training time.
    message : str
        Why training stopped.
    n_tasks : int
        Training contexts.
    flops_per_evaluation : float
        Dominant multiply-adds x 2 of one loss-and-gradient evaluation.
    init : str
        The start used ('lt1' or 'gd').
    initial_loss : float
        Training loss at the start.
    parameters : dict
        The settings of the fit.
    """

    objective: str
    loss: float             # final training loss
    converged: bool
    residual: float         # relative loss decrease over the last window of iterations
    grad_norm: float        # max |gradient| at the end
    iterations: int         # L-BFGS iterations
    evaluations: int        # loss+gradient evaluations
    seconds: float          # wall-clock training time
    message: str
    n_tasks: int
    flops_per_evaluation: float   # dominant multiply-adds x 2 of one loss+gradient evaluation
    init: str = "lt1"
    initial_loss: float = float("nan")   # training loss at the start
    parameters: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "" if self.converged else (self.message or "not converged")

    def to_dict(self) -> dict:
        """JSON document: ``parameters`` (the fit's settings), ``version``, the losses, the convergence
        words and the cost."""
        from lowrank_icl.numerics._json import json_document
        return json_document(self.parameters, {
            "objective": self.objective, "loss": self.loss, "initial_loss": self.initial_loss,
            "converged": self.converged, "residual": self.residual, "reason": self.reason, "message": self.message,
            "iterations": self.iterations, "evaluations": self.evaluations, "grad_norm": self.grad_norm,
            "seconds": self.seconds, "n_tasks": self.n_tasks, "flops_per_evaluation": self.flops_per_evaluation,
            "init": self.init})

    def __repr__(self) -> str:
        return (f"LTTrainResult({self.objective}: loss {self.initial_loss:.6g} -> {self.loss:.6g}, "
                f"converged={self.converged}, residual={self.residual:.2g}, iterations={self.iterations})")


class LT:
    r"""K-layer linear transformer in preconditioned-GD form with parameters b, Gamma_1..Gamma_K.

    w_0 = b, w_k = w_{k-1} + Gamma_k X^T (Y - X w_{k-1}) / N, parameters shared by all tasks,
    trained by L-BFGS (scipy) on one of :data:`LT_LOSSES`. 'heldout' fits on the first
    N - round(holdout N) rows of each training context and scores on the rest.

    Convergence criterion (stated, not an iteration cap): training stops, with ``converged=True``,
    when the loss decreased by less than ``rtol`` (relative) over the last ``window`` L-BFGS
    iterations, (f_{t-window} - f_t) / f_t < rtol, when an accepted iteration lowers the loss by exactly
    zero (stationary at float64 resolution), or when L-BFGS-B stops on its own gradient test
    (largest absolute projected-gradient entry <= ``gtol``). ``maxiter`` is only a safety stop:
    reaching it gives ``converged=False``; so does a failed line search.

    Initialization (``init``):

    * ``'auto'`` (default): 'lt1' for the supervised loss, 'gd' for the two data-misfit losses. The
      misfit losses are not convex in theta and, started at 'lt1' (which shrinks towards the prior,
      while the misfit rewards fitting the rows), L-BFGS can stop in a minimum of higher training
      loss than from 'gd' (docs/inverse.md gives the measurement); the supervised loss reaches the
      same point from both.
    * ``'lt1'``: b = w0_hat, Gamma_1 = the closed-form optimal one-layer LT
      Sigma_w Sigma_x F^{-1} (:func:`lowrank_icl.theory.inverse.lt1_optimal`) under moments estimated
      from the training contexts (Sigma_x pooled; w0, Sigma_w from W for 'supervised', else the
      moment estimates of TRE's first stage; sigma^2 from the residual variance), and
      Gamma_2..Gamma_K = 0: the start is the one-layer optimum, so training only improves on it.
    * ``'gd'``: b = 0, Gamma_k = I / (2 L), L the mean largest eigenvalue of X^T X / N (plain
      preconditioned GD steps; the baseline trainer's start).

    Preconditioning (``precondition``): L-BFGS runs in Phi_k = Gamma_k P_k^{-1}, P_k the frozen input
    whitening of :func:`input_whitening` (same objective, better conditioned). ``'auto'``: on for the
    supervised and held-out losses, off for the unsupervised one, where whitened training reached a
    higher minimum (docs/inverse.md: the measurement and its command).

    ``kernel='fast'`` trains with :class:`LTObjective` (``dtype``, ``workers``), ``'reference'`` with
    :func:`lt_loss_and_grad_reference`. With ``dtype=float32`` L-BFGS first runs on the float32
    kernel (until the criterion holds or the line search fails at the float32 resolution of the
    loss, ~1e-7 relative), then continues on the float64 kernel until the criterion holds there:
    ``converged`` always refers to the float64 loss.

    Parameters
    ----------
    K : int
        Depth (layers).
    loss : {'supervised', 'unsupervised', 'heldout'}
        Training loss: mean ||w_K - w||^2 / d over tasks (needs the true W), mean squared residual
        (y - <x, w_K>)^2 on the fitted rows, or on the held-out rows.
    holdout : float
        Fraction of each context's rows held out by 'heldout' (0 <= holdout < 1).
    maxiter : int
        Safety stop of L-BFGS (reaching it gives ``converged=False``).
    rtol, window : float, int
        The stopping rule: (f_{t-window} - f_t) / f_t < rtol.
    gtol : float
        L-BFGS-B's projected-gradient tolerance.
    init : {'auto', 'lt1', 'gd'}
        The starting point (above).
    kernel : {'fast', 'reference'}
        :class:`LTObjective` or :func:`lt_loss_and_grad_reference`.
    dtype : numpy dtype
        Working precision of the fast kernel (float32 is finished in float64).
    workers : int
        Threads of the fast kernel.
    precondition : {'auto', True, False}
        Input whitening of the Gamma_k (above).
    tol : float, optional
        One tolerance for both ``rtol`` and ``gtol``.

    Returns
    -------
    LT
        ``fit(train_X, train_Y, train_W=None)`` returns the fitted estimator (``b``, ``Gammas``,
        ``train_``: an :class:`LTTrainResult`); ``predict(X, Y)`` returns W_hat = w_K, shape (n, d).
    """

    def __init__(self, K: int = 1, loss: str = "supervised", holdout: float = 0.2, maxiter: int = 20_000,
                 rtol: float = 1e-6, window: int = 10, gtol: float = 1e-10, init: str = "auto",
                 kernel: str = "fast", dtype=np.float64, workers: int = 1, precondition: str | bool = "auto",
                 tol: float | None = None):
        self.K = check_int("K", K, lower=1)
        if loss not in LT_LOSSES:
            raise ValueError(f"loss must be one of {LT_LOSSES} (got {loss!r})")
        self.loss = loss
        self.holdout = float(check_real("holdout", holdout, lower=0.0, upper=1.0, upper_inclusive=False))
        self.maxiter = check_int("maxiter", maxiter, lower=1)
        if tol is not None:     # one tolerance for both criteria
            rtol = gtol = tol
        self.rtol = float(check_real("rtol", rtol, lower=0.0, lower_inclusive=True))
        self.window = check_int("window", window, lower=1)
        self.gtol = float(check_real("gtol", gtol, lower=0.0, lower_inclusive=True))
        if init not in ("auto", "lt1", "gd"):
            raise ValueError(f"init must be 'auto', 'lt1' or 'gd' (got {init!r})")
        self.init = init
        if kernel not in ("fast", "reference"):
            raise ValueError(f"kernel must be 'fast' or 'reference' (got {kernel!r})")
        self.kernel = kernel
        self.dtype = dtype
        self.workers = check_int("workers", workers, lower=1, upper=64)
        if precondition not in ("auto", True, False):
            raise ValueError(f"precondition must be 'auto', True or False (got {precondition!r})")
        self.precondition = precondition
        self.b = None
        self.Gammas = None
        self.train_ = None
        self.history_ = None

    # -- data split per loss --------------------------------------------------------------
    def training_inputs(self, X, Y, train_W=None):
        """The arrays the loss is evaluated on: ``(X, Y, kwargs)``.

        Parameters
        ----------
        X, Y : ndarray
            Training contexts, shapes (n, N, d) and (n, N).
        train_W : ndarray, optional
            True task vectors (n, d); required by ``loss='supervised'``.

        Returns
        -------
        tuple
            ``(X_fit, Y_fit, kwargs)``: 'supervised' passes ``W``; 'heldout' fits on the first
            N - round(holdout N) rows and passes the rest as ``X_val``, ``Y_val``; 'unsupervised'
            passes nothing.
        """
        n, N, d = X.shape
        kwargs = {}
        if self.loss == "supervised":
            if train_W is None:
                raise ValueError("loss='supervised' needs train_W (the true task vectors)")
            kwargs["W"] = np.asarray(train_W, dtype=float)
        elif self.loss == "heldout":
            n_val = int(round(self.holdout * N))
            if n_val < 1 or n_val >= N:
                raise ValueError(f"holdout={self.holdout} leaves no fit or no held-out rows at N={N}")
            kwargs["X_val"], kwargs["Y_val"] = X[:, N - n_val:], Y[:, N - n_val:]
            X, Y = X[:, :N - n_val], Y[:, :N - n_val]
        return X, Y, kwargs

    def initial_theta(self, X, Y, W=None, init: str | None = None) -> np.ndarray:
        """The starting parameters 'lt1' or 'gd' for contexts (X, Y) (already split for 'heldout')."""
        n, N, d = X.shape
        K = self.K
        if (init or self.init) == "gd":
            probe = X[: min(n, 20)]
            L = float(np.mean([np.linalg.eigvalsh(x.T @ x / x.shape[0])[-1] for x in probe]))
            return np.concatenate([np.zeros(d), np.tile((np.eye(d) / (2 * L)).ravel(), K)])
        b, Gamma = warm_start_lt1(X, Y, W)
        theta = np.zeros(d + K * d * d)
        theta[:d] = b
        theta[d:d + d * d] = Gamma.ravel()
        return theta

    def fit(self, train_X, train_Y, train_W=None, theta0=None) -> "LT":
        from scipy.optimize import minimize

        X, Y = _check_batch(train_X, train_Y)
        n, _, d = X.shape
        K = self.K
        X, Y, kwargs = self.training_inputs(X, Y, train_W)
        with single_threaded_blas():
            if self.kernel == "fast":
                obj = LTObjective(X, Y, K=K, loss=self.loss, dtype=self.dtype, workers=self.workers, **kwargs)
                fun, flops = obj, obj.flops()
            else:
                def fun(theta):
                    return lt_loss_and_grad_reference(theta, d, K, self.loss, X, Y, **kwargs)
                Nf = X.shape[1]
                flops = (4 * K + 1) * 2.0 * n * Nf * d + 2 * K * 2.0 * n * d * d
            start = time.perf_counter()
            history = []
            evaluations = [0]
            last = {}

            def counted(theta):
                evaluations[0] += 1
                v, g = fun(theta)
                last["g"] = g
                return v, g

            if theta0 is not None:
                init_label, theta0 = "given", np.asarray(theta0, dtype=float)
            elif self.init == "auto":
                init_label = "lt1" if self.loss == "supervised" else "gd"
                theta0 = self.initial_theta(X, Y, kwargs.get("W"), init_label)
            else:
                init_label, theta0 = self.init, self.initial_theta(X, Y, kwargs.get("W"))

            def callback(intermediate_result):
                f = float(intermediate_result.fun)
                history.append(f)
                if len(history) > self.window:
                    old = history[-1 - self.window]
                    rel = (old - f) / max(abs(f), 1e-300)
                    if rel < self.rtol:
                        last["rel"] = rel
                        raise StopIteration
            init_value = float(counted(theta0)[0])
            whiten = self.precondition if self.precondition != "auto" else self.loss != "unsupervised"
            P = input_whitening(theta0, X, Y, K) if whiten else {1: None, -1: None}

            def right_multiply(v, M):        # [b, A_1..A_K] -> [b, A_1 M_1..A_K M_K]
                if M is None:
                    return v
                out = v.copy()
                out[d:] = np.matmul(v[d:].reshape(K, d, d), M).ravel()
                return out

            def objective_phi(phi):         # Gamma_k = Phi_k P_k, dL/dPhi_k = dL/dGamma_k P_k (P_k symmetric)
                v, g = counted(right_multiply(phi, P[1]))
                return v, right_multiply(g, P[1])

            options = dict(maxiter=self.maxiter, maxfun=4 * self.maxiter, ftol=0.0, gtol=self.gtol, maxcor=20)
            history.append(init_value)      # each phase's history starts at its starting value
            res = minimize(objective_phi, right_multiply(theta0, P[-1]), jac=True, method="L-BFGS-B",
                           callback=callback, options=options)
            iterations = int(res.nit)
            if self.kernel == "fast" and np.dtype(self.dtype) == np.float32:
                # float32 values resolve the loss to ~1e-7: finish in float64, where the criterion is checked
                fun = LTObjective(X, Y, K=K, loss=self.loss, dtype=np.float64, workers=self.workers, **kwargs)
                history.clear()
                history.append(float(fun(right_multiply(res.x, P[1]))[0]))
                last.pop("rel", None)
                left = self.maxiter - iterations       # maxiter bounds both phases together
                if left > 0:
                    res = minimize(objective_phi, res.x, jac=True, method="L-BFGS-B", callback=callback,
                                   options={**options, "maxiter": left, "maxfun": 4 * left})
                    iterations += int(res.nit)
            theta_final = right_multiply(res.x, P[1])
        seconds = time.perf_counter() - start
        rel = last.get("rel")
        span = min(self.window, len(history) - 1)
        if rel is None and span >= 1:
            rel = (history[-1 - span] - history[-1]) / max(abs(history[-1]), 1e-300)
        stopped_by_rule = "rel" in last
        gradient_test = bool(res.success) and "PROJ" in str(res.message).upper()
        # L-BFGS-B with ftol = 0 stops on 'REDUCTION OF F' only when an accepted iteration lowered the loss
        # by exactly nothing: the relative-decrease rule at float64 resolution, over one iteration
        stalled = "REDUCTION OF F" in str(res.message).upper()
        converged = stopped_by_rule or gradient_test or stalled
        if stopped_by_rule:
            message = f"relative loss decrease {rel:.2e} < rtol={self.rtol:g} over {self.window} iterations"
        elif stalled:
            message = (f"stationary at float64 resolution: an iteration lowered the loss by 0 (relative "
                       f"decrease {rel:.2e} over the last {span} iterations)")
        else:
            message = str(res.message)
        self.b = theta_final[:d].copy()
        self.Gammas = theta_final[d:].reshape(K, d, d).copy()
        self.history_ = np.array(history)
        g = last.get("g", np.zeros(1))
        self.train_ = LTTrainResult(self.loss, float(res.fun), bool(converged),
                                    float(rel) if rel is not None else float("nan"), float(np.max(np.abs(g))),
                                    iterations, evaluations[0], seconds, message, n, flops,
                                    init_label, init_value,
                                    parameters={"K": K, "loss": self.loss, "rtol": self.rtol, "gtol": self.gtol,
                                                "window": self.window, "maxiter": self.maxiter, "init": self.init,
                                                "holdout": self.holdout, "kernel": self.kernel,
                                                "precondition": self.precondition})
        return self

    def predict(self, X, Y) -> np.ndarray:
        if self.b is None:
            raise ValueError("LT.predict needs fit(...) first")
        X, Y = _check_batch(X, Y, d=self.b.shape[0])
        with single_threaded_blas():
            return lt_forward(self.b, self.Gammas, X, Y)[0][-1]


def input_whitening(theta, X, Y, K, n_probe: int = 2000, floor: float = 1e-3) -> dict:
    r"""Fixed right preconditioners of the Gamma_k: P_k = (C_k)^{-1/2}, C_k = mean_j g_k^j (g_k^j)^T at theta.

    The gradient in Gamma_k is sum_j a_k^j (g_k^j)^T, so the curvature along its input side is
    C_k, the second moment of the layer input g_k = X^T (Y - X w_{k-1}) / N. Its spectrum spans
    orders of magnitude (the task prior has rank r, and later layers see smaller residuals), which
    makes plain L-BFGS creep. Training in Phi_k = Gamma_k C_k^{1/2} whitens that side (the
    Kronecker-factored curvature idea of K-FAC, with the factor frozen at the start, so the objective
    and its minima are unchanged). C_k is estimated on the first ``n_probe`` contexts; eigenvalues
    below ``floor`` x the largest are raised to it. Returns {1: P_k, -1: P_k^{-1}} as (K, d, d) arrays.
    """
    d = X.shape[2]
    m = min(X.shape[0], n_probe)
    _, g = lt_forward(theta[:d], theta[d:].reshape(K, d, d), X[:m], Y[:m])
    P, P_inv = np.empty((K, d, d)), np.empty((K, d, d))
    for k in range(K):
        e, V = np.linalg.eigh(g[k].T @ g[k] / m)
        e = np.maximum(e, floor * max(e[-1], 1e-300))
        P[k] = (V / np.sqrt(e)) @ V.T
        P_inv[k] = (V * np.sqrt(e)) @ V.T
    return {1: P, -1: P_inv}


def warm_start_lt1(X, Y, W=None) -> tuple[np.ndarray, np.ndarray]:
    r"""(b, Gamma) of the closed-form optimal one-layer LT under moments estimated from contexts (X, Y).

    Sigma_x_hat = pooled X^T X / (n N). With W: w0_hat = mean W, Sigma_w_hat = Cov(W). Without:
    the moment estimates w~_j = Sigma_x_hat^{-1} X_j^T Y_j / N, w0_hat = mean w~ and
    Sigma_w_hat = [Cov(w~) - (w0 w0^T + mean(Y^2) Sigma_x^{-1}) / N] / (1 + 1/N) with its negative
    eigenvalues set to 0 (the TRE first stage without rank selection). Noise sigma^2 =
    mean(Y^2) - tr((Sigma_w + w0 w0^T) Sigma_x), floored at 0.

    Parameters
    ----------
    X, Y : ndarray
        Training contexts, shapes (n, N, d) and (n, N).
    W : ndarray, optional
        True task vectors (n, d) (the supervised setting).

    Returns
    -------
    b : ndarray
        w0_hat, shape (d,).
    Gamma : ndarray
        Sigma_w_hat Sigma_x_hat F^{-1}, shape (d, d) (:func:`lt1_optimal` under the estimated moments).
    """
    from lowrank_icl.theory.inverse import lt1_optimal

    n, N, d = X.shape
    with single_threaded_blas():
        flat = X.reshape(-1, d)
        Sigma_x = flat.T @ flat / (n * N)
        m2 = float(np.mean(Y ** 2))
        if W is not None:
            W = np.asarray(W, dtype=float)
            w0 = W.mean(axis=0)
            Sigma_w = np.cov(W.T, bias=True).reshape(d, d)
        else:
            z = np.einsum("nij,ni->nj", X, Y) / N
            w_tilde = np.linalg.solve(Sigma_x, z.T).T
            w0 = w_tilde.mean(axis=0)
            dev = w_tilde - w0
            cov = dev.T @ dev / max(n - 1, 1)
            raw = (cov - (np.outer(w0, w0) + m2 * np.linalg.inv(Sigma_x)) / N) / (1.0 + 1.0 / N)
            e, V = np.linalg.eigh(0.5 * (raw + raw.T))
            Sigma_w = (V * np.maximum(e, 0.0)) @ V.T
        sigma2 = max(m2 - float(np.sum((Sigma_w + np.outer(w0, w0)) * Sigma_x)), 0.0)
        b, Gamma, _ = lt1_optimal(Sigma_x, Sigma_w, w0, float(np.sqrt(sigma2)), N)
    return b, Gamma
