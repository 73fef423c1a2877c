r"""The three test protocols of the forward model, in the order every result reports them.

- ``"tm"`` -- task memorization: the test task is drawn uniformly from the pretraining pool;
- ``"idg"`` -- in-distribution generalization: a fresh task of the pool's distribution,
  w = sqrt(D/r) A v with v ~ N(0, I_r) for the pool's subspace A (or the spectrum's law);
- ``"odg"`` -- out-of-distribution generalization: an isotropic task, E w w^T = I (or the test law
  of a spectrum).
"""

PROTOCOLS = ("tm", "idg", "odg")

__all__ = ["PROTOCOLS"]
