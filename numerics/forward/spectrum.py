r"""Task spectra: the pretraining task law and the test task law, as spectral pairs.

Pretraining tasks are w ~ N(0, Sigma) with Sigma = O diag(s) O^T; a test task has second moment
Sigma'. In the proportional limit the theory depends on the two laws only through the spectral
pairs (s_i, t_i), where t_i = o_i^T Sigma' o_i is Sigma' read on Sigma's eigenbasis (derivation in
docs/general_spectra.md). A :class:`TaskSpectrum` is a finite list of such pairs ("atoms") with
probability weights: a fraction ``weights[i]`` of the D directions has train variance ``train[i]``
and test variance ``test[i]``.

The spectra are used as given: E|w|^2 = D * mean(s) and E|w'|^2 = D * mean(t). The rank-r model
of the rest of the toolkit is ``TaskSpectrum.low_rank(rho)``: s = 1/rho on a fraction rho of the
directions and 0 elsewhere (so mean(s) = 1), with the isotropic test law t = 1.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lowrank_icl.numerics._checks import check_real


# Scale limits: atoms at most ATOM_MAX and mean(s) inside MEAN_RANGE, with max(s)/mean(s) <= ATOM_MAX.
# The solver normalizes s by its mean and forms s^3 and nu^2 products, which stay inside float64's
# exponent range there (atoms of 1e308, or a mean of 1e-300 that turns sigma^2/mean into 1e300, do not).
ATOM_MAX = 1e30
MEAN_RANGE = (1e-30, 1e30)
# Most atoms a spectrum may hold (three float64 arrays of 24 MB); merge finer spectra into cells.
MAX_ATOMS = 1_000_000


def _as_atoms(name: str, value, ranged: bool = True) -> np.ndarray:
    arr = check_real(name, value, lower=0.0, lower_inclusive=True)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of nonnegative numbers (got shape {arr.shape})")
    if arr.size > MAX_ATOMS:
        raise ValueError(f"{name} has {arr.size} atoms, more than the limit {MAX_ATOMS}: merge atoms into cells")
    if ranged and np.any(arr > ATOM_MAX):
        raise ValueError(f"{name} atoms must be <= {ATOM_MAX:g} (got {float(arr.max()):g}); rescale the spectrum "
                         "(the errors scale with its mean)")
    return arr


@dataclass(frozen=True, eq=False)
class TaskSpectrum:
    r"""Spectral pairs (s_i, t_i) with weights p_i (sum p_i = 1) of the train and test task laws.

    ``TaskSpectrum(train=s, test=t, weights=None)``: s and t are 1-D arrays of the same length,
    nonnegative and finite; ``weights`` (default: equal) are nonnegative with a positive sum and are
    normalized to sum to 1. mean(s) = sum p_i s_i must be positive. Atoms of zero weight are dropped.

    * train law (IDG tasks): second moment Sigma with eigenvalues s;
    * test law ("odg" error): second moment Sigma' with diagonal t in Sigma's eigenbasis;
    * ``test=None`` means the isotropic test law t = 1.

    Parameters
    ----------
    train : array_like
        Eigenvalues s_i of the pretraining task second moment Sigma (E[w^T w] / D = sum p_i s_i).
    test : array_like, optional
        Diagonal t_i of the test second moment Sigma' in Sigma's eigenbasis (default: t = 1).
    weights : array_like, optional
        Weights p_i of the atoms (default: equal).
    """

    train: np.ndarray
    test: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __post_init__(self):
        s = _as_atoms("train", self.train)
        t = np.ones_like(s) if self.test is None else _as_atoms("test", self.test)
        if t.shape != s.shape:
            raise ValueError(f"train and test must have the same length (got {s.size} and {t.size})")
        if self.weights is None:
            p = np.full(s.shape, 1.0 / s.size)
        else:
            p = _as_atoms("weights", self.weights, ranged=False)
            if p.shape != s.shape:
                raise ValueError(f"weights must have the length of train (got {p.size} and {s.size})")
            if not p.sum() > 0:
                raise ValueError("weights must have a positive sum")
            p = p / p.sum()
        keep = p > 0
        s, t, p = s[keep], t[keep], p[keep]
        if not float(np.dot(p, s)) > 0:
            raise ValueError("train must have a positive mean (the pretraining tasks would all be zero)")
        mean = float(np.dot(p, s))
        if not MEAN_RANGE[0] <= mean <= MEAN_RANGE[1] or float(s.max()) / mean > ATOM_MAX:
            raise ValueError(f"train must have a mean in [{MEAN_RANGE[0]:g}, {MEAN_RANGE[1]:g}] and atoms at most "
                             f"{ATOM_MAX:g} times the mean (got mean {mean:g}, largest atom {float(s.max()):g}); "
                             "rescale the spectrum (the errors scale with its mean)")
        for name, arr in (("train", s), ("test", t), ("weights", p)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # ------------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of atoms."""
        return int(self.train.size)

    @property
    def train_mean(self) -> float:
        """mean(s) = E[w^T w] / D for a pretraining task."""
        return float(np.dot(self.weights, self.train))

    @property
    def test_mean(self) -> float:
        """mean(t) = E[w'^T w'] / D for a test task."""
        return float(np.dot(self.weights, self.test))

    def __repr__(self) -> str:
        return (f"TaskSpectrum({self.size} atoms, mean(s)={self.train_mean:.6g}, mean(t)={self.test_mean:.6g}, "
                f"s in [{self.train.min():.4g}, {self.train.max():.4g}], t in [{self.test.min():.4g}, "
                f"{self.test.max():.4g}])")

    def to_dict(self) -> dict:
        return {"train": self.train.tolist(), "test": self.test.tolist(), "weights": self.weights.tolist()}

    # ------------------------------------------------------------------------------------------
    # test-law helpers
    def with_test(self, test) -> "TaskSpectrum":
        """The same train law with another test diagonal t (one value per atom)."""
        return TaskSpectrum(train=self.train, test=test, weights=self.weights)

    def aligned(self) -> "TaskSpectrum":
        """Test law = train law (t = s): the "odg" error is then the IDG error."""
        return self.with_test(self.train)

    def isotropic(self) -> "TaskSpectrum":
        """Isotropic test law, Sigma' = I (t = 1)."""
        return self.with_test(np.ones_like(self.train))

    def subspace_test(self, rho_test: float, theta: float) -> "TaskSpectrum":
        r"""Test tasks on a rank-r' subspace B (r' = rho_test D, Sigma' = P_B / rho_test, mean(t) = 1)
        whose principal angles with the top-r' eigenspace A of Sigma all equal ``theta`` (radians).

        B's components in A and in A's complement are taken Haar-random within each, so in the limit
        t = cos^2(theta)/rho_test on the top weight fraction rho_test of the train atoms (largest s)
        and t = sin^2(theta)/(1 - rho_test) on the rest. theta = 0 with a rank-r' train law gives the
        aligned test law; theta = pi/2 puts every test task orthogonal to the pretraining subspace.
        Requires rho_test <= 1/2 when sin(theta) > 0 (B must fit in A's complement). An atom that
        straddles the fraction rho_test is split in two.
        """
        rho_test = float(check_real("rho_test", rho_test, lower=0.0, upper=1.0))
        theta = float(check_real("theta", theta, lower=0.0, lower_inclusive=True, upper=np.pi / 2))
        cos2, sin2 = np.cos(theta) ** 2, np.sin(theta) ** 2
        if sin2 > 1e-300 and rho_test > 0.5:
            raise ValueError(f"rho_test must be <= 0.5 for theta > 0 (got {rho_test})")
        order = np.argsort(-self.train, kind="stable")
        s, p = self.train[order], self.weights[order]
        cum = np.cumsum(p)
        before = cum - p
        top_part = np.clip(rho_test - before, 0.0, p)  # weight of each atom inside the top fraction
        rest_part = p - top_part
        s_new = np.concatenate([s, s])
        p_new = np.concatenate([top_part, rest_part])
        t_rest = sin2 / (1.0 - rho_test) if rho_test < 1 else 0.0
        t_new = np.concatenate([np.full(s.shape, cos2 / rho_test), np.full(s.shape, t_rest)])
        keep = p_new > 0
        return TaskSpectrum(train=s_new[keep], test=t_new[keep], weights=p_new[keep])

    # ------------------------------------------------------------------------------------------
    # named families (all with mean(s) = 1 and the isotropic test law unless a test= is given)
    @classmethod
    def low_rank(cls, rho: float, test: str = "isotropic") -> "TaskSpectrum":
        """The rank-r model: s = 1/rho on a fraction rho, 0 elsewhere. test: "isotropic" or "aligned"."""
        rho = float(check_real("rho", rho, lower=0.0, upper=1.0))
        spec = cls(train=[1.0 / rho, 0.0], weights=[rho, 1.0 - rho])
        return _with_named_test(spec, test)

    @classmethod
    def approx_low_rank(cls, rho: float, floor: float, test: str = "isotropic") -> "TaskSpectrum":
        """Rank r plus an isotropic floor, renormalized: Sigma proportional to P_A/rho + floor I.

        s = (1/rho + floor)/(1 + floor) on a fraction rho and floor/(1 + floor) elsewhere (mean 1).
        floor = 0 is :meth:`low_rank`; floor -> infinity is isotropic.
        """
        rho = float(check_real("rho", rho, lower=0.0, upper=1.0))
        floor = float(check_real("floor", floor, lower=0.0, lower_inclusive=True))
        spec = cls(train=[(1.0 / rho + floor) / (1.0 + floor), floor / (1.0 + floor)], weights=[rho, 1.0 - rho])
        return _with_named_test(spec, test)

    @classmethod
    def power_law(cls, exponent: float, atoms: int = 1000, test: str = "isotropic") -> "TaskSpectrum":
        r"""Quantile density s(u) = (1 - a) u^(-a), u in (0, 1), a = ``exponent`` < 1 (mean 1).

        Discretized on ``atoms`` equal-weight cells by exact cell averages,
        s_i = n [(i/n)^(1-a) - ((i-1)/n)^(1-a)], so mean(s) = 1 exactly; this is also the D-point
        discretization a simulation at D = atoms uses. a = 0 is isotropic; a -> 1 concentrates the
        variance on few directions (s_1 grows like n^a).
        """
        a = float(check_real("exponent", exponent, upper=1.0, upper_inclusive=False))
        n = int(atoms)
        if n < 1 or n > MAX_ATOMS:
            raise ValueError(f"atoms must be an integer >= 1 and <= {MAX_ATOMS} (got {atoms})")
        edges = (np.arange(n + 1) / n) ** (1.0 - a)
        spec = cls(train=n * np.diff(edges))
        return _with_named_test(spec, test)

    @classmethod
    def spiked(cls, strength: float, fraction: float, test: str = "isotropic") -> "TaskSpectrum":
        """A fraction ``fraction`` of directions with variance ``strength`` times the bulk (mean 1).

        s = strength/(1 + fraction (strength - 1)) on the spiked fraction, 1/(1 + fraction (strength - 1))
        elsewhere. strength = 1 is isotropic; strength -> infinity is low_rank(fraction).
        """
        strength = float(check_real("strength", strength, lower=0.0, lower_inclusive=True))
        fraction = float(check_real("fraction", fraction, lower=0.0, upper=1.0))
        norm = 1.0 + fraction * (strength - 1.0)
        spec = cls(train=[strength / norm, 1.0 / norm], weights=[fraction, 1.0 - fraction])
        return _with_named_test(spec, test)

    @classmethod
    def isotropic_tasks(cls) -> "TaskSpectrum":
        """Sigma = Sigma' = I: the full-rank model (Lu et al.)."""
        return cls(train=[1.0])

    # ------------------------------------------------------------------------------------------
    # parsing (CLI) and files
    @classmethod
    def parse(cls, text: str) -> "TaskSpectrum":
        """A named family or a file: ``lowrank:RHO``, ``approx-lowrank:RHO,FLOOR``, ``power:EXPONENT``
        (optionally ``power:EXPONENT,ATOMS``), ``spiked:STRENGTH,FRACTION``, or a path to a .json
        ({"train": [...], "test": [...], "weights": [...]}; test and weights optional) or .npz (arrays
        train, test, optional weights)."""
        text = str(text).strip()
        if text.endswith((".json", ".npz")):
            return cls.load(text)
        name, _, args = text.partition(":")
        try:
            values = [float(v) for v in args.split(",")] if args else []
        except ValueError:
            raise ValueError(f"spectrum {text!r}: parameters must be numbers") from None
        families = {"lowrank": (cls.low_rank, 1), "approx-lowrank": (cls.approx_low_rank, 2),
                    "power": (cls.power_law, (1, 2)), "spiked": (cls.spiked, 2)}
        if name not in families:
            raise ValueError(f"spectrum must be one of lowrank:RHO, approx-lowrank:RHO,FLOOR, power:EXPONENT, "
                             f"spiked:STRENGTH,FRACTION or a .json/.npz file (got {text!r})")
        build, arity = families[name]
        arities = arity if isinstance(arity, tuple) else (arity,)
        if len(values) not in arities:
            raise ValueError(f"spectrum {name} takes {' or '.join(map(str, arities))} parameter(s) (got {text!r})")
        if name == "power" and len(values) == 2:
            if not float(values[1]).is_integer():
                raise ValueError(f"power spectrum atoms must be an integer (got {values[1]})")
            return build(values[0], atoms=int(values[1]))
        return build(*values)

    @classmethod
    def load(cls, path) -> "TaskSpectrum":
        """Read a .json (UTF-8, a byte-order mark allowed) or .npz file (``np.savez``) with arrays
        train, test (optional) and weights (optional) of real numbers (booleans are refused)."""
        import zipfile
        path = Path(path)
        where = f"spectrum file {str(path)!r}"
        if path.is_dir():
            raise ValueError(f"{where} is a folder, not a file")
        if not path.is_file():
            raise ValueError(f"{where} does not exist")
        try:
            if path.suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8-sig"))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            else:
                if not zipfile.is_zipfile(path):
                    raise ValueError(f"{where} is not an .npz archive (a zip of .npy arrays, as np.savez writes)")
                with np.load(path, allow_pickle=False) as npz:
                    data = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            if str(exc).startswith(where):
                raise
            raise ValueError(f"{where} could not be read ({exc})") from None
        if "train" not in data:
            raise ValueError(f"{where} must hold a 'train' array")
        unknown = set(data) - {"train", "test", "weights"}
        if unknown:
            raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
        for key, value in data.items():
            if value is not None and (np.asarray(value).dtype.kind == "b" or _has_bool(value)):
                raise ValueError(f"{where}: {key} must hold numbers, not booleans")
        return cls(train=data["train"], test=data.get("test"), weights=data.get("weights"))


def _has_bool(value) -> bool:
    """True if a JSON value (nested lists) holds a boolean (numpy would read it as 0 or 1)."""
    if isinstance(value, bool):
        return True
    return isinstance(value, list) and any(_has_bool(v) for v in value)


def _with_named_test(spec: TaskSpectrum, test: str) -> TaskSpectrum:
    if test == "isotropic":
        return spec
    if test == "aligned":
        return spec.aligned()
    raise ValueError(f"test must be 'isotropic' or 'aligned' (got {test!r})")


__all__ = ["TaskSpectrum", "ATOM_MAX", "MEAN_RANGE", "MAX_ATOMS"]
