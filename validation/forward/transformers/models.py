r"""The three trained models, as pure JAX functions of a weight dict (imported only after
:func:`~lowrank_icl.validation.forward.transformers._backend.require_jax`).

Token embedding (all models): a prompt of context length L is the sequence of L + 1 tokens
z_l = (x_l, y_l) in R^{D+1}, the last one the query z_q = (x_{L+1}, 0) (label slot zero); tokens
x ~ N(0, I_D/D), labels y = <w, x> + sigma xi. No positional embedding (the prompt is a set).

``linear`` -- full one-layer linear self-attention, the model of
:mod:`lowrank_icl.validation.forward.attention` (the same function and objective):
    yhat = e_{D+1}^T V S W z_q,   S = (D/L) sum_{l<=L} z_l z_l^T,   V, W in R^{(D+1) x (D+1)},
fed the per-prompt statistics S (M, D+1, D+1) and queries x (M, D). Loss
mean (y - yhat)^2 + (lam M0 / M) ||V||_F^2 ||W||_F^2 (the ridge objective divided by M).

``softmax`` -- one-layer single-head softmax attention read at the query's label slot:
    q = W_Q z_q, k_t = W_K z_t, a = softmax_t(q . k_t / sqrt(d_a)) over all T = L + 1 tokens
    (the query included), yhat = sum_t a_t v . z_t,
with W_Q, W_K in R^{d_a x (D+1)} and v in R^{D+1} (the label row of the value matrix; the other rows
do not reach the output). d_a is the attention dimension (``attention_dim``). No biases, no output
projection; Glorot-uniform initialization. Linearizing the softmax for small scores gives
yhat ~ mean_t v.z_t + (1/T) sum_t (s_t - mean s) v.z_t, a linear attention whose key-query matrix
W_Q^T W_K / sqrt(d_a) has rank <= d_a: with d_a < r the model cannot represent the optimal
Gamma* = gamma A A^T of a rank-r task law.

``mlp`` -- a post-LayerNorm transformer with MLP blocks: a dense embedding R^{D+1} -> R^n (with
bias), then ``n_layers`` blocks of [causal single-head softmax self-attention (Q, K, V in R^{n x n},
no bias, scores / sqrt(n)), residual, LayerNorm, MLP Dense(n) -> GELU -> Dense(n) (biases),
residual, LayerNorm], and a dense readout R^n -> R at the query token. LeCun-normal kernels
(variance 1/fan_in), zero biases, LayerNorm scale 1 and offset 0. The last block is evaluated at the
query position only (the readout needs nothing else), which halves the cost and changes nothing.
"""
from __future__ import annotations

import math

import numpy as np

from lowrank_icl.validation.forward.transformers._backend import require_jax

MODELS = ("linear", "softmax", "mlp")


def tokens(X, y):
    """Token array Z (M, L+1, D+1) of prompts X (M, L+1, D), y (M, L+1): z = (x, y), query label 0."""
    X = np.asarray(X)
    y = np.array(y, copy=True)
    y[:, -1] = 0.0
    return np.concatenate([X, y[:, :, None]], axis=2)


# ----------------------------------------------------------------------------------------------
# initialization (numpy generators: reproducible across jax versions)

def init_linear(dim, seed, init_scale=1e-2):
    """V, W with i.i.d. N(0, init_scale^2/(D+1)) entries, drawn exactly as the numpy trainer draws
    them for the same seed (so both trainers start from the same point)."""
    rng = np.random.default_rng(seed)
    V = rng.standard_normal((dim + 1, dim + 1)) * (init_scale / np.sqrt(dim + 1))
    W = rng.standard_normal((dim + 1, dim + 1)) * (init_scale / np.sqrt(dim + 1))
    return {"V": V, "W": W}


def _glorot(rng, fan_out, fan_in):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_out, fan_in))


def init_softmax(dim, seed, attention_dim):
    rng = np.random.default_rng(seed)
    d = dim + 1
    return {"Wq": _glorot(rng, attention_dim, d), "Wk": _glorot(rng, attention_dim, d),
            "v": _glorot(rng, d, d)[-1]}


def _lecun(rng, fan_in, fan_out):
    return rng.standard_normal((fan_in, fan_out)) / math.sqrt(fan_in)


def init_mlp(dim, seed, width, n_layers=2):
    rng = np.random.default_rng(seed)
    n = width
    weights = {"embed": {"W": _lecun(rng, dim + 1, n), "b": np.zeros(n)}, "blocks": [],
              "readout": {"W": _lecun(rng, n, 1)[:, 0], "b": np.zeros(())}}
    for _ in range(n_layers):
        weights["blocks"].append({
            "Wq": _lecun(rng, n, n), "Wk": _lecun(rng, n, n), "Wv": _lecun(rng, n, n),
            "ln1": {"g": np.ones(n), "b": np.zeros(n)},
            "W1": _lecun(rng, n, n), "b1": np.zeros(n), "W2": _lecun(rng, n, n), "b2": np.zeros(n),
            "ln2": {"g": np.ones(n), "b": np.zeros(n)}})
    return weights


# ----------------------------------------------------------------------------------------------
# forward functions

def predict_linear(weights, S, xq):
    """yhat_mu = v^T S_mu W (x_mu, 0), v the last row of V."""
    _, jnp, _ = require_jax()
    b = xq @ weights["W"][:, :-1].T
    return jnp.einsum("mij,i,mj->m", S, weights["V"][-1], b)


def predict_softmax(weights, Z):
    jax, jnp, _ = require_jax()
    q = Z[:, -1] @ weights["Wq"].T                              # (M, d_a)
    k = Z @ weights["Wk"].T                                     # (M, T, d_a)
    scores = jnp.einsum("ma,mta->mt", q, k) / math.sqrt(weights["Wq"].shape[0])
    attn = jax.nn.softmax(scores, axis=-1)
    return jnp.sum(attn * (Z @ weights["v"]), axis=-1)


def _layer_norm(x, p, eps=1e-6):
    _, jnp, _ = require_jax()
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + eps) * p["g"] + p["b"]


def _block(p, h, last_only):
    """One transformer block on h (M, T, n); ``last_only``: output at the last position (M, 1, n)."""
    jax, jnp, _ = require_jax()
    n = h.shape[-1]
    k, v = h @ p["Wk"], h @ p["Wv"]
    if last_only:
        hq = h[:, -1:]
        scores = jnp.einsum("mqn,mtn->mqt", hq @ p["Wq"], k) / math.sqrt(n)
    else:
        hq = h
        T = h.shape[1]
        scores = jnp.einsum("mqn,mtn->mqt", h @ p["Wq"], k) / math.sqrt(n)
        # additive mask: finite, and cheaper under XLA's CPU backend than a select with -inf
        scores = scores + jnp.where(jnp.tril(jnp.ones((T, T), dtype=bool)), 0.0, -1e9).astype(scores.dtype)
    x = _layer_norm(hq + jax.nn.softmax(scores, axis=-1) @ v, p["ln1"])
    m = jax.nn.gelu(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    return _layer_norm(x + m, p["ln2"])


def predict_mlp(weights, Z):
    h = Z @ weights["embed"]["W"] + weights["embed"]["b"]
    blocks = weights["blocks"]
    for i, p in enumerate(blocks):
        h = _block(p, h, last_only=(i == len(blocks) - 1))
    return h[:, -1] @ weights["readout"]["W"] + weights["readout"]["b"]


PREDICT = {"linear": predict_linear, "softmax": predict_softmax, "mlp": predict_mlp}


def parameter_count(weights) -> int:
    jax, _, _ = require_jax()
    return int(sum(np.size(a) for a in jax.tree_util.tree_leaves(weights)))
