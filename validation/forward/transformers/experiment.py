r"""One trained transformer at one parameter point: data, training, test errors and theory.

:func:`train_transformer` draws the pretraining prompts of ``seed`` with
:func:`lowrank_icl.validation.forward.sampling.sample_contexts` -- the same subspace, pool, prompts
and noise that the reduced model sees for that seed -- trains the chosen model with Adam
(:mod:`.training`), fits the reduced ridge Gamma on the reduced features of the same prompts, and
returns a :class:`TransformerResult` with

- ``errors[alpha_t][protocol]`` = (mean, sem, method): exact (sem 0) for ``linear``, sampled on
  fresh prompts for ``softmax`` and ``mlp`` (and for ``linear`` in ``sampled`` as a check);
- ``reduced[alpha_t][protocol]``: the exact errors of the ridge-trained reduced model on the same data;
- ``theory[alpha_t][protocol]``: the asymptotic errors of :func:`lowrank_icl.numerics.solve` at the
  ratios of the integer sizes (L/D, M/D^2, M0/D, r/D).
"""
from __future__ import annotations

import importlib.metadata
import math
import time
from dataclasses import dataclass, field

import numpy as np

from lowrank_icl.numerics import solve
from lowrank_icl.numerics.utils import check_int, check_real
from lowrank_icl.validation.forward.attention import context_statistics
from lowrank_icl.validation.forward.ridge import fit_ridge
from lowrank_icl.validation.forward.sampling import Sizes, sample_contexts
from lowrank_icl.validation.forward.transformers import models as _models
from lowrank_icl.validation.forward.transformers._backend import require_jax, x64
from lowrank_icl.validation.forward.transformers.evaluation import (PROTOCOLS, exact_linear_errors,
                                                                   sampled_errors, task_laws)
from lowrank_icl.validation.forward.transformers.training import adam_train

MODELS = _models.MODELS
DEFAULT_LEARNING_RATE = {"linear": 1e-2, "softmax": 1e-2, "mlp": 1e-3}
DEFAULT_STEPS = {"linear": 4000, "softmax": 3000, "mlp": 3000}


def _version() -> str:
    try:
        from lowrank_icl.validation import __version__
        return str(__version__)
    except ImportError:
        return importlib.metadata.version("lowrank-icl")


@dataclass
class TransformerResult:
    """Errors, theory and training diagnostics of one trained model (see module docstring).

    Attributes
    ----------
    model : str
        The architecture.
    parameters, sizes : dict
        Inputs and integer sizes.
    alpha_tests : list of float
        Test context ratios.
    errors, reduced, theory : dict
        TM/IDG/ODG errors of the trained model, of the reduced model and of the theory.
    train : dict
        Training diagnostics.
    parameter_count : int
        Trainable parameters.
    params : object
        The trained parameter tree.
    sampled : dict or None
        Sampled errors.
    """

    model: str
    parameters: dict
    sizes: dict
    alpha_tests: list
    errors: dict
    reduced: dict
    theory: dict
    train: dict
    parameter_count: int
    params: object = field(repr=False, default=None)
    sampled: dict | None = None

    def to_dict(self) -> dict:
        """The CLI contract: tm/idg/odg {"mean","sem","method"} and theory at alpha_test = first entry;
        ``by_alpha_test`` with every alpha_t; ``train``, ``parameters``, ``version``."""
        a0 = self.alpha_tests[0]
        out = {p: self.errors[a0][p] for p in PROTOCOLS}
        out.update({
            "theory": self.theory[a0], "reduced": self.reduced[a0], "model": self.model,
            "train": self.train, "sizes": self.sizes, "parameter_count": self.parameter_count,
            "by_alpha_test": [{"alpha_test": a, "errors": self.errors[a], "theory": self.theory[a],
                               "reduced": self.reduced[a]} for a in self.alpha_tests],
            "parameters": self.parameters, "version": _version()})
        if self.sampled is not None:
            out["sampled"] = self.sampled
        return _json_safe(out)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def train_transformer(model, dim, *, alpha, tau, kappa, rho=1.0, sigma=0.0, lam=0.0, steps=None, seed=0,
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
    float32 for the others.

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
        Pretraining draw.
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
        Test errors e_X = E (y - yhat)^2 of the trained model for X = TM, IDG, ODG at each test ratio,
        beside the reduced model's exact errors and the theory.
    """
    jax, jnp, _ = require_jax()
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS} (got {model!r})")
    s = Sizes.from_ratios(dim, alpha, tau, kappa, rho)
    sigma = float(check_real("sigma", sigma, lower=0.0, lower_inclusive=True))
    lam = float(check_real("lam", lam, lower=0.0, lower_inclusive=True))
    if model != "linear" and lam > 0:
        raise ValueError(f"lam > 0 is defined for model='linear' only (the product penalty); got lam={lam} "
                         f"with model={model!r}")
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
        predict_tokens = _linear_token_predictor(fit.params, dim)
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
        predict_tokens = _jax_token_predictor(predict, fit.params)

    say(f"{label}trained in {fit.seconds:.1f} s (loss {fit.initial_loss:.4g} -> {fit.final_loss:.4g}); testing")
    errors, reduced, theory = {}, {}, {}
    sampled = None
    sol = solve(alpha=s.alpha, tau=s.tau, kappa=s.kappa, rho=s.rho, sigma=sigma, lam=lam)
    for a in a_tests:
        Lt = lengths[a]
        th = sol.errors(alpha_test=Lt / dim, sigma_test=sig_t)
        theory[a] = {p: float(getattr(th, p)) for p in PROTOCOLS}
        theory[a]["converged"] = bool(sol.converged)
        G = ridge.gamma
        V_r, W_r = np.zeros((dim + 1, dim + 1)), np.zeros((dim + 1, dim + 1))
        V_r[dim, dim], W_r[:dim, :dim] = 1.0, G.T
        reduced[a] = exact_linear_errors({"V": V_r, "W": W_r}, laws, Lt, sig_t)
        if model == "linear":
            ex = exact_linear_errors(fit.params, laws, Lt, sig_t)
            errors[a] = {p: {"mean": ex[p], "sem": 0.0, "method": "exact"} for p in PROTOCOLS}
        else:
            sm = sampled_errors(predict_tokens, laws, Lt, sig_t, n_test, seed)
            errors[a] = {p: {"mean": sm[p][0], "sem": sm[p][1], "method": "sampled"} for p in PROTOCOLS}
    if model == "linear":
        L0 = lengths[a_tests[0]]
        sm = sampled_errors(predict_tokens, laws, L0, sig_t, n_test, seed)
        sampled = {p: {"mean": sm[p][0], "sem": sm[p][1]} for p in PROTOCOLS}
    train = {"steps": steps, "final_loss": fit.final_loss, "initial_loss": fit.initial_loss,
             "seconds": fit.seconds, "compile_seconds": fit.compile_seconds, "seconds_total": time.perf_counter() - t0, "seconds_data": t_data,
             "learning_rate": lr, "batch_size": batch_size, "optimizer": "adam",
             "schedule": "linear warmup 5% of steps, cosine decay to 1% of the peak",
             "dtype": "float64" if model == "linear" else "float32",
             "converged": fit.converged, "residual": fit.residual,
             "ridge_converged": bool(ridge.converged)}
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
        alpha_tests=a_tests, errors=errors, reduced=reduced, theory=theory, train=train,
        parameter_count=_models.parameter_count(fit.params), params=fit.params, sampled=sampled)


def _linear_token_predictor(params, dim):
    V, W = params["V"], params["W"]

    def predict_tokens(Z):
        S, xq, _ = context_statistics(Z[:, :, :dim], Z[:, :, dim])
        b = xq @ W[:, :-1].T
        return np.einsum("mij,i,mj->m", S, V[-1], b)
    return predict_tokens


def _jax_token_predictor(predict, params_np):
    jax, jnp, _ = require_jax()
    with x64(False):
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.float32), params_np)
    fn = jax.jit(predict)

    def predict_tokens(Z):
        with x64(False):
            return np.asarray(fn(params, jnp.asarray(Z, dtype=jnp.float32)))
    return predict_tokens
