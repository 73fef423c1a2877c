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
    kappa      task diversity, M0 = kappa D distinct tasks            kappa > 0 or inf
    rho        task rank ratio, r = rho D                             0 < rho <= 1
    sigma      label-noise standard deviation (a std, not variance)   sigma >= 0
    lam        ridge strength, penalty lam * M0 * ||Gamma||_F^2       lam >= 0
    =========  =====================================================  ================

    Fields may be numpy arrays; they broadcast against each other. kappa = inf (``np.inf``) is
    a fresh task for every prompt (the full-rank paper's kappa = -1); it requires lam = 0, since
    the penalty lam M0 ||Gamma||_F^2 is infinite otherwise.

    ``FLOAT64_RANGE`` is the box the float64 solver accepts (``solve(..., precision=N)`` accepts
    every valid value): beyond it the moments (powers of nu = (1 + sigma^2)/alpha + u) leave the
    float64 exponent range.

    Full-rank paper (Lu, Letey, Zavatone-Veth, Maiti, Pehlevan 2025) conventions: rho = 1,
    their noise is the variance rho_Lu = sigma^2 and their ridge is lam_Lu (n/d)||Gamma||^2,
    so lam_Lu = lam kappa / tau. Use :meth:`from_full_rank` and :meth:`to_full_rank`.

    Parameters
    ----------
    alpha, tau, kappa : float or array_like
        Context length L / D, pretraining prompts M / D^2, task diversity M0 / D (``np.inf`` allowed).
    rho : float or array_like
        Task rank ratio r / D.
    sigma : float or array_like
        Label-noise standard deviation.
    lam : float or array_like
        Ridge strength (penalty lam M0 ||Gamma||_F^2).
    """

    alpha: np.ndarray | float
    tau: np.ndarray | float
    kappa: np.ndarray | float
    rho: np.ndarray | float = 1.0
    sigma: np.ndarray | float = 0.0
    lam: np.ndarray | float = 0.0

    FLOAT64_RANGE = {"alpha": (1e-30, 1e30), "tau": (1e-30, 1e30), "kappa": (1e-30, 1e30), "rho": (1e-30, 1.0),
                     "sigma": (0.0, 1e15), "lam": (1e-30, 1e30)}

    def __post_init__(self):
        checked = {
            "alpha": check_real("alpha", self.alpha, lower=0.0),
            "tau": check_real("tau", self.tau, lower=0.0),
            "kappa": check_real("kappa", self.kappa, lower=0.0, allow_inf=True),
            "rho": check_real("rho", self.rho, lower=0.0, upper=1.0),
            "sigma": check_real("sigma", self.sigma, lower=0.0, lower_inclusive=True),
            "lam": check_real("lam", self.lam, lower=0.0, lower_inclusive=True),
        }
        try:
            np.broadcast_shapes(*(v.shape for v in checked.values()))
        except ValueError:
            shapes = {k: v.shape for k, v in checked.items()}
            raise ValueError(f"parameters must broadcast against each other (shapes {shapes})") from None
        infinite = np.broadcast_arrays(np.isinf(checked["kappa"]), checked["lam"] > 0)
        if np.any(infinite[0] & infinite[1]):
            raise ValueError("kappa = inf requires lam = 0 (the ridge penalty lam M0 ||Gamma||_F^2 is infinite "
                             "when M0 is)")
        for name, value in checked.items():
            object.__setattr__(self, name, value[()] if value.ndim == 0 else value)

    def check_float64_range(self) -> None:
        """Raise ValueError naming the parameter if a value lies outside ``FLOAT64_RANGE``
        (lam = 0, sigma = 0 and kappa = inf are always allowed)."""
        for name, (lo, hi) in self.FLOAT64_RANGE.items():
            arr = np.asarray(getattr(self, name), dtype=float)
            bad = (arr > hi) if name == "sigma" else ((arr < lo) | (arr > hi))
            if name == "lam":
                bad &= arr != 0
            if name == "kappa":
                bad &= ~np.isinf(arr)
            if np.any(bad):
                got = float(arr[bad].flat[0]) if arr.ndim else float(arr)
                zero = " or 0" if name == "lam" else (" or inf" if name == "kappa" else "")
                span = f"<= {hi:g}" if name == "sigma" else f"in [{lo:g}, {hi:g}]{zero}"
                raise ValueError(f"{name} = {got:g} is outside the float64 solver's range ({name} {span}); "
                                 f"use solve(..., precision=N) for it")

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
        kappa = check_real("kappa", kappa, lower=0.0, allow_inf=True)
        if np.any(np.isinf(kappa) & (lam_lu > 0)):
            raise ValueError("lam_lu > 0 with kappa = inf has no counterpart here (lam = lam_lu tau/kappa = 0); "
                             "use lam_lu = 0 or a finite kappa")
        return cls(alpha=alpha, tau=tau, kappa=kappa, rho=1.0, sigma=np.sqrt(rho_lu),
                   lam=lam_lu * tau / kappa)

    def to_full_rank(self) -> dict[str, np.ndarray | float]:
        """The full-rank paper's symbols (alpha, tau, kappa, rho_lu, lam_lu); requires rho = 1."""
        if not np.all(np.asarray(self.rho) == 1.0):
            raise ValueError("to_full_rank requires rho == 1 (the full-rank paper has no task subspace)")
        with np.errstate(invalid="ignore"):
            lam_lu = np.where(np.asarray(self.lam) > 0, self.lam * np.asarray(self.kappa, float) / self.tau, 0.0)
        return {"alpha": self.alpha, "tau": self.tau, "kappa": self.kappa,
                "rho_lu": np.square(self.sigma), "lam_lu": lam_lu[()]}
