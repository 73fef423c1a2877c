r"""Trained transformers on the forward model's pretraining data (optional extra ``[nn]``: jax, optax).

Three models are trained with Adam on the same prompts the reduced linear model sees for a seed
(:func:`train_transformer`): the full one-layer linear attention (a second implementation of
:mod:`lowrank_icl.validation.forward.attention`, checked against its L-BFGS minimum), a one-layer
softmax attention, and a multi-layer transformer with MLP blocks (:mod:`.models` documents the
architectures and the token embedding, :mod:`.training` the schedule, :mod:`.evaluation` the test
protocols). Importing this package does not import jax; the functions do, and raise
:class:`MissingExtraError` (an ImportError and a ValueError) with the install command when it is
missing.
"""
from lowrank_icl.validation.forward.transformers._backend import INSTALL_HINT, MissingExtraError, require_jax
from lowrank_icl.validation.forward.transformers.experiment import (DEFAULT_LEARNING_RATE, DEFAULT_STEPS, MODELS,
                                                                   TransformerResult, train_transformer)

__all__ = ["train_transformer", "TransformerResult", "MODELS", "DEFAULT_STEPS", "DEFAULT_LEARNING_RATE",
           "MissingExtraError", "require_jax", "INSTALL_HINT"]
