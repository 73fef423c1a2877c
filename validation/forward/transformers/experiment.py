r"""One trained transformer at one parameter point: data, training, test errors and theory.

:func:`train_transformer` draws the pretraining prompts of ``seed`` with
:func:`lowrank_icl.validation.forward.sampling.sample_contexts` -- the same subspace, pool, prompts
and noise that the reduced model sees for that seed -- trains the chosen model with Adam
(:mod:`.training`), fits the reduced ridge Gamma on the reduced features of the same prompts, and
returns a frozen :class:`TransformerResult` with, at each test context ratio alpha_t,

- ``errors(alpha_t)``: the trained model's TM/IDG/ODG errors -- exact numbers
  (:class:`lowrank_icl.numerics.results.ProtocolErrors`) for ``linear``, Estimates over fresh test
  prompts (:class:`lowrank_icl.validation.stats.EstimatedErrors`) for ``softmax`` and ``mlp``;
- ``reduced_errors(alpha_t)``: the exact errors of the ridge-trained reduced model on the same data;
- ``theory_errors(alpha_t)``: the asymptotic errors of :func:`lowrank_icl.numerics.solve` at the
  ratios of the integer sizes (L/D, M/D^2, M0/D, r/D);

and the training's convergence words (``converged``, ``residual``, ``reason``, ``message``,
``iterations`` = Adam steps, ``loss`` = final training loss; :mod:`.training`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from lowrank_icl.numerics import solve
from lowrank_icl.numerics.results import ConvergenceReport, ProtocolErrors
from lowrank_icl.numerics.utils import check_int, check_real, check_seeds, json_document
from lowrank_icl.validation.forward.attention import context_statistics
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_contexts
from lowrank_icl.validation.forward.transformers import models as _models
from lowrank_icl.validation.forward.transformers._backend import require_jax, x64
from lowrank_icl.validation.forward.transformers.evaluation import exact_linear_errors, sampled_errors, task_laws
from lowrank_icl.validation.forward.transformers.training import adam_train

MODELS = _models.MODELS
DEFAULT_LEARNING_RATE = {"linear": 1e-2, "softmax": 1e-2, "mlp": 1e-3}
DEFAULT_STEPS = {"linear": 4000, "softmax": 3000, "mlp": 3000}


@dataclass(frozen=True, repr=False)
class TransformerResult(ConvergenceReport):
    """Errors, theory and training diagnostics of one trained model (module docstring).

    ``alpha_tests`` are the test context ratios measured (the first is the default of every
    ``alpha_test=None``); ``by_alpha_test`` maps each to its {"errors", "reduced", "theory"} (a
    read-only mapping). ``converged`` / ``residual`` / ``reason`` / ``iterations`` / ``loss``
    describe the Adam training (:mod:`.training`: the residual is the relative loss decrease over
    the last 10% of the steps); ``train`` holds the other training settings and timings.
    ``weights`` is the trained parameter tree (numpy arrays); ``parameters`` the inputs.
    ``sampled`` (linear model only): sampled errors at the first alpha_test, a check of the exact ones.

    Attributes
    ----------
    model : str
        "linear", "softmax" or "mlp".
    parameters, sizes : dict
        The inputs as given and the integer sizes.
    alpha_tests : tuple of float
        Test context ratios measured.
    by_alpha_test : mapping
        alpha_test -> {"errors", "reduced", "theory"}.
    converged, residual, reason, iterations, loss
        The Adam training's verdict, relative loss decrease over the last 10% of the steps, reason,
        steps and final loss.
    train : dict
        Other training settings and timings.
    parameter_count : int
        Number of trained weights.
    weights : dict
        The trained parameter tree (numpy arrays).
    sampled : ProtocolErrors or None
        Sampled errors at the first alpha_test (linear model only), a check of the exact ones.
    """

    model: str
    parameters: dict
    sizes: dict
    alpha_tests: tuple
    by_alpha_test: MappingProxyType
    converged: bool
    residual: float
    reason: str
    iterations: int
    loss: float
    train: dict
    parameter_count: int
    weights: object = field(default=None, compare=False)
    sampled: ProtocolErrors | None = None

    def _at(self, alpha_test, key):
        a = self.alpha_tests[0] if alpha_test is None else float(alpha_test)
        if a not in self.by_alpha_test:
            raise ValueError(f"alpha_test must be one of the measured {list(self.alpha_tests)} (got {alpha_test!r}); "
                             "pass alpha_tests= to train_transformer")
        return self.by_alpha_test[a][key]

    def errors(self, alpha_test=None) -> ProtocolErrors:
        """The trained model's TM/IDG/ODG errors at ``alpha_test`` (default the first measured one)."""
        return self._at(alpha_test, "errors")

    def reduced_errors(self, alpha_test=None) -> ProtocolErrors:
        """Exact errors of the ridge-trained reduced model on the same prompts."""
        return self._at(alpha_test, "reduced")

    def theory_errors(self, alpha_test=None) -> ProtocolErrors:
        """Asymptotic errors of ``solve`` at the integer sizes' ratios (a ForwardErrors)."""
        return self._at(alpha_test, "theory")

    @property
    def error_method(self) -> str:
        """"exact" (linear model) or "sampled" (fresh test prompts)."""
        return "exact" if self.model == "linear" else "sampled"

    def to_dict(self) -> dict:
        """The JSON document: ``parameters``, ``version``, ``errors``, ``reduced`` and ``theory`` at the
        first alpha_test (errors as numbers when exact, {"mean", "sem", "n"} when sampled),
        ``error_method``, ``by_alpha_test`` (every alpha_test), the convergence words, ``loss``,
        ``train``, ``sizes``, ``parameter_count`` (and ``sampled`` for the linear model)."""
        def entry(a):
            d = self.by_alpha_test[a]
            return {"errors": _errors_dict(d["errors"]), "reduced": d["reduced"].to_dict(),
                    "theory": d["theory"].to_dict()}
        first = entry(self.alpha_tests[0])
        out = {**first, "error_method": self.error_method, "model": self.model,
               "by_alpha_test": [{"alpha_test": a, **entry(a)} for a in self.alpha_tests],
               "converged": self.converged, "residual": self.residual, "reason": self.reason,
               "message": self.message, "iterations": self.iterations, "loss": self.loss, "train": self.train,
               "sizes": self.sizes, "parameter_count": self.parameter_count}
        if self.sampled is not None:
            out["sampled"] = _errors_dict(self.sampled)
        return json_document(self.parameters, out)

    def __repr__(self) -> str:
        s = self.sizes
        return (f"TransformerResult({self.model}, D={s['D']} L={s['L']} M={s['M']} M0={s['M0']} r={s['r']}; "
                f"{self.iterations} steps, loss {self.loss:.4g}, converged={self.converged})\n"
                f"  errors: {_errors_text(self.errors())}\n  theory: {_errors_text(self.theory_errors())}"
                + ("" if self.converged else f"\n  reason: {self.reason}"))

    __str__ = __repr__


def _errors_dict(err: ProtocolErrors) -> dict:
    return err.to_dict(values=False) if hasattr(err, "n") else err.to_dict()


def _errors_text(err: ProtocolErrors) -> str:
    if hasattr(err, "n"):
        return str(err)
    return ", ".join(f"{p} = {float(v):.6g}" for p, v in err.items())


def train_transformer(*, model, dim, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, steps=None, seed=0,
                      learning_rate=None, attention_dim=None, width=None, n_layers=2, batch_size=None,
                      alpha_tests=None, sigma_test=None, n_test_prompts=2000, init_scale=1e-2,
                      progress=None) -> TransformerResult:
    r"""Train ``model`` ("linear", "softmax" or "mlp") on the pretraining prompts of ``seed`` and measure it.

    Sizes: L = round(alpha D), M = round(tau D^2), M0 = round(kappa D), r = round(rho D).
    ``lam`` (the ridge, penalty lam M0 ||Gamma||^2) is the product penalty of the linear model; the
    softmax and MLP models are trained without penalty, so they require lam = 0.
    ``steps`` and ``learning_rate`` default per model (:data:`DEFAULT_STEPS`,
    :data:`DEFAULT_LEARNING_RATE`). ``attention_dim`` (softmax): d_a, default D + 1 (the rank of the
    key-query matrix is not limited below D). ``width`` (mlp): n, default D + 1; ``n_layers`` blocks.
    ``batch_size``: minibatch Adam for softmax/mlp (default full batch). ``alpha_tests``: test
    context ratios (default [alpha]); ``sigma_test`` defaults to ``sigma``. ``n_test_prompts``:
    fresh prompts per protocol for the sampled errors. Precision: float64 for the linear model,
    float32 for the others. Keyword-only.

    Parameters
    ----------
    model : {'linear', 'softmax', 'mlp'}
        The architecture.
    dim : int
        D.
    alpha, tau, kappa, rho, sigma, lam : float
        The model (sizes above).
    steps, learning_rate : int, float, optional
        Adam steps and step size.
    seed : int
        Pretraining draw, an integer >= 0 (the seed rule of
        :func:`lowrank_icl.numerics.utils.check_seeds`).
    attention_dim, width, n_layers, batch_size : int, optional
        Architecture and minibatch (above).
    alpha_tests : sequence of float, optional
        Test context ratios.
    sigma_test : float, optional
        Test-label noise.
    n_test_prompts : int
        Fresh prompts per protocol.
    init_scale : float
        Scale of the initial weights.
    progress : callable, optional
        Receives progress lines.

    Returns
    -------
    TransformerResult
        Frozen; ``errors(alpha_test)``, ``reduced_errors``, ``theory_errors`` and the training's
        convergence words (a diverged or unfinished run has ``converged=False`` and a ``reason``).

    Raises
    ------
    ValueError
        For an invalid parameter (naming it), and for kappa = inf: the model is trained on a task
        pool of M0 = round(kappa D) tasks and compared with ``solve`` at M0/D.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS} (got {model!r})")
    try:
        infinite = math.isinf(float(kappa))
    except (TypeError, ValueError):
        infinite = False
    if infinite:
        raise ValueError(f"kappa must be finite for train_transformer (got {kappa!r}): the model is trained on a "
                         "pool of M0 = round(kappa D) tasks and compared with the theory at M0/D")
    jax, jnp, _ = require_jax()
    s = Sizes.from_ratios(dim, alpha, tau, kappa, rho)
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    if model != "linear" and lam > 0:
        raise ValueError(f"lam > 0 is defined for model='linear' only (the product penalty); got lam={lam} "
                         f"with model={model!r}")
    (seed,) = check_seeds([seed], "seed")
    steps = check_int("steps", DEFAULT_STEPS[model] if steps is None else steps, lower=1)
    lr = float(check_real("learning_rate", DEFAULT_LEARNING_RATE[model] if learning_rate is None
                          else learning_rate, lower=0.0))
    d_a = check_int("attention_dim", dim + 1 if attention_dim is None else attention_dim, lower=1)
    n_hidden = check_int("width", dim + 1 if width is None else width, lower=2)
    n_layers = check_int("n_layers", n_layers, lower=1)
    n_test = check_int("n_test_prompts", n_test_prompts, lower=2)
    sig_t = sigma if sigma_test is None else float(check_real("sigma_test", sigma_test, lower=0.0,
                                                              lower_inclusive=True))
    a_tests = [s.alpha] if alpha_tests is None else [float(check_real("alpha_test", a, lower=0.0))
                                                     for a in np.atleast_1d(alpha_tests)]
    lengths = {a: max(1, int(math.floor(a * dim + 0.5))) for a in a_tests}
    if batch_size is not None:
        if model == "linear":
            raise ValueError("batch_size applies to model='softmax' or 'mlp' (the linear model trains full batch)")
        batch_size = check_int("batch_size", batch_size, lower=1)

    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    ctx = sample_contexts(s, sigma, seed)
    laws = task_laws(ctx.pool, ctx.subspace)
    red = ctx.reduced()
    ridge = fit_ridge(red.x, red.h, red.y, lam, s.n_tasks)
    t_data = time.perf_counter() - t0
    label = f"{model} D={dim} seed={seed}: "

    if model == "linear":
        S, xq, yq = context_statistics(ctx.X, ctx.y)
        del ctx
        penalty = lam * s.n_tasks / s.n_prompts

        def loss(p, S_, xq_, yq_):
            r = _models.predict_linear(p, S_, xq_) - yq_
            return jnp.mean(r * r) + penalty * jnp.sum(p["V"] ** 2) * jnp.sum(p["W"] ** 2)

        with x64(True):
            p0 = jax.tree_util.tree_map(jnp.asarray, _models.init_linear(dim, seed, init_scale))
            fit = adam_train(loss, p0, tuple(jnp.asarray(a) for a in (S, xq, yq)), steps=steps,
                             learning_rate=lr, seed=seed, progress=say, label=label)
        predict_tokens = _linear_token_predictor(fit.weights, dim)
    else:
        Z = _models.tokens(ctx.X, ctx.y).astype(np.float32)
        yq = ctx.y[:, -1].astype(np.float32)
        del ctx
        p_np = (_models.init_softmax(dim, seed, d_a) if model == "softmax"
                else _models.init_mlp(dim, seed, n_hidden, n_layers))
        predict = _models.PREDICT[model]

        def loss(p, Z_, y_):
            r = predict(p, Z_) - y_
            return jnp.mean(r * r)

        with x64(False):
            p0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float32), p_np)
            fit = adam_train(loss, p0, (jnp.asarray(Z), jnp.asarray(yq)), steps=steps, learning_rate=lr,
                             batch_size=batch_size, seed=seed, progress=say, label=label)
        predict_tokens = _jax_token_predictor(predict, fit.weights)

    say(f"{label}trained in {fit.seconds:.1f} s (loss {fit.initial_loss:.4g} -> {fit.loss:.4g}); testing")
    by_alpha = {}
    sampled = None
    sol = solve(alpha=s.alpha, tau=s.tau, kappa=s.kappa, rho=s.rho, sigma=sigma, lam=lam)
    G = ridge.gamma
    V_r, W_r = np.zeros((dim + 1, dim + 1)), np.zeros((dim + 1, dim + 1))
    V_r[dim, dim], W_r[:dim, :dim] = 1.0, G.T
    for a in a_tests:
        Lt = lengths[a]
        if model == "linear":
            err = exact_linear_errors(fit.weights, laws, Lt, sig_t)
        else:
            err = sampled_errors(predict_tokens, laws, Lt, sig_t, n_test, seed)
        by_alpha[a] = MappingProxyType({"errors": err,
                                        "reduced": exact_linear_errors({"V": V_r, "W": W_r}, laws, Lt, sig_t),
                                        "theory": sol.errors(alpha_test=Lt / dim, sigma_test=sig_t)})
    if model == "linear":
        sampled = sampled_errors(predict_tokens, laws, lengths[a_tests[0]], sig_t, n_test, seed)
    train = {"initial_loss": fit.initial_loss, "seconds": fit.seconds, "compile_seconds": fit.compile_seconds,
             "seconds_total": time.perf_counter() - t0, "seconds_data": t_data, "learning_rate": lr,
             "batch_size": batch_size, "optimizer": "adam",
             "schedule": "linear warmup 5% of steps, cosine decay to 1% of the peak",
             "dtype": "float64" if model == "linear" else "float32", "ridge_converged": bool(ridge.converged),
             "theory_converged": bool(sol.converged)}
    train = MappingProxyType(train)
    parameters = {"model": model, "dim": int(dim), "alpha": float(alpha), "tau": float(tau),
                  "kappa": float(kappa), "rho": float(rho), "sigma": sigma, "lam": lam, "steps": steps,
                  "seed": int(seed), "learning_rate": lr, "batch_size": batch_size,
                  "alpha_tests": a_tests, "sigma_test": sig_t, "n_test_prompts": n_test}
    if model == "softmax":
        parameters["attention_dim"] = d_a
    if model == "mlp":
        parameters.update(width=n_hidden, n_layers=n_layers)
    if model == "linear":
        parameters["init_scale"] = float(init_scale)
    return TransformerResult(
        model=model, parameters=parameters,
        sizes={"D": s.dim, "L": s.context_length, "M": s.n_prompts, "M0": s.n_tasks, "r": s.rank},
        alpha_tests=tuple(a_tests), by_alpha_test=MappingProxyType(by_alpha), converged=fit.converged,
        residual=fit.residual, reason=fit.reason, iterations=fit.iterations, loss=fit.loss, train=train,
        parameter_count=_models.parameter_count(fit.weights), weights=fit.weights, sampled=sampled)


def _linear_token_predictor(weights, dim):
    V, W = weights["V"], weights["W"]

    def predict_tokens(Z):
        S, xq, _ = context_statistics(Z[:, :, :dim], Z[:, :, dim])
        b = xq @ W[:, :-1].T
        return np.einsum("mij,i,mj->m", S, V[-1], b)
    return predict_tokens


def _jax_token_predictor(predict, weights_np):
    jax, jnp, _ = require_jax()
    with x64(False):
        weights = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float32), weights_np)
    fn = jax.jit(predict)

    def predict_tokens(Z):
        with x64(False):
            return np.asarray(fn(weights, jnp.asarray(Z, dtype=jnp.float32)))
    return predict_tokens
