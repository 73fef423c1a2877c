"""The parameter grid of a sweep: swept parameters (lists) and fixed ones (scalars).

``Grid.from_mapping(dict(alpha=[1, 2, 4], kappa=[0.5, 1], tau=2, rho=0.5))`` sweeps alpha and kappa
over their outer product and holds tau and rho fixed; sigma and lam take the defaults of
:func:`lowrank_icl.numerics.solve` (0). Swept parameters become dataset dimensions in the model's
order alpha, tau, kappa, rho, sigma, lam, whatever the order of the mapping.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from lowrank_icl.numerics import ForwardParams

PARAMETERS = ForwardParams.field_names()          # alpha, tau, kappa, rho, sigma, lam
REQUIRED = ("alpha", "tau", "kappa")
DEFAULTS = {"rho": 1.0, "sigma": 0.0, "lam": 0.0}  # those of solve()


@dataclass(frozen=True)
class Grid:
    """``swept``: name -> tuple of values (a dimension each); ``fixed``: name -> float."""

    swept: dict
    fixed: dict

    @classmethod
    def from_mapping(cls, grid) -> "Grid":
        """Validate a mapping of parameter names to a scalar or a 1-d sequence of values."""
        if not hasattr(grid, "items"):
            raise ValueError(f"grid must be a mapping of parameter names to values (got {type(grid).__name__})")
        unknown = sorted(set(grid) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown grid parameter(s) {unknown}; the parameters are {list(PARAMETERS)}")
        missing = [name for name in REQUIRED if name not in grid]
        if missing:
            raise ValueError(f"grid needs {', '.join(missing)} (a value or a list of values)")
        swept, fixed = {}, {}
        for name in PARAMETERS:
            value = grid.get(name, DEFAULTS.get(name))
            if np.ndim(value) == 0 and not isinstance(value, (list, tuple, range)):
                fixed[name] = float(getattr(ForwardParams(**{**_probe(), name: value}), name))
                continue
            values = np.asarray(list(value) if isinstance(value, range) else value, dtype=float)
            if values.ndim != 1 or values.size == 0:
                raise ValueError(f"grid {name} must be a number or a non-empty 1-d list of numbers")
            if np.unique(values).size != values.size:
                raise ValueError(f"grid {name} has repeated values {values.tolist()}")
            ForwardParams(**{**_probe(), name: values})        # domain check, names the parameter
            swept[name] = tuple(float(v) for v in values)
        return cls(swept=swept, fixed=fixed)

    @property
    def names(self) -> tuple:
        """The swept parameters, in the model's order (the leading dataset dimensions)."""
        return tuple(self.swept)

    @property
    def shape(self) -> tuple:
        return tuple(len(v) for v in self.swept.values())

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=int))

    def points(self) -> list[dict]:
        """Every grid point as a full parameter dict, in C order over the swept dimensions."""
        out = []
        for combo in itertools.product(*self.swept.values()):
            point = {**self.fixed, **dict(zip(self.names, combo))}
            out.append({name: point[name] for name in PARAMETERS})
        return out

    def arrays(self) -> dict:
        """Each parameter as an array broadcastable to :attr:`shape` (for one vectorized solve)."""
        out = {}
        n = len(self.names)
        for name in PARAMETERS:
            if name in self.swept:
                shape = [1] * n
                shape[self.names.index(name)] = len(self.swept[name])
                out[name] = np.asarray(self.swept[name]).reshape(shape)
            else:
                out[name] = np.full((1,) * n, self.fixed[name])
        return out

    def to_dict(self) -> dict:
        """JSON-ready: swept parameters as lists, fixed ones as numbers, in the model's order."""
        return {name: list(self.swept[name]) if name in self.swept else self.fixed[name] for name in PARAMETERS}


def _probe() -> dict:
    """A valid point, so that ForwardParams checks one parameter at a time."""
    return {"alpha": 1.0, "tau": 1.0, "kappa": 1.0}
