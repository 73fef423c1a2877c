r"""Result objects of the forward solver: :class:`ForwardSolution`, :class:`ForwardErrors`, the decomposition.

A solution stores the order parameters and, for each test protocol, the nonnegative parts of its
error (:func:`lowrank_icl.theory.forward.saddle_point.protocol_parts`), so that ``errors()`` is a
sum of nonnegative terms: relative accuracy ~1e-15 in float64 even where the error vanishes.
Solutions made with ``precision=N`` hold mpmath numbers and evaluate everything they return inside
their own N-digit context (never mpmath's global one).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import mpmath
import numpy as np

from lowrank_icl.numerics._checks import check_real
from lowrank_icl.numerics.forward.params import ForwardParams
from lowrank_icl.numerics.results import PROTOCOLS, ConvergenceReport, ProtocolErrors
from lowrank_icl.theory.forward.saddle_point import error_from_parts

ORDER_PARAMETERS = ("q", "m", "chi", "q_bar", "chi_bar", "q_hat", "m_hat", "chi_hat", "q_bar_hat",
                    "chi_bar_hat", "m_bar", "q0", "m0", "nu")

# Branch labels (``result.branch``).
RIDGE = "ridge"                          # lam > 0
RIDGELESS_UNDER = "ridgeless tau>1"      # lam = 0, more prompts than weights: u = 0
RIDGELESS_OVER = "ridgeless tau<1"       # lam = 0, fewer prompts than weights: min-norm interpolator
THRESHOLD = "interpolation threshold"    # lam = 0, tau = 1: errors are +inf

_BRANCH_LABELS = np.array([RIDGE, RIDGELESS_UNDER, RIDGELESS_OVER, THRESHOLD])


def branches(tau, lam):
    """Branch label of each point (see the constants above)."""
    tau, lam = np.asarray(tau, dtype=float), np.asarray(lam, dtype=float)
    code = np.where(lam > 0, 0, np.where(tau > 1, 1, np.where(tau < 1, 2, 3)))
    return _BRANCH_LABELS[code]


@dataclass(frozen=True, repr=False)
class ForwardErrors(ProtocolErrors):
    """Asymptotic test errors (squared label units): task memorization, in- and out-of-distribution.

    Numbers (floats, arrays, or mpmath numbers of a ``precision=N`` solution) in the
    :class:`lowrank_icl.numerics.results.ProtocolErrors` family; ``to_dict`` writes mpmath values as
    decimal strings of ``precision`` significant digits.

    The error of protocol X at test context ratio alpha_t and test noise sigma_t is
    e_X = s2_t - 2 m_X + q_X + s2_t q_bar / alpha_t, s2_t = 1 + sigma_t^2, with (m_X, q_X) the order
    parameters of the protocol's test tasks: the pool tasks (TM), fresh tasks of the rank-r subspace
    (IDG), isotropic tasks (ODG).

    Attributes
    ----------
    tm, idg, odg : float or ndarray
        Task memorization, in-distribution and out-of-distribution errors (squared label units).
    precision : int or None
        Digits kept (None: float64).
    """

    precision: int | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        from lowrank_icl.numerics._json import json_ready
        return {p: json_ready(v, self.precision) for p, v in self.items()}


@dataclass(frozen=True)
class PartSplit:
    """Three additive parts of a second moment: signal (mean weights) and two noise parts.

    noise_T comes from the finite number of pretraining prompts (chi_hat), noise_R from the
    finite contexts of the training prompts (chi_bar_hat); both vanish as tau -> infinity.
    ``total`` is the order parameter itself (summed in the solution's own precision).

    Attributes
    ----------
    signal, noise_T, noise_R : float or ndarray
        The three parts; signal + noise_T + noise_R = total.
    total : float or ndarray
        The order parameter.
    """

    signal: np.ndarray | float
    noise_T: np.ndarray | float
    noise_R: np.ndarray | float
    total: np.ndarray | float


@dataclass(frozen=True)
class Decomposition:
    """Signal / noise-T / noise-R split of q (pool tasks), q_bar (isotropic) and q0 (subspace).

    Attributes
    ----------
    q, q_bar, q0 : PartSplit
        The splits of the pool-task, isotropic and subspace second moments.
    """

    q: PartSplit
    q_bar: PartSplit
    q0: PartSplit


@dataclass(frozen=True, repr=False)
class ForwardSolution(ConvergenceReport):
    r"""Solution of the forward saddle point at each parameter point (arrays broadcast).

    Order parameters (docs/model.md): q, m (pool tasks), q_bar, m_bar (isotropic), q0, m0 (task
    subspace), the susceptibilities chi, chi_bar, the conjugates q_hat, m_hat, chi_hat, q_bar_hat,
    chi_bar_hat, and the effective ridge nu = -z = (1 + sigma^2)/alpha + u (implicit part from finite
    contexts plus explicit part u). ``training_error`` is E = s2 - 2m + q + s2 q_bar/alpha.

    Diagnostics: ``residual`` is the largest residual of the published equations at the returned
    point, each measured relative to the sum of the magnitudes of its terms (so its own rounding is
    bounded by a few units of the working precision), and of the reduced equation G(u) = 0;
    ``converged`` is ``residual <= tolerance`` (1e-10 in float64, 10^-(N-10) with ``precision=N``:
    :func:`lowrank_icl.numerics.forward.core.residual_tolerance`) and all values finite.
    ``stopped`` says the iteration ended by its own stop rule (for ``method="damped"`` this differs
    from ``converged``); ``iterations`` counts its steps. ``reason`` is "" where converged, else why
    not and what to do. ``to_dict()`` gives the package's JSON layout with ``parameters`` and
    ``version``; the repr is a few lines whatever the shape. At lam = 0, tau < 1 the conjugates vanish and
    chi, chi_bar are +inf; at lam = 0, tau = 1 the errors are +inf (``branch``).

    Attributes
    ----------
    params : ForwardParams
        The parameters solved.
    q, m, q_bar, m_bar, q0, m0 : ndarray
        Order parameters: (1/M0) sum_i ||Gamma w_i||^2 / D and (1/M0) sum_i w_i^T Gamma w_i / D over the
        pool tasks; tr(Gamma^T Gamma) / D and tr(Gamma) / D; tr((Gamma A)^T Gamma A) / r and tr(A^T Gamma A) / r
        on the task subspace.
    chi, chi_bar : ndarray
        Susceptibilities (+inf on the ridgeless tau < 1 branch).
    q_hat, m_hat, chi_hat, q_bar_hat, chi_bar_hat : ndarray
        Conjugate order parameters (0 at kappa = inf).
    nu : ndarray
        Effective ridge -z = (1 + sigma^2) / alpha + u.
    training_error : ndarray
        E = s2 - 2 m + q + s2 q_bar / alpha.
    converged, residual, iterations, branch, stopped, reason : ndarray
        Diagnostics (above).
    method : str
        'reduced' or 'damped'.
    precision : int or None
        Digits of the mpmath solve (None: float64).
    tolerance : float
        The residual tolerance of ``converged``.
    """

    params: ForwardParams
    q: np.ndarray
    m: np.ndarray
    chi: np.ndarray
    q_bar: np.ndarray
    chi_bar: np.ndarray
    q_hat: np.ndarray
    m_hat: np.ndarray
    chi_hat: np.ndarray
    q_bar_hat: np.ndarray
    chi_bar_hat: np.ndarray
    m_bar: np.ndarray
    q0: np.ndarray
    m0: np.ndarray
    nu: np.ndarray
    training_error: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    iterations: np.ndarray
    branch: np.ndarray
    stopped: np.ndarray = None
    reason: np.ndarray = None
    method: str = "reduced"
    precision: int | None = None
    tolerance: float = 1e-10
    _parts: dict = field(default=None, repr=False, compare=False)

    def _context(self):
        return mpmath.workdps(self.precision) if self.precision else contextlib.nullcontext()

    def errors(self, alpha_test=None, sigma_test=None) -> ForwardErrors:
        """TM, IDG and ODG errors at test context ratio alpha_test = L~/D and test noise std sigma_test.

        e_X = sigma_t^2 + mean_X - 2 m_X + q_X + (mean_X + sigma_t^2) q_bar / alpha_t with (m_X, q_X) =
        (m, q) for TM, (m0, q0) for IDG and (m_bar, q_bar) for ODG (for a general spectrum: the train
        law for TM/IDG and its test law for "odg"); mean_X = E|w|^2/D of the protocol's tasks (1 for the
        rank-r model). Evaluated as the sum of nonnegative terms
        sigma_t^2 + misfit_X + noise_T + noise_R + (mean_X + sigma_t^2) q_bar/alpha_t
        (:func:`lowrank_icl.theory.forward.saddle_point.error_from_parts`), so the relative accuracy
        holds even where the errors vanish. Defaults: the training alpha and sigma. Broadcasts
        against the solution's shape; with ``precision=N`` the values are N-digit mpmath numbers.
        """
        a_t = self.params.alpha if alpha_test is None else check_real("alpha_test", alpha_test, lower=0.0)
        s_t = self.params.sigma if sigma_test is None else check_real(
            "sigma_test", sigma_test, lower=0.0, lower_inclusive=True)
        with self._context():
            if self.precision:
                a_t, s_t = to_mp(a_t), to_mp(s_t)
            with np.errstate(invalid="ignore"):
                vals = {name: unwrap(error_from_parts(self._parts["errors"][name], self.q_bar, a_t, s_t))
                        for name in PROTOCOLS}
        return ForwardErrors(**vals, precision=self.precision)

    def decomposition(self) -> Decomposition:
        """Signal / noise-T / noise-R parts of q, q_bar and q0 (their totals are q, q_bar, q0)."""
        return Decomposition(**{k: PartSplit(**{p: unwrap(self._parts[k][p]) for p in ("signal", "noise_T", "noise_R")},
                                             total=unwrap(getattr(self, k))) for k in ("q", "q_bar", "q0")})

    @property
    def effective_ridge(self):
        """nu = -z, the ridge the mean weights see: (1 + sigma^2)/alpha + explicit part."""
        return self.nu

    @property
    def implicit_ridge(self):
        """(1 + sigma^2)/alpha: the part of nu present even at lam = 0 (finite contexts)."""
        return (1 + self.params.sigma**2) / self.params.alpha

    def order_parameters(self) -> dict:
        """The order parameters as a dict keyed like the CLI JSON."""
        return {k: getattr(self, k) for k in ORDER_PARAMETERS}

    def parameters(self) -> dict:
        """The inputs of the solve, as reported in ``to_dict()["parameters"]``."""
        return {k: getattr(self.params, k) for k in ForwardParams.field_names()}

    def to_dict(self, alpha_test=None, sigma_test=None) -> dict:
        """JSON-ready dict (the package's JSON rule, :mod:`lowrank_icl.numerics._json`).

        Keys: ``parameters``, ``version``, ``order_parameters``, ``errors``, ``converged``,
        ``residual``, ``stopped``, ``reason``, ``message``, ``iterations``, ``branch``, ``method``, ``precision``,
        ``tolerance``. With ``precision=N`` every order parameter and error is a decimal string of N
        significant digits; NaN is null and +-inf the strings "inf"/"-inf".
        """
        from lowrank_icl.numerics._json import json_document

        err = self.errors(alpha_test, sigma_test)
        result = {"order_parameters": self.order_parameters(),
                  "errors": {k: getattr(err, k) for k in ("tm", "idg", "odg")},
                  "converged": self.converged, "residual": self.residual, "stopped": self.stopped,
                  "reason": self.reason, "message": self.message, "iterations": self.iterations,
                  "branch": self.branch,
                  "method": self.method, "precision": self.precision, "tolerance": self.tolerance}
        return json_document(self.parameters(), result, self.precision)

    def _describe(self) -> str:
        """Extra words for the repr (the task law of a general spectrum)."""
        return ""

    def __repr__(self):
        conv = np.asarray(self.converged)
        res = np.asarray(self.residual, dtype=float)
        shape = self.params.shape
        head = f"{type(self).__name__}(method={self.method!r}" + (f", precision={self.precision}" if self.precision else "")
        head += self._describe()
        if not shape:
            p = ", ".join(f"{k}={float(v):.6g}" for k, v in self.parameters().items() if k != "spectrum")
            status = f"converged={bool(conv)}, residual={float(res):.2g}, branch={str(self.branch)!r}"
            if not bool(conv):
                status += f", reason={str(self.reason)!r}"
            return f"{head})\n  {p}\n  {status}\n  {self.errors()!r}"
        worst = float(np.nanmax(res)) if np.any(np.isfinite(res)) else float("nan")
        return (f"{head}, shape={shape})\n  converged {int(conv.sum())}/{conv.size}, max residual {worst:.2g}\n"
                f"  fields: {', '.join(ORDER_PARAMETERS)}; errors() gives tm, idg, odg")


def build_solution(solution_type, params, sol, parts, *, converged, residual, iters, stopped, reason, branch, method,
                   precision=None, tolerance=1e-10, extra=None):
    """A ``solution_type`` from flat per-point arrays, reshaped to the parameters' broadcast shape
    (scalars for scalar input)."""
    shape = params.shape

    size = int(np.prod(shape, dtype=int))

    def shaped(x):
        x = np.asarray(x)
        if x.ndim == 0:  # a per-solution constant (e.g. the mean of a task law)
            x = np.broadcast_to(x, (size,))
        return x.reshape(shape)[()]

    def shaped_parts(d):
        return {k: shaped_parts(v) if isinstance(v, dict) else shaped(v) for k, v in d.items()}

    return solution_type(params=params, **{k: shaped(v) for k, v in sol.items()},
                         converged=shaped(converged), residual=shaped(residual), iterations=shaped(iters),
                         stopped=shaped(stopped), reason=shaped(reason), branch=shaped(branch), method=method,
                         precision=precision, tolerance=tolerance, _parts=shaped_parts(parts),
                         **{k: v if k == "spectrum" else (shaped_parts(v) if isinstance(v, dict) else shaped(v))
                            for k, v in (extra or {}).items()})


def residual_reason(residual, tolerance, finite, float64: bool, hint: str | None = None):
    """The ``reason`` strings: "" where converged, else what failed and the remedy (``hint`` overrides it)."""
    residual = np.asarray(residual, dtype=float)
    if hint is None:
        hint = "; float64 cannot resolve this point: use precision=" if float64 else "; raise precision="
    finite = np.asarray(finite, dtype=bool)
    out = np.full(residual.shape, "", dtype=object)
    out[~finite] = "non-finite value in the solution"
    for i in zip(*np.nonzero(finite & ~(residual <= tolerance))):
        out[i] = f"residual {residual[i]:.2g} > tolerance {tolerance:.0e}{hint}"
    return out


def to_mp(x):
    """float or float array -> mpmath number or object array (exact conversion of the binary value)."""
    arr = np.asarray(x)
    if arr.ndim == 0:
        return mpmath.mpf(float(arr))
    return np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])(arr)


def unwrap(x):
    if isinstance(x, mpmath.mpf):
        return x
    x = np.asarray(x)
    return x[()] if x.ndim == 0 else x


def jsonable(x, precision: int | None = None):
    """JSON-ready value: lists for arrays, None for NaN, N-digit strings for mpmath numbers."""
    if isinstance(x, np.ndarray):
        return [jsonable(v, precision) for v in x.tolist()]
    if isinstance(x, mpmath.mpf):
        if mpmath.isnan(x):
            return None
        return mpmath.nstr(x, precision or 17) if mpmath.isfinite(x) else float(x)
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def _short(x):
    if isinstance(x, mpmath.mpf):
        return mpmath.nstr(x, 12)
    arr = np.asarray(x)
    if arr.ndim == 0:
        return f"{float(arr):.10g}"
    return f"array(shape={arr.shape})"
