r"""The sweep result as an xarray Dataset, and its netCDF file.

Layout (``P`` = the swept parameters, in the model's order alpha, tau, kappa, rho, sigma, lam):

=====================================  ===============  =============================================
variable                               dimensions       meaning
=====================================  ===============  =============================================
theory_tm, theory_idg, theory_odg      P                errors of ``solve`` (D -> infinity)
converged, residual                    P                ``solve``'s flag and relative residual
tm, idg, odg                           P, dim, seed     exact test error of each trained Gamma
tm_mean, tm_se (idg_, odg_ alike)      P, dim           mean over seeds and its standard error
tm_inf, tm_inf_se (idg_, odg_ alike)   P                1/D extrapolation e_inf and its SE
theory_tm_sized (idg_, odg_ alike)     P, dim           theory at the integer sizes simulated
sim_converged, sim_residual            P, dim, seed     the ridge fit's flag and relative residual
=====================================  ===============  =============================================

Fixed parameters are scalar coordinates. The simulation variables are absent when ``dims=None``.

Extrapolation: the weighted least-squares fit e(D) = e_inf + c/D of
:func:`lowrank_icl.validation.stats.extrapolate` (weights 1/SE^2; SE widened by the Birge ratio when
chi^2/dof > 1) applied to the means after subtracting ``theory_sized - theory``: the offset of the
integer sizes L, M, M0, r from alpha D, tau D^2, kappa D, rho D, which is not a 1/D term. With one D
the fit is the (shifted) mean with its SE; with one seed, or an SE of 0, e_inf and its SE are NaN.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lowrank_icl.validation.io import atomic_write_bytes
from lowrank_icl.validation.stats import extrapolate, standard_error
from lowrank_icl.numerics.results import PROTOCOLS

_DESCRIPTIONS = {
    "tm": "task memorization (TM) test error",
    "idg": "in-distribution generalization (IDG) test error",
    "odg": "out-of-distribution generalization (ODG) test error",
}


def require_xarray():
    try:
        import xarray
    except ImportError:  # pragma: no cover - the extra is installed in the test environment
        raise ImportError("sweeps return xarray Datasets: pip install 'lowrank-icl[sweep]' "
                          "(or '[distributed]' for clusters)") from None
    return xarray


def build_dataset(grid, dims, seeds, theory: dict, cells: dict | None, attrs: dict):
    """Assemble the Dataset (module docstring).

    ``theory``: "tm", "idg", "odg", "converged", "residual" arrays of ``grid.shape``; with
    simulation also "sized_tm", ... of ``grid.shape + (len(dims),)``. ``cells``: per-protocol arrays
    of per-seed errors and the fit diagnostics, shape ``grid.shape + (len(dims), len(seeds))``.
    """
    xr = require_xarray()
    names = list(grid.names)
    coords = {name: np.asarray(grid.swept[name]) for name in names}
    coords.update({name: value for name, value in grid.fixed.items()})
    data = {}
    for k in PROTOCOLS:
        data[f"theory_{k}"] = (names, np.asarray(theory[k], dtype=float),
                               {"long_name": f"theory {_DESCRIPTIONS[k]}"})
    data["converged"] = (names, np.asarray(theory["converged"], dtype=bool),
                         {"long_name": "solve converged (its residual below its documented tolerance)"})
    data["residual"] = (names, np.asarray(theory["residual"], dtype=float),
                        {"long_name": "solve: max relative residual of the saddle-point equations"})
    if cells is not None:
        coords["dim"] = np.asarray(dims, dtype=np.int32)
        coords["seed"] = np.asarray(seeds, dtype=np.int32)
        per_seed, per_dim = [*names, "dim", "seed"], [*names, "dim"]
        for k in PROTOCOLS:
            values = np.asarray(cells[k], dtype=float)
            mean, se = _mean_se(values)
            shift = np.asarray(theory[f"sized_{k}"], dtype=float) - np.asarray(theory[k], dtype=float)[..., None]
            e_inf, e_inf_se = _extrapolate_all(dims, mean - np.where(np.isfinite(shift), shift, 0.0), se)
            data[k] = (per_seed, values, {"long_name": f"simulated {_DESCRIPTIONS[k]}, exact for the trained Gamma"})
            data[f"{k}_mean"] = (per_dim, mean, {"long_name": f"{k} mean over seeds"})
            data[f"{k}_se"] = (per_dim, se, {"long_name": f"{k} standard error over seeds (sd ddof=1 / sqrt(n))"})
            data[f"{k}_inf"] = (names, e_inf, {"long_name": f"{k} extrapolated to D -> infinity (fit e_inf + c/D)"})
            data[f"{k}_inf_se"] = (names, e_inf_se, {"long_name": f"standard error of {k}_inf"})
            data[f"theory_{k}_sized"] = (per_dim, np.asarray(theory[f"sized_{k}"], dtype=float),
                                         {"long_name": f"theory {k} at the integer sizes L, M, M0, r simulated"})
        data["sim_converged"] = (per_seed, np.asarray(cells["converged"], dtype=bool),
                                 {"long_name": "ridge fit converged"})
        data["sim_residual"] = (per_seed, np.asarray(cells["residual"], dtype=float),
                                {"long_name": "ridge fit relative normal-equation residual"})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _mean_se(values: np.ndarray):
    """Mean and SE over the last axis (the seeds)."""
    mean = np.mean(values, axis=-1)
    se = np.apply_along_axis(standard_error, -1, values) if values.shape[-1] else np.full(mean.shape, np.nan)
    return mean, np.asarray(se, dtype=float).reshape(mean.shape)


def _extrapolate_all(dims, means: np.ndarray, sems: np.ndarray):
    """Fit over the last axis (D) at every grid point; NaN where the SEs do not allow a fit."""
    e_inf = np.full(means.shape[:-1], np.nan)
    e_se = np.full(means.shape[:-1], np.nan)
    for idx in np.ndindex(*means.shape[:-1]):
        s = sems[idx]
        if np.all(np.isfinite(s)) and np.all(s > 0) and np.all(np.isfinite(means[idx])):
            ex = extrapolate(list(dims), means[idx], s)
            e_inf[idx], e_se[idx] = ex.e_inf, ex.se
    return e_inf, e_se


def write_netcdf(ds, path) -> Path:
    """Write ``ds`` as netCDF-3 (scipy engine: no extra dependency), atomically."""
    path = Path(path)
    atomic_write_bytes(path, ds.to_netcdf(None, engine="scipy"))
    return path


def check_output_path(path) -> Path:
    """Refuse, before any work, an output that is a folder or sits in a missing/unwritable one."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory; give a file name such as {path / 'sweep.nc'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--out folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out folder {parent} is not writable")
    return path
