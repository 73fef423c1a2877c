r"""Training the reduced linear attention: the ridge regression of the pretraining objective.

    Gamma_hat = argmin_Gamma  sum_mu (y_mu - x_mu^T Gamma h_mu)^2 + lam M0 ||Gamma||_F^2

with D^2 unknowns and M samples; the feature of prompt mu is H_mu = x_mu h_mu^T. Write X (M x D)
for the queries, Hh (M x D) for the features h, pen = lam M0. The normal equations are

    N(Gamma) := X^T diag(<x_mu, Gamma h_mu>) Hh + pen Gamma = X^T diag(y) Hh =: B.

Methods (``fit_ridge(..., method=...)``):

- ``"primal"`` -- the dense direct baseline the published code uses: build the M x D^2 design
  Phi, then Cholesky of Phi^T Phi + pen I (lam = 0 and M < D^2: min-norm least squares of Phi).
  Time O(M D^4 + D^6), memory O(M D^2 + D^4).
- ``"dual"`` -- for M < D^2: the kernel of the features is a Hadamard product of two Gram
  matrices, K = (X X^T) * (Hh Hh^T); solve (K + pen I) c = y and Gamma = X^T diag(c) Hh. At
  lam = 0 this is the minimum-norm interpolator (pseudo-inverse if K is singular). O(M^2 D + M^3).
- ``"cg"`` -- matrix-free preconditioned conjugate gradient on N (each apply is two M x D x D
  BLAS products, O(M D^2) time, no memory beyond the data). Preconditioner: the Kronecker
  approximation N ~ (X^T X) Gamma (Hh^T Hh)/M + pen Gamma (exact in expectation, since the query is
  independent of h), inverted through the eigendecompositions of the two D x D factors, O(D^3).
  From D >= 96 the applies run in float32 inside float64 iterative refinement (reported as
  ``"cg-mixed"``): about twice the speed, the same final float64 residual.
- ``"dual-cg"`` -- matrix-free CG on (K + pen I) c = y (Jacobi preconditioned), for M < D^2 when K
  is too large to store; at lam = 0 it converges to the minimum-norm interpolator.
- ``"auto"`` -- M < D^2: dual if M <= 8192 else dual-cg; M >= D^2: primal if D <= 24 else cg, and
  cg falls back to primal (D <= 64) if it does not converge; primal only while its M x D^2 design
  fits in 1 GiB (otherwise cg, matrix-free, whatever D).

Every result reports ``residual`` = ||N(Gamma) - B||_F / ||B||_F evaluated by one extra apply, the
same measure for every method, plus ``converged`` and ``iterations``.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
from lowrank_icl.numerics.utils import check_int, check_real, single_threaded_blas
from lowrank_icl.numerics.utils import json_document
from lowrank_icl.numerics.results import ConvergenceReport

METHODS = ("auto", "primal", "dual", "cg", "dual-cg")
_CHUNK = 8192          # rows per block in matrix-free applies (bounds temporaries to ~chunk x D)
_DUAL_MAX = 8192       # largest M for the dense dual (K is M x M: 0.5 GB)
_PRIMAL_AUTO_MAX_DIM = 24
_PRIMAL_FALLBACK_MAX_DIM = 64
_MIXED_MIN_DIM = 96
_DENSE_MAX_BYTES = 1 << 30   # largest primal design (M x D^2 float64) the automatic rule builds


@dataclass(frozen=True, repr=False)
class RidgeFit(ConvergenceReport):
    """A trained Gamma (D x D') with the solver's diagnostics.

    ``residual`` is the relative normal-equation residual ||N(Gamma) - B||_F / ||B||_F at the
    returned Gamma; ``converged`` means an iterative method reached ``tol`` (a direct solve: residual
    below 1e-6) and Gamma is finite; ``reason`` says what failed ("" when converged).
    ``parameters``: the settings of the fit (lam, n_tasks, the method asked for, tol, max_iter).
    """

    gamma: np.ndarray
    method: str
    converged: bool
    residual: float
    iterations: int
    seconds: float
    reason: str = ""
    parameters: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON document: ``parameters``, ``version``, the method, the convergence words, the shape of
        Gamma and ``gamma`` itself (nested lists)."""
        return json_document(self.parameters, {
            "method": self.method, "converged": self.converged, "residual": self.residual, "reason": self.reason,
            "message": self.message, "iterations": self.iterations, "seconds": self.seconds,
            "shape": list(self.gamma.shape), "gamma": self.gamma})

    def __repr__(self) -> str:
        return (f"RidgeFit(gamma {self.gamma.shape[0]}x{self.gamma.shape[1]}, method={self.method!r}, "
                f"converged={self.converged}, residual={self.residual:.2g}, iterations={self.iterations})")


def normal_apply(X: np.ndarray, H: np.ndarray, gamma: np.ndarray, penalty: float) -> np.ndarray:
    """N(Gamma) = X^T diag(<x_mu, Gamma h_mu>) H + penalty Gamma, in row blocks (O(M D^2))."""
    out = penalty * gamma
    for s in range(0, X.shape[0], _CHUNK):
        Xc, Hc = X[s:s + _CHUNK], H[s:s + _CHUNK]
        pred = np.einsum("ij,ij->i", Xc @ gamma, Hc)
        out += Xc.T @ (pred[:, None] * Hc)
    return out


def normal_rhs(X: np.ndarray, H: np.ndarray, y: np.ndarray) -> np.ndarray:
    """B = X^T diag(y) H (row blocks)."""
    out = np.zeros((X.shape[1], H.shape[1]))
    for s in range(0, X.shape[0], _CHUNK):
        out += X[s:s + _CHUNK].T @ (y[s:s + _CHUNK, None] * H[s:s + _CHUNK])
    return out


def _relative_residual(X, H, y, gamma, penalty, rhs=None) -> float:
    B = normal_rhs(X, H, y) if rhs is None else rhs
    nb = np.linalg.norm(B)
    return float(np.linalg.norm(normal_apply(X, H, gamma, penalty) - B) / (nb if nb > 0 else 1.0))


def design_matrix(X: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Phi (M x D^2), row mu = vec(x_mu h_mu^T) (row-major, so Phi @ vec(Gamma) = x^T Gamma h)."""
    return (X[:, :, None] * H[:, None, :]).reshape(X.shape[0], -1)


def _solve_primal(X, H, y, penalty):
    M, dim = X.shape
    Phi = design_matrix(X, H)
    if penalty == 0 and M < dim * H.shape[1]:
        sol = sla.lstsq(Phi, y, lapack_driver="gelsd")[0]        # min-norm interpolator
    else:
        A = Phi.T @ Phi
        A[np.diag_indices_from(A)] += penalty
        b = Phi.T @ y
        try:
            sol = sla.cho_solve(sla.cho_factor(A, overwrite_a=True, check_finite=False), b, check_finite=False)
        except np.linalg.LinAlgError:
            # singular at lam = 0 (e.g. M = D^2 exactly): the minimum-norm least-squares solution
            sol = sla.lstsq(Phi, y, lapack_driver="gelsd")[0]
    return sol.reshape(dim, H.shape[1]), 1


def _dual_kernel(X, H):
    K = X @ X.T
    K *= H @ H.T
    return K


def _solve_dual(X, H, y, penalty):
    K = _dual_kernel(X, H)
    if penalty > 0:
        K[np.diag_indices_from(K)] += penalty
    try:
        c = sla.cho_solve(sla.cho_factor(K, check_finite=False), y, check_finite=False)
    except np.linalg.LinAlgError:
        # singular kernel at lam = 0: pseudo-inverse (minimum-norm solution of the least squares)
        evals, evecs = np.linalg.eigh(K)
        keep = evals > evals.max() * K.shape[0] * np.finfo(float).eps
        c = evecs[:, keep] @ ((evecs[:, keep].T @ y) / evals[keep])
    return X.T @ (c[:, None] * H), 1


def _kron_preconditioner(X, H, penalty):
    """Returns R -> [Sx (.) Sh / M + penalty]^{-1} R with Sx = X^T X, Sh = H^T H (eigendecompositions)."""
    M = X.shape[0]
    ax, U = np.linalg.eigh(X.T @ X)
    ah, V = np.linalg.eigh(H.T @ H)
    denom = np.outer(np.maximum(ax, 0), np.maximum(ah, 0)) / M + penalty
    floor = denom.max() * 1e-14                 # guards lam = 0 with a rank-deficient factor
    inv = 1.0 / np.maximum(denom, floor)

    def apply(R):
        return U @ (((U.T @ R) @ V) * inv) @ V.T
    return apply


def _pcg(apply_op, rhs, precond, tol, max_iter, x0=None):
    """Preconditioned CG for a symmetric positive (semi)definite operator on arrays (Frobenius)."""
    x = np.zeros_like(rhs) if x0 is None else x0.copy()
    r = rhs - apply_op(x) if x0 is not None else rhs.copy()
    target = tol * np.linalg.norm(rhs)
    z = precond(r)
    p = z.copy()
    rz = float(np.vdot(r, z))
    it = 0
    converged = np.linalg.norm(r) <= target
    while not converged and it < max_iter:
        Ap = apply_op(p)
        pAp = float(np.vdot(p, Ap))
        if pAp <= 0:
            break
        step = rz / pAp
        x += step * p
        r -= step * Ap
        it += 1
        if np.linalg.norm(r) <= target:
            converged = True
            break
        z = precond(r)
        rz_new = float(np.vdot(r, z))
        p *= rz_new / rz
        p += z
        rz = rz_new
    return x, it, converged


def _solve_cg(X, H, y, penalty, tol, max_iter):
    rhs = normal_rhs(X, H, y)
    pre = _kron_preconditioner(X, H, penalty)
    gamma, it, ok = _pcg(lambda G: normal_apply(X, H, G, penalty), rhs, pre, tol, max_iter)
    return gamma, it, ok, rhs


def _normal_apply_single(X32, H32, gamma, penalty):
    """N(Gamma) with the two BLAS products in float32 (about twice as fast), accumulated in float64."""
    G = gamma.astype(np.float32)
    out = penalty * gamma
    for s in range(0, X32.shape[0], _CHUNK):
        Xc, Hc = X32[s:s + _CHUNK], H32[s:s + _CHUNK]
        pred = np.einsum("ij,ij->i", Xc @ G, Hc)
        out += (Xc.T @ (pred[:, None] * Hc)).astype(np.float64)
    return out


def _solve_cg_mixed(X, H, y, penalty, tol, max_iter):
    """Iterative refinement: float64 residuals r = B - N(Gamma), corrections from PCG with float32
    applies (relative accuracy ~1e-6, so each outer step gains ~5 digits); if an outer step stops
    gaining, finish with float64 PCG from the current iterate. Final accuracy is that of float64."""
    X32, H32 = X.astype(np.float32), H.astype(np.float32)
    rhs = normal_rhs(X, H, y)
    nb = np.linalg.norm(rhs)
    pre = _kron_preconditioner(X, H, penalty)
    gamma = np.zeros_like(rhs)
    r = rhs.copy()
    it, res_prev = 0, np.inf
    while it < max_iter:
        res = np.linalg.norm(r)
        if res <= tol * nb:
            return gamma, it, True, rhs
        if res > 1e-2 * res_prev:       # float32 corrections no longer pay: finish in float64
            break
        res_prev = res
        inner_tol = max(1e-5, 0.5 * tol * nb / res)
        d, k, _ = _pcg(lambda G: _normal_apply_single(X32, H32, G, penalty), r, pre, inner_tol, max_iter - it)
        gamma += d
        it += k + 1
        r = rhs - normal_apply(X, H, gamma, penalty)
    del X32, H32
    gamma, k, ok = _pcg(lambda G: normal_apply(X, H, G, penalty), rhs, pre, tol, max(1, max_iter - it), x0=gamma)
    return gamma, it + k, ok, rhs


def _kernel_apply(X, H, c, penalty):
    """(K + penalty I) c without K: K c = diag(X (X^T diag(c) H) H^T)."""
    G = X.T @ (c[:, None] * H)
    out = penalty * c
    for s in range(0, X.shape[0], _CHUNK):
        out[s:s + _CHUNK] += np.einsum("ij,ij->i", X[s:s + _CHUNK] @ G, H[s:s + _CHUNK])
    return out


def _solve_dual_cg(X, H, y, penalty, tol, max_iter):
    diag = np.sum(X * X, axis=1) * np.sum(H * H, axis=1) + penalty
    c, it, ok = _pcg(lambda v: _kernel_apply(X, H, v, penalty), y.astype(float), lambda r: r / diag,
                     tol, max_iter)
    return X.T @ (c[:, None] * H), it, ok


def _blas_guard(single: bool):
    return single_threaded_blas() if single else contextlib.nullcontext()


def choose_method(n_prompts: int, dim: int, feature_dim: int | None = None) -> str:
    """The ``auto`` rule (module docstring); ``feature_dim`` = D' (default D) counts D x D' unknowns."""
    if n_prompts < dim * (dim if feature_dim is None else feature_dim):
        return "dual" if n_prompts <= _DUAL_MAX else "dual-cg"
    return "primal" if dim <= _PRIMAL_AUTO_MAX_DIM and _design_fits(n_prompts, dim) else "cg"


def _design_fits(n_prompts: int, dim: int) -> bool:
    return 8 * n_prompts * dim * dim <= _DENSE_MAX_BYTES


def resolve_method(method: str, n_prompts: int, dim: int) -> str:
    """The solver ``fit_ridge`` runs for ``method`` at these sizes (``auto``: :func:`choose_method`;
    cg at D >= 96 runs as ``cg-mixed``)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")
    chosen = choose_method(n_prompts, dim) if method == "auto" else method
    return "cg-mixed" if chosen == "cg" and dim >= _MIXED_MIN_DIM else chosen


def solver_cost(method: str, n_prompts: int, dim: int) -> tuple[int, float]:
    """(peak bytes beyond the data, floating-point operations) of one fit, for a resolved method.

    Leading terms only (the method table of the module docstring); iterative methods are charged
    100 (cg) or 200 (dual-cg) matrix-free applies, a typical count at tol 1e-8 on these problems.
    """
    M, D = int(n_prompts), int(dim)
    small = 8 * (3 * min(M, _CHUNK) * D + 8 * D * D)       # chunk temporaries and a few D x D arrays
    if method == "primal":
        return 8 * (2 * M * D * D + 2 * D**4) + small, 2.0 * M * D**4 + D**6 / 3
    if method == "dual":
        return 8 * 2 * M * M + small, 4.0 * M * M * D + M**3 / 3
    if method == "cg":
        return small, 100 * 4.0 * M * D * D
    if method == "cg-mixed":
        return 4 * 2 * M * D + small, 100 * 4.0 * M * D * D
    if method == "dual-cg":
        return 8 * 6 * M + small, 200 * 4.0 * M * D * D
    raise ValueError(f"unknown resolved method {method!r}")


def fit_ridge(x, h, y, lam, n_tasks, *, method: str = "auto", tol: float = 1e-10,
              max_iter: int = 5000, mixed: bool | None = None, single_threaded: bool = True) -> RidgeFit:
    """Train Gamma_hat on reduced data: queries ``x`` (M x D), features ``h`` (M x D), labels ``y`` (M).

    ``h`` may have D' != D columns (Gamma is then D x D'; e.g. D' = D + 1 for the feature [h, s] of
    the model with the label-power column); the size rules of ``auto`` count D x D' unknowns.

    Penalty lam * n_tasks * ||Gamma||_F^2 (n_tasks = M0). ``lam = 0`` gives the least-squares
    solution, the minimum-norm interpolator when M < D^2. ``tol`` is the relative residual target of
    the iterative methods. ``mixed`` (cg only; default: D >= 96) runs the CG applies in float32
    inside float64 iterative refinement: about twice as fast, same final residual, 50% more memory
    for the data. ``single_threaded`` runs the iterative methods with one BLAS thread: their many
    mid-size products lose 4-10x to spinning OpenBLAS threads on a busy 2-core machine (measured),
    and gain at most 2x from a second thread on an idle one. Returns a :class:`RidgeFit`.
    """
    X = np.ascontiguousarray(x, dtype=float)
    H = np.ascontiguousarray(h, dtype=float)
    y = np.ascontiguousarray(y, dtype=float)
    if X.ndim != 2 or H.ndim != 2 or H.shape[0] != X.shape[0] or y.shape != (X.shape[0],):
        raise ValueError(f"x must be M x D, h M x D' and y length M (got {X.shape}, {H.shape}, {y.shape})")
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    n_tasks = check_int("n_tasks", n_tasks, lower=1)
    tol = float(check_real("tol", tol, lower=0.0, upper=1.0))
    max_iter = check_int("max_iter", max_iter, lower=1)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")
    M, dim = X.shape
    n_unknowns = dim * H.shape[1]
    penalty = lam * n_tasks
    chosen = choose_method(M, dim, H.shape[1]) if method == "auto" else method
    if chosen == "cg" and penalty == 0 and M < n_unknowns:
        raise ValueError("method='cg' needs lam > 0 or M >= D^2; use 'dual' or 'dual-cg' for the "
                         "minimum-norm interpolator")
    if chosen == "dual-cg" and penalty == 0 and M > n_unknowns:
        raise ValueError("method='dual-cg' at lam = 0 needs M <= D^2 (the kernel is singular); use 'cg'")
    start = time.perf_counter()
    rhs = None
    converged = True
    if chosen == "primal":
        gamma, it = _solve_primal(X, H, y, penalty)
    elif chosen == "dual":
        gamma, it = _solve_dual(X, H, y, penalty)
    elif chosen == "cg":
        use_mixed = dim >= _MIXED_MIN_DIM if mixed is None else bool(mixed)
        solver = _solve_cg_mixed if use_mixed else _solve_cg
        with _blas_guard(single_threaded):
            gamma, it, converged, rhs = solver(X, H, y, penalty, tol, max_iter)
        if use_mixed:
            chosen = "cg-mixed"
        if (not converged and method == "auto" and dim <= _PRIMAL_FALLBACK_MAX_DIM
                and _design_fits(M, dim)):
            gamma, it2 = _solve_primal(X, H, y, penalty)
            it, chosen, converged = it + it2, "cg->primal", True
    else:
        with _blas_guard(single_threaded):
            gamma, it, converged = _solve_dual_cg(X, H, y, penalty, tol, max_iter)
    residual = _relative_residual(X, H, y, gamma, penalty, rhs)
    if chosen in ("primal", "dual", "cg->primal"):
        # direct solves: converged unless the normal equations are visibly violated
        converged = bool(np.isfinite(residual) and residual < 1e-6)
    reason = ""
    if not np.all(np.isfinite(gamma)) or not np.isfinite(residual):
        converged, reason = False, "non-finite value in Gamma"
    elif not converged:
        reason = (f"{chosen} stopped at relative residual {residual:.2g} (tol {tol:g}) after {int(it)} iterations; "
                  "raise max_iter or use a direct method ('primal' or 'dual')")
    return RidgeFit(gamma=gamma, method=chosen, converged=bool(converged), residual=residual,
                    iterations=int(it), seconds=time.perf_counter() - start, reason=reason,
                    parameters={"lam": lam, "n_tasks": n_tasks, "method": method, "tol": tol, "max_iter": max_iter})
