"""Lazy access to the optional JAX stack (the ``[nn]`` extra).

Nothing in this package imports jax at import time; every entry point calls :func:`require_jax`
first, which imports jax and optax or raises :class:`MissingExtraError` naming the extra to install.
"""
from __future__ import annotations

import contextlib

INSTALL_HINT = "pip install 'lowrank-icl[nn]'"


class MissingExtraError(ImportError, ValueError):
    """jax or optax is not installed. A ValueError too, so the CLI turns it into one line + exit 2."""


def require_jax():
    """Import and return (jax, jax.numpy, optax), or raise :class:`MissingExtraError`."""
    try:
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError(f"trained transformers need jax and optax ({exc.name or exc} is missing); "
                                f"install them with: {INSTALL_HINT}") from None
    return jax, jnp, optax


def x64(enabled: bool):
    """Context manager switching JAX to float64 inside (jax >= 0.7: jax.enable_x64; older: experimental)."""
    jax, _, _ = require_jax()
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(bool(enabled))
    from jax.experimental import enable_x64, disable_x64  # jax 0.4.x
    return enable_x64() if enabled else (disable_x64() if hasattr(jax.experimental, "disable_x64")
                                         else contextlib.nullcontext())
