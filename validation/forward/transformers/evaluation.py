r"""Test errors of trained models: exact for the linear attention, sampled (mean, SE) for all.

Test protocols (the same task laws as the reduced model): TM draws a task of the pretraining pool,
IDG a fresh task w = sqrt(D/r) A v of the pool's subspace A, ODG a fresh task of a fresh Haar
subspace for every prompt (E w w^T = I). A test prompt has L~ = round(alpha_t D) context tokens and
a query, fresh tokens x ~ N(0, I/D) and labels with noise std sigma_t; the error is
E (y_q - yhat)^2 in squared label units.

- :func:`exact_linear_errors`: the linear attention's prediction is a polynomial in the prompt, so
  its test error has a closed form (effective Gamma + bypass terms;
  :func:`lowrank_icl.validation.forward.attention.attention_test_error`). No sampling, no SE.
- :func:`sampled_errors`: n fresh explicit prompts per protocol; mean and standard error of the
  squared error. Prompts are drawn by numpy from ``seed`` and fed to the model in chunks that bound
  the memory of the attention scores.
"""
from __future__ import annotations

import numpy as np

from lowrank_icl.validation.forward.attention import TaskLaw, attention_test_error
from lowrank_icl.validation.forward.transformers.models import tokens
from lowrank_icl.numerics.results import ProtocolErrors
from lowrank_icl.validation.stats import Estimate, EstimatedErrors

_SCORE_BUDGET = 1 << 23      # floats in one chunk's attention scores (chunk * T * T)


def task_laws(pool, subspace) -> dict:
    """{"tm", "idg", "odg"} -> :class:`TaskLaw` for a pool (M0 x D) and its subspace A (D x r)."""
    dim, rank = subspace.shape
    return {"tm": TaskLaw.pool(pool), "idg": TaskLaw.subspace(subspace),
            "odg": TaskLaw.fresh_subspace(dim, rank)}


def exact_linear_errors(weights, laws, context_length, sigma_test) -> ProtocolErrors:
    """Exact test errors (tm, idg, odg) of the linear attention {"V", "W"} at test context L~."""
    return ProtocolErrors(**{p: float(attention_test_error(weights["V"], weights["W"], law, context_length,
                                                           sigma_test)) for p, law in laws.items()})


def sampled_errors(predict_tokens, laws, context_length, sigma_test, n_prompts, seed) -> EstimatedErrors:
    """Estimates (over ``n_prompts`` fresh prompts per protocol) of (y_q - yhat)^2.

    ``predict_tokens(Z)`` maps a token array (k, L~+1, D+1) (query label 0) to k predictions.
    """
    out = {}
    for i, (name, law) in enumerate(laws.items()):
        rng = np.random.default_rng([int(seed), 7919, i])
        dim = law.dim
        T = int(context_length) + 1
        chunk = int(max(1, min(n_prompts, _SCORE_BUDGET // (T * T))))
        sq = np.empty(n_prompts)
        for s in range(0, n_prompts, chunk):
            k = min(chunk, n_prompts - s)
            w = law.sample(k, rng)
            X = rng.standard_normal((k, T, dim)) / np.sqrt(dim)
            y = np.einsum("ntd,nd->nt", X, w) + sigma_test * rng.standard_normal((k, T))
            sq[s:s + k] = (y[:, -1] - np.asarray(predict_tokens(tokens(X, y)), dtype=np.float64)) ** 2
        out[name] = Estimate.of(sq)
    return EstimatedErrors(**out)
