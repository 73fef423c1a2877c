"""The parameter object of the forward model, validated once at the boundary."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowrank_icl.numerics._checks import check_real


@dataclass(frozen=True)
class ForwardParams:
    r"""Parameters of the low-rank forward ICL model (Takanami, Takahashi, Kabashima 2025).

    All are proportional-limit ratios, D -> infinity:

    =========  =====================================================  ================
    field      meaning                                                valid range
    =========  =====================================================  ================
    alpha      context length ratio, L = alpha D                      alpha > 0
    tau        number of pretraining prompts, M = tau D^2             tau > 0
    kappa      task diversity, M0 = kappa D distinct tasks            kappa > 0
    rho        task rank ratio, r = rho D                             0 < rho <= 1
    sigma      label-noise standard deviation (a std, not variance)   sigma >= 0
    lam        ridge strength, penalty lam * M0 * ||Gamma||_F^2       lam >= 0
    =========  =====================================================  ================

    Fields may be numpy arrays; they broadcast against each other.

    Full-rank paper (Lu, Letey, Zavatone-Veth, Maiti, Pehlevan 2025) conventions: rho = 1,
    their noise is the variance rho_Lu = sigma^2 and their ridge is lam_Lu (n/d)||Gamma||^2,
    so lam_Lu = lam kappa / tau. Use :meth:`from_full_rank` and :meth:`to_full_rank`.
    """

    alpha: np.ndarray | float
    tau: np.ndarray | float
    kappa: np.ndarray | float
    rho: np.ndarray | float = 1.0
    sigma: np.ndarray | float = 0.0
    lam: np.ndarray | float = 0.0

    def __post_init__(self):
        checked = {
            "alpha": check_real("alpha", self.alpha, lower=0.0),
            "tau": check_real("tau", self.tau, lower=0.0),
            "kappa": check_real("kappa", self.kappa, lower=0.0),
            "rho": check_real("rho", self.rho, lower=0.0, upper=1.0),
            "sigma": check_real("sigma", self.sigma, lower=0.0, lower_inclusive=True),
            "lam": check_real("lam", self.lam, lower=0.0, lower_inclusive=True),
        }
        try:
            np.broadcast_shapes(*(v.shape for v in checked.values()))
        except ValueError:
            shapes = {k: v.shape for k, v in checked.items()}
            raise ValueError(f"parameters must broadcast against each other (shapes {shapes})") from None
        for name, value in checked.items():
            object.__setattr__(self, name, value[()] if value.ndim == 0 else value)

    @property
    def shape(self) -> tuple[int, ...]:
        """Broadcast shape of the parameters."""
        return np.broadcast_shapes(*(np.shape(getattr(self, f)) for f in self.field_names()))

    @staticmethod
    def field_names() -> tuple[str, ...]:
        return ("alpha", "tau", "kappa", "rho", "sigma", "lam")

    def broadcast(self) -> dict[str, np.ndarray]:
        """All fields as float arrays of the common broadcast shape."""
        arrays = np.broadcast_arrays(*(np.asarray(getattr(self, f), float) for f in self.field_names()))
        return dict(zip(self.field_names(), arrays))

    @classmethod
    def from_full_rank(cls, alpha, tau, kappa, rho_lu, lam_lu=0.0) -> "ForwardParams":
        """Build from the full-rank paper's symbols: noise variance rho_Lu, ridge lam_Lu.

        sigma = sqrt(rho_Lu), lam = lam_Lu tau / kappa, rho = 1.
        """
        rho_lu = check_real("rho_lu", rho_lu, lower=0.0, lower_inclusive=True)
        lam_lu = check_real("lam_lu", lam_lu, lower=0.0, lower_inclusive=True)
        tau = check_real("tau", tau, lower=0.0)
        kappa = check_real("kappa", kappa, lower=0.0)
        return cls(alpha=alpha, tau=tau, kappa=kappa, rho=1.0, sigma=np.sqrt(rho_lu),
                   lam=lam_lu * tau / kappa)

    def to_full_rank(self) -> dict[str, np.ndarray | float]:
        """The full-rank paper's symbols (alpha, tau, kappa, rho_lu, lam_lu); requires rho = 1."""
        if not np.all(np.asarray(self.rho) == 1.0):
            raise ValueError("to_full_rank requires rho == 1 (the full-rank paper has no task subspace)")
        return {"alpha": self.alpha, "tau": self.tau, "kappa": self.kappa,
                "rho_lu": np.square(self.sigma), "lam_lu": self.lam * self.kappa / self.tau}
