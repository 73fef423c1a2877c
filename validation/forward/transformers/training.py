r"""Adam training of the models of :mod:`.models` on a fixed set of pretraining prompts.

Schedule (all models): full-batch Adam (optax.adam, b1 = 0.9, b2 = 0.999, eps = 1e-8) for ``steps``
steps; the learning rate rises linearly from 0 to ``learning_rate`` over the first 5% of the steps
and then follows a cosine decay to 1% of the peak at the last step. Full batch makes a run a
deterministic function of (data, seed): the only randomness is the initialization.

``converged`` / ``residual``: the residual is the relative decrease of the training loss over the
last 10% of the steps, |F(0.9 N) - F(N)| / F(N); converged means residual <= 1e-3, a finite loss
that did not rise above its initial value, and a window of at least 10 steps (N >= 100: over fewer
steps, with the warmup starting from a zero learning rate, a small residual says nothing). With a
decaying learning rate a small residual says the run has settled, not that it sits at a global
minimum; the linear model's comparison with the L-BFGS trainer tests the latter. ``reason`` says
which condition failed ("" when converged).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from lowrank_icl.numerics.utils import check_int, check_real
from lowrank_icl.numerics.utils import json_document
from lowrank_icl.numerics.results import ConvergenceReport
from lowrank_icl.validation.forward.transformers._backend import require_jax

WARMUP_FRACTION = 0.05
FINAL_LR_FRACTION = 0.01
CONVERGED_RESIDUAL = 1e-3
MIN_WINDOW = 10           # steps in the last 10% below which the residual cannot judge convergence


@dataclass(frozen=True, repr=False)
class TrainResult(ConvergenceReport):
    """Trained weights (numpy pytree), loss history (one value per step) and diagnostics.

    ``loss``: the full-data training loss at the returned weights; ``residual``, ``converged``,
    ``reason`` as in the module docstring; ``iterations`` the Adam steps. ``seconds``: the training
    loop (steps plus the final full-data loss); ``compile_seconds``: the XLA compilation of the
    step, before the loop."""

    weights: object
    losses: np.ndarray
    steps: int
    seconds: float
    compile_seconds: float
    learning_rate: float
    converged: bool
    residual: float
    reason: str = ""

    @property
    def loss(self) -> float:
        return float(self.losses[-1])

    @property
    def initial_loss(self) -> float:
        return float(self.losses[0])

    @property
    def iterations(self) -> int:
        return self.steps

    def to_dict(self) -> dict:
        """JSON document: the training settings as ``parameters``, the loss and the convergence words."""
        return json_document({"steps": self.steps, "learning_rate": self.learning_rate},
                             {"loss": self.loss, "initial_loss": self.initial_loss, "converged": self.converged,
                              "residual": self.residual, "reason": self.reason, "message": self.message,
                              "iterations": self.iterations, "seconds": self.seconds,
                              "compile_seconds": self.compile_seconds})

    def __repr__(self) -> str:
        return (f"TrainResult({self.steps} steps, loss {self.initial_loss:.4g} -> {self.loss:.4g}, "
                f"converged={self.converged}, residual={self.residual:.2g})")


def convergence(losses, steps: int) -> tuple[bool, float, str]:
    """(converged, residual, reason) of a loss history ``losses`` (steps + 1 values; module docstring)."""
    losses = np.asarray(losses, dtype=float)
    start = int(0.9 * steps)
    ref, F = losses[start], losses[-1]
    if not np.all(np.isfinite(losses)):
        first = int(np.argmax(~np.isfinite(losses)))
        return False, float("nan"), (f"diverged: the loss is not finite from step {first}; "
                                     "lower the learning rate")
    residual = float(abs(ref - F) / F) if F > 0 else float(abs(ref - F))
    if F > losses[0]:
        return False, residual, (f"diverged: the loss rose from {losses[0]:.4g} to {F:.4g}; "
                                 "lower the learning rate")
    if steps - start < MIN_WINDOW:
        return False, residual, (f"too few steps ({steps}) to judge convergence: the last 10% of the "
                                 f"steps must span at least {MIN_WINDOW} (steps >= 100)")
    if residual > CONVERGED_RESIDUAL:
        return False, residual, (f"the loss still fell by {residual:.2g} (relative) over the last 10% of the "
                                 f"steps (tolerance {CONVERGED_RESIDUAL:g}); train longer")
    return True, residual, ""


def learning_rate_schedule(learning_rate: float, steps: int):
    """Linear warmup over the first 5% of the steps, then cosine decay to 1% of the peak."""
    _, _, optax = require_jax()
    warmup = max(1, int(WARMUP_FRACTION * steps))
    return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=learning_rate, warmup_steps=warmup,
                                              decay_steps=max(steps, warmup + 1),
                                              end_value=learning_rate * FINAL_LR_FRACTION)


def adam_train(loss_fn, weights, data, *, steps, learning_rate, batch_size=None, seed=0, progress=None,
               label="") -> TrainResult:
    """Minimize ``loss_fn(weights, *data)`` by Adam with :func:`learning_rate_schedule`.

    ``weights``: the initial weights, a pytree of arrays (its dtype sets the precision); ``data``: tuple of arrays with a
    leading prompt axis M. ``batch_size`` None: full batch (the default schedule); an integer B < M:
    each step uses B prompts drawn without replacement (key from ``seed``), and the final loss is the
    full-data mean over chunks of B, which requires ``loss_fn`` to be a plain mean over prompts.
    ``progress(msg)`` about ten times per run. ``losses[k]`` is the (batch) loss before update k and
    ``losses[-1]`` the full-data loss at the returned parameters.
    """
    jax, jnp, optax = require_jax()
    steps = check_int("steps", steps, lower=1)
    learning_rate = float(check_real("learning_rate", learning_rate, lower=0.0))
    optimizer = optax.adam(learning_rate_schedule(learning_rate, steps))
    state = optimizer.init(weights)

    n_prompts = int(data[0].shape[0])
    full = batch_size is None or int(batch_size) >= n_prompts
    B = n_prompts if full else check_int("batch_size", batch_size, lower=1)

    @jax.jit
    def step(p, s, batch, key):
        if not full:
            idx = jax.random.choice(key, n_prompts, (B,), replace=False)
            batch = tuple(a[idx] for a in batch)
        loss, grad = jax.value_and_grad(loss_fn)(p, *batch)
        updates, s = optimizer.update(grad, s, p)
        return optax.apply_updates(p, updates), s, loss

    jit_loss = jax.jit(loss_fn)

    def final(p, *arrays):
        if full:
            return jit_loss(p, *arrays)
        parts = [jit_loss(p, *(a[i:i + B] for a in arrays)) * min(B, n_prompts - i) for i in range(0, n_prompts, B)]
        return sum(parts) / n_prompts

    keys = jax.random.split(jax.random.PRNGKey(seed), steps)
    tc = time.perf_counter()
    step = step.lower(weights, state, data, keys[0]).compile()     # compile time reported apart
    compile_seconds = time.perf_counter() - tc
    history = []          # device scalars: no host sync per step
    every = max(1, steps // 10)
    start = time.perf_counter()
    for k in range(steps):
        weights, state, loss = step(weights, state, data, keys[k])
        history.append(loss)
        if progress is not None and (k + 1) % every == 0:
            progress(f"{label}step {k + 1}/{steps} loss {float(loss):.5g} ({time.perf_counter() - start:.1f} s)")
    history.append(final(weights, *data))
    losses = np.asarray(jnp.stack(history), dtype=np.float64)
    seconds = time.perf_counter() - start
    converged, residual, reason = convergence(losses, steps)
    host = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=np.float64), weights)
    return TrainResult(weights=host, losses=losses, steps=steps, seconds=seconds, compile_seconds=compile_seconds,
                       learning_rate=learning_rate, converged=converged, residual=residual, reason=reason)


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
