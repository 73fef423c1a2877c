r"""The joint law of (y, yhat) over test prompts, from a solved saddle point: :func:`prediction_law`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowrank_icl.numerics._checks import check_real
from lowrank_icl.numerics.forward.crossover import PROTOCOL_NAMES


@dataclass(frozen=True)
class PredictionLaw:
    r"""Joint Gaussian law of (y, yhat) over test prompts for one protocol (D -> infinity).

    Var y = 1 + sigma_t^2, Cov(y, yhat) = m_X, Var yhat = q_X + (1 + sigma_t^2) q_bar/alpha_t, split
    into the signal, noise_T and noise_R parts of q_X and the finite-context part
    (1 + sigma_t^2) q_bar/alpha_t. Consistency: Var y - 2 Cov + Var yhat = e_X.

    Attributes
    ----------
    var_y, cov, var_yhat : ndarray
        Var y, Cov(y, yhat), Var yhat.
    signal, noise_T, noise_R, finite_context : ndarray
        The parts of Var yhat.
    """

    var_y: np.ndarray
    cov: np.ndarray
    var_yhat: np.ndarray
    signal: np.ndarray
    noise_T: np.ndarray
    noise_R: np.ndarray
    finite_context: np.ndarray

    @property
    def correlation(self):
        return self.cov / np.sqrt(self.var_y * self.var_yhat)

    @property
    def error(self):
        """E (y - yhat)^2 = Var y - 2 Cov + Var yhat."""
        return self.var_y - 2 * self.cov + self.var_yhat

    def covariance_matrix(self):
        """2 x 2 covariance of (y, yhat) (scalar inputs)."""
        return np.array([[self.var_y, self.cov], [self.cov, self.var_yhat]], dtype=float)


def prediction_law(result, protocol: str = "idg", alpha_test=None, sigma_test=None) -> PredictionLaw:
    """The law of (y, yhat) under protocol "tm", "idg" or "odg" from a solved saddle point (float64).

    The parts of Var yhat are those of ``result.decomposition()`` (one home for the split).
    Raises ValueError if the solution did not converge.

    Parameters
    ----------
    result : ForwardSolution
        A converged float64 solution.
    protocol : {'tm', 'idg', 'odg'}
        The test tasks.
    alpha_test, sigma_test : float, optional
        Test context ratio and noise (default: the training ones).

    Returns
    -------
    PredictionLaw
    """
    if protocol not in PROTOCOL_NAMES:
        raise ValueError(f"protocol must be one of {PROTOCOL_NAMES} (got {protocol!r})")
    if not np.all(result.converged):
        raise ValueError("prediction_law needs a converged solution (result.converged is False somewhere: "
                         f"{np.atleast_1d(result.reason)[~np.atleast_1d(result.converged)][0]})")
    a_t = result.params.alpha if alpha_test is None else check_real("alpha_test", alpha_test, lower=0.0)
    s_t = result.params.sigma if sigma_test is None else check_real(
        "sigma_test", sigma_test, lower=0.0, lower_inclusive=True)
    dec = result.decomposition()
    overlap, split = {"tm": (result.m, dec.q), "idg": (result.m0, dec.q0), "odg": (result.m_bar, dec.q_bar)}[protocol]
    finite_context = (1 + s_t**2) * result.q_bar / a_t
    var_yhat = split.signal + split.noise_T + split.noise_R + finite_context
    return PredictionLaw(var_y=1 + s_t**2 + 0 * var_yhat, cov=overlap + 0 * var_yhat, var_yhat=var_yhat,
                         signal=split.signal, noise_T=split.noise_T, noise_R=split.noise_R,
                         finite_context=finite_context)


