"""One conformance suite over every public result type (in the spirit of scikit-learn's check_estimator).

REGISTRY names each result type by "module:Class" and gives a factory that builds a small instance
quickly (types are imported lazily, so the suite runs without the [nn] extra; those cases skip).
The checks run over all of them:

- the repr stays short (under 500 characters, also for a 30 x 40 grid);
- ``to_dict()`` survives ``json.dumps(allow_nan=False)`` and ``json.loads`` unchanged, and carries
  "parameters" and "version"; errors appear under "errors" with "tm", "idg", "odg";
- the convergence words are present (converged, residual, reason, message, iterations), a NaN
  result is never converged, and "" is the reason exactly when converged;
- every ``errors()`` returns a member of the ProtocolErrors family;
- precision digits survive ``to_dict`` (a precision=30 solve keeps 30 digits);
- the same bad parameter gives the same ValueError from solve, simulate, bayes and the CLI.

A result type defined in the package that is not registered fails :func:`test_every_result_type_is_registered`.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

GRID = dict(alpha=np.linspace(0.5, 4.0, 30)[:, None], tau=np.linspace(0.5, 4.0, 40)[None, :], kappa=1.0, rho=0.5,
            sigma=0.3, lam=0.1)
POINT = dict(alpha=2.0, tau=2.0, kappa=1.0, rho=0.5, sigma=0.2, lam=0.05)


def _jax_or_skip():
    pytest.importorskip("jax")
    pytest.importorskip("optax")


# ---------------------------------------------------------------------------------------------------
# factories: each returns a small instance of its type

def _solve_grid():
    from lowrank_icl.numerics import solve
    return solve(**GRID)


def _spectrum_grid():
    from lowrank_icl.numerics import TaskSpectrum, solve
    g = {k: v for k, v in GRID.items() if k != "rho"}
    return solve(**g, spectrum=TaskSpectrum.low_rank(0.5))


def _forward_errors():
    return _solve_grid().errors()


def _phase_boundary():
    from lowrank_icl.numerics import phase_boundary
    return phase_boundary(alpha=[1.0, 2.0], tau=2.0, rho=0.3)


def _design_optimum():
    from lowrank_icl.numerics import optimal_context_length
    return optimal_context_length(tau=2.0, kappa=1.0, rho=0.5, sigma=0.3)


def _lt_train_result():
    from lowrank_icl.numerics.inverse import LT
    rng = np.random.default_rng(0)
    n, N, d = 40, 12, 3
    W = rng.standard_normal((n, d))
    X = rng.standard_normal((n, N, d))
    Y = np.einsum("tnd,td->tn", X, W) + 0.1 * rng.standard_normal((n, N))
    return LT(K=1, loss="supervised", maxiter=50).fit(X, Y, W).train_


def _ore_risk():
    from lowrank_icl.numerics.inverse import ore_risk
    U = np.linalg.qr(np.random.default_rng(1).standard_normal((5, 2)))[0]
    return ore_risk(np.eye(5), U, np.ones(2), 0.3, 8, n_samples=200)


def _ridge_fit():
    from lowrank_icl.validation.forward.ridge import fit_ridge
    rng = np.random.default_rng(2)
    x, h = rng.standard_normal((60, 4)), rng.standard_normal((60, 4))
    return fit_ridge(x, h, rng.standard_normal(60), 0.1, 4)


def _attention_fit():
    from lowrank_icl.validation.forward.attention import context_statistics, train_attention
    from lowrank_icl.validation.forward.sampling import Sizes, sample_contexts
    s = Sizes.from_ratios(3, 2.0, 2.0, 1.0, 0.67)
    ctx = sample_contexts(s, 0.2, 0)
    return train_attention(*context_statistics(ctx.X, ctx.y), 0.05, s.n_tasks, max_iter=50)


def _simulation():
    from lowrank_icl.validation.forward.simulate import simulate
    return simulate(dim=4, **POINT, seeds=3)


def _spectrum_simulation():
    from lowrank_icl.numerics import TaskSpectrum
    from lowrank_icl.validation.forward.simulate import simulate
    return simulate(dim=4, **{k: v for k, v in POINT.items() if k != "rho"}, seeds=3,
                    spectrum=TaskSpectrum.spiked(4.0, 0.5))


def _y2_column():
    from lowrank_icl.validation.forward.simulate import simulate
    return simulate(dim=4, **POINT, seeds=3, y2_column=True)


def _estimated_errors():
    return _simulation().errors()


def _protocol_errors():
    from lowrank_icl.numerics.results import ProtocolErrors
    return ProtocolErrors(tm=0.5, idg=0.75, odg=1.0)


def _bayes():
    from lowrank_icl.validation.forward.bayes import bayes_errors
    return bayes_errors(dim=4, alpha=2.0, kappa=1.0, rho=0.5, sigma=0.3, seeds=3, prompts=20)


def _transformer(model="linear", steps=1, **kw):
    _jax_or_skip()
    from lowrank_icl.validation.forward.transformers import train_transformer
    return train_transformer(model=model, dim=3, alpha=2.0, tau=2.0, kappa=1.0, rho=0.67, sigma=0.1, steps=steps,
                             n_test_prompts=20, **kw)


def _train_result():
    _jax_or_skip()
    import jax.numpy as jnp
    from lowrank_icl.validation.forward.transformers.training import adam_train
    x = jnp.linspace(0.0, 1.0, 8)
    return adam_train(lambda w, x_: jnp.mean((w["a"] * x_ - 1.0) ** 2), {"a": jnp.zeros(())}, (x,), steps=3,
                      learning_rate=0.1)


def _flow_theory():
    from lowrank_icl.numerics import solve
    return solve(**POINT, time=[0.5, 2.0, np.inf])


def _flow_simulation():
    from lowrank_icl.validation.forward.simulate import simulate
    return simulate(dim=4, **POINT, seeds=3, time=[0.5, 2.0])


def _spectral_basis():
    from lowrank_icl.validation.forward.flow import spectral_basis
    from lowrank_icl.validation.forward.sampling import Sizes, sample_pretraining
    s = Sizes.from_ratios(4, POINT["alpha"], POINT["tau"], POINT["kappa"], POINT["rho"])
    return spectral_basis(sample_pretraining(s, POINT["sigma"], 0), POINT["lam"], s.n_tasks)


def _run_result():
    from lowrank_icl.validation.inverse.experiments import RunResult
    return RunResult("RE", 0, 0.5, 0.01, 0.1)


def _estimator_score():
    from lowrank_icl.validation.inverse.experiments import RunResult, aggregate
    return aggregate([RunResult("RE", s, 0.5 + 0.01 * s, 0.01, 0.1) for s in range(3)])


# "module:Class" -> factory. Every public result type of the package is here.
REGISTRY = {
    "lowrank_icl.numerics.forward.results:ForwardSolution": _solve_grid,
    "lowrank_icl.numerics.forward.general:SpectrumSolution": _spectrum_grid,
    "lowrank_icl.numerics.forward.results:ForwardErrors": _forward_errors,
    "lowrank_icl.numerics.results:ProtocolErrors": _protocol_errors,
    "lowrank_icl.numerics.forward.crossover:PhaseBoundary": _phase_boundary,
    "lowrank_icl.numerics.forward.design:DesignOptimum": _design_optimum,
    "lowrank_icl.numerics.inverse.lt:LTTrainResult": _lt_train_result,
    "lowrank_icl.numerics.inverse.risk:OreRisk": _ore_risk,
    "lowrank_icl.validation.forward.ridge:RidgeFit": _ridge_fit,
    "lowrank_icl.validation.forward.attention:AttentionFit": _attention_fit,
    "lowrank_icl.validation.forward.simulate:SimulationResult": _simulation,
    "lowrank_icl.validation.forward.spectrum_simulate:SpectrumSimulation": _spectrum_simulation,
    "lowrank_icl.validation.forward.y2_column:Y2ColumnResult": _y2_column,
    "lowrank_icl.validation.stats:EstimatedErrors": _estimated_errors,
    "lowrank_icl.validation.forward.bayes:BayesResult": _bayes,
    "lowrank_icl.validation.forward.transformers.experiment:TransformerResult": _transformer,
    "lowrank_icl.validation.forward.transformers.training:TrainResult": _train_result,
    "lowrank_icl.numerics.forward.flow:FlowTheory": _flow_theory,
    "lowrank_icl.validation.forward.flow:FlowSimulation": _flow_simulation,
    "lowrank_icl.validation.forward.flow:SpectralBasis": _spectral_basis,
    "lowrank_icl.validation.inverse.experiments:RunResult": _run_result,
    "lowrank_icl.validation.inverse.experiments:EstimatorScore": _estimator_score,
}
# base classes that are never returned themselves
ABSTRACT = {"lowrank_icl.validation.forward.results:MonteCarloResult"}

_CACHE: dict = {}


def instance(key):
    if key not in _CACHE:
        obj = REGISTRY[key]()
        assert type(obj) is _registered_class(key), (key, type(obj))
        _CACHE[key] = obj
    return _CACHE[key]


def _is_errors(obj) -> bool:
    from lowrank_icl.numerics.results import ProtocolErrors
    return isinstance(obj, ProtocolErrors)


RESULTS = [k for k in REGISTRY if not k.endswith(("Errors", ":ProtocolErrors"))]
ERRORS = [k for k in REGISTRY if k not in RESULTS]


# ---------------------------------------------------------------------------------------------------
# the registry is complete

def _package_classes():
    import lowrank_icl
    found = set()
    roots = [lowrank_icl.__name__ + "." + sub for sub in ("theory", "numerics", "validation")]
    for root in roots:
        pkg = importlib.import_module(root)
        for info in pkgutil.walk_packages(pkg.__path__, root + "."):
            if info.name.endswith("__main__"):
                continue
            mod = importlib.import_module(info.name)
            for name, cls in vars(mod).items():
                if inspect.isclass(cls) and cls.__module__ == mod.__name__ and not name.startswith("_"):
                    found.add((f"{mod.__name__}:{name}", cls))
    return found


def _looks_like_a_result(cls) -> bool:
    from lowrank_icl.numerics.results import ProtocolErrors
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return ("converged" in fields or hasattr(cls, "converged") or callable(getattr(cls, "errors", None))
            or issubclass(cls, ProtocolErrors))


def test_every_result_type_is_registered():
    results = {key for key, cls in _package_classes() if _looks_like_a_result(cls)}
    assert results, "the scan found no result type"
    missing = sorted(results - set(REGISTRY) - ABSTRACT)
    assert not missing, f"result types missing from the conformance registry: {missing}"
    stale = sorted(set(REGISTRY) - results)
    assert not stale, f"registered but not found as result types: {stale}"


# ---------------------------------------------------------------------------------------------------
# checks over every registered type

@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_repr_is_short(key):
    text = repr(instance(key))
    assert len(text) < 500, (key, len(text), text[:600])


@pytest.mark.parametrize("key", sorted(REGISTRY))
def test_to_dict_round_trips_through_strict_json(key):
    obj = instance(key)
    doc = obj.to_dict()
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text) == doc


@pytest.mark.parametrize("key", sorted(RESULTS))
def test_to_dict_is_a_document(key):
    doc = instance(key).to_dict()
    assert isinstance(doc.get("parameters"), dict) and isinstance(doc.get("version"), str), key
    for word in ("converged", "residual", "reason", "message", "iterations"):
        assert word in doc, (key, word)
    if hasattr(instance(key), "errors"):
        assert set(doc["errors"]) >= {"tm", "idg", "odg"}, key


@pytest.mark.parametrize("key", sorted(RESULTS))
def test_convergence_words(key):
    obj = instance(key)
    for word in ("converged", "residual", "reason", "message", "iterations"):
        assert hasattr(obj, word), (key, word)
    conv = np.asarray(obj.converged, dtype=bool)
    residual = np.asarray(obj.residual, dtype=float)
    reason = np.asarray(obj.reason, dtype=object)
    assert not np.any(conv & np.isnan(residual)), f"{key}: NaN residual reported converged"
    assert np.all((reason == "") == conv), f"{key}: reason must be '' exactly where converged"


def _registered_class(key):
    module, name = key.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("key", sorted(k for k in RESULTS if callable(getattr(_registered_class(k), "errors", None))))
def test_errors_belong_to_the_family(key):
    obj = instance(key)
    err = obj.errors()
    assert _is_errors(err), (key, type(err))
    from lowrank_icl.validation.stats import mean_and_sem
    values = [np.asarray(mean_and_sem(v)[0] if not isinstance(v, np.ndarray) else v, dtype=float)
              for _, v in err.items()]
    if any(np.any(np.isnan(v)) for v in values):
        assert not np.all(np.asarray(obj.converged)), f"{key}: NaN errors reported converged"


@pytest.mark.parametrize("key", sorted(ERRORS))
def test_errors_types_speak_tm_idg_odg(key):
    err = instance(key)
    assert [p for p, _ in err.items()] == ["tm", "idg", "odg"]
    assert set(err.to_dict()) == {"tm", "idg", "odg"}


def test_estimates_are_written_as_mean_sem_n():
    doc = instance("lowrank_icl.validation.forward.simulate:SimulationResult").to_dict()
    for p in ("tm", "idg", "odg"):
        assert set(doc["errors"][p]) >= {"mean", "sem", "n"} and doc["errors"][p]["n"] == 3


# ---------------------------------------------------------------------------------------------------
# precision digits

def _significant_digits(text: str) -> int:
    mantissa = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa)


@pytest.mark.parametrize("spectrum", [False, True])
def test_precision_digits_survive_to_dict(spectrum):
    from lowrank_icl.numerics import TaskSpectrum, solve
    kw = dict(alpha=2.0, tau=2.0, kappa=1.0, sigma=0.3, lam=0.1, precision=30)
    sol = solve(**kw, spectrum=TaskSpectrum.low_rank(0.5)) if spectrum else solve(**kw, rho=0.5)
    for doc in (sol.errors().to_dict(), sol.to_dict()["errors"]):
        for p in ("tm", "idg", "odg"):
            assert isinstance(doc[p], str) and _significant_digits(doc[p]) >= 29, (p, doc[p])
    assert json.loads(json.dumps(sol.to_dict(), allow_nan=False))["errors"] == sol.to_dict()["errors"]


# ---------------------------------------------------------------------------------------------------
# one validation everywhere

def _message(fn):
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


def test_the_same_bad_parameter_gives_the_same_error_everywhere():
    from lowrank_icl.numerics import solve
    from lowrank_icl.validation.forward.bayes import bayes_errors
    from lowrank_icl.validation.forward.simulate import simulate
    bad = {**POINT, "alpha": -1.0}
    messages = {
        "solve": _message(lambda: solve(**bad)),
        "simulate": _message(lambda: simulate(dim=4, **bad, seeds=2)),
        "bayes": _message(lambda: bayes_errors(dim=4, **{k: bad[k] for k in ("alpha", "kappa", "rho", "sigma")})),
    }
    proc = subprocess.run([sys.executable, "-m", "lowrank_icl.validation.cli", "solve", "--alpha", "-1", "--tau", "2",
                           "--kappa", "1"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(set(messages.values())) == 1, messages
    assert "alpha" in messages["solve"] and messages["solve"] in proc.stderr, (messages, proc.stderr)


def test_the_same_bad_parameter_from_train_transformer():
    _jax_or_skip()
    from lowrank_icl.numerics import solve
    from lowrank_icl.validation.forward.transformers import train_transformer
    want = _message(lambda: solve(**{**POINT, "alpha": -1.0}))
    assert _message(lambda: train_transformer(model="linear", dim=3, **{**POINT, "alpha": -1.0}, steps=1)) == want


# ---------------------------------------------------------------------------------------------------
# what the registry's instances must say

def test_an_unfinished_transformer_run_is_not_converged():
    res = instance("lowrank_icl.validation.forward.transformers.experiment:TransformerResult")
    assert res.iterations == 1 and res.converged is False and res.reason


def test_a_diverged_transformer_run_says_diverged():
    res = _transformer(model="softmax", steps=20, learning_rate=1e6)
    assert res.converged is False and res.reason.startswith("diverged") and "diverged" in repr(res)
    doc = res.to_dict()
    assert json.loads(json.dumps(doc, allow_nan=False))["converged"] is False


def test_transformer_result_is_frozen():
    res = instance("lowrank_icl.validation.forward.transformers.experiment:TransformerResult")
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.loss = 0.0
    with pytest.raises(TypeError):
        res.by_alpha_test[2.0] = None


def test_solve_on_a_spectrum_records_the_inputs_given(capsys):
    from lowrank_icl.validation.cli.main import main
    assert main(["solve", "--alpha", "2", "--tau", "2", "--kappa", "1", "--spectrum", "lowrank:0.3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "rho" not in doc["parameters"] and doc["parameters"]["spectrum"] == "lowrank:0.3"


def test_simulate_on_a_spectrum_records_tau_as_given(capsys):
    from lowrank_icl.validation.cli.main import main
    assert main(["simulate", "--dim", "8", "--alpha", "2", "--tau", "1.2", "--kappa", "1", "--spectrum",
                 "lowrank:0.5", "--seeds", "0-1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["parameters"]["tau"] == 1.2 and doc["sizes"]["M"] == 77      # M = round(1.2 * 64), M/D^2 != 1.2


# ---------------------------------------------------------------------------------------------------
# one home for the protocol names and for the power-law fit

def test_protocols_have_one_home():
    import pathlib
    import re
    import lowrank_icl.numerics as numerics
    root = pathlib.Path(numerics.__file__).resolve().parent.parent
    homes = [str(p.relative_to(root)) for p in root.rglob("*.py")
             if ".git" not in p.parts and "tests" not in p.parts
             and re.search(r"^_?PROTOCOLS\s*=", p.read_text(), flags=re.M)]
    assert homes == [str(pathlib.Path("theory/forward/protocols.py"))], homes


def test_power_law_fit_recovers_an_exact_law_and_its_interval_covers_a_noisy_one():
    from lowrank_icl.numerics.power_law import log_log_fit
    x = np.geomspace(1, 100, 7)
    exact = log_log_fit(x, 3.0 * x**-0.75)
    assert exact.exponent == pytest.approx(-0.75, abs=1e-13) and exact.prefactor == pytest.approx(3.0, rel=1e-13)
    assert exact.exponent_se < 1e-12 and exact.n == 7
    # 400 fits with Gaussian noise in log y: the t interval of the unweighted fit is exact, so it covers
    # the true exponent in 95% of them (+- 3 binomial SE); the weighted one, widened by the Birge
    # ratio when chi^2/dof > 1, covers at least as often
    rng = np.random.default_rng(0)
    hits = {"unweighted": 0, "weighted": 0}
    for _ in range(400):
        y = 3.0 * x**-0.75 * np.exp(0.05 * rng.standard_normal(x.size))
        for kind, fit in (("unweighted", log_log_fit(x, y)), ("weighted", log_log_fit(x, y, 0.05 * y))):
            hits[kind] += fit.exponent_ci[0] <= -0.75 <= fit.exponent_ci[1]
    band = 3 * np.sqrt(0.95 * 0.05 / 400)
    assert abs(hits["unweighted"] / 400 - 0.95) <= band, hits
    assert hits["weighted"] / 400 >= 0.95 - band, hits


def test_the_three_power_law_fits_are_one_fit():
    from lowrank_icl.numerics import fit_power_law
    from lowrank_icl.numerics.power_law import log_log_fit
    from lowrank_icl.validation.figures.attention import excess_power_law
    from lowrank_icl.validation.inverse.experiments import fit_loglog_slope
    from lowrank_icl.validation.stats import Estimate
    rng = np.random.default_rng(3)
    x = np.array([8.0, 12.0, 16.0, 24.0, 32.0])
    y = 2.0 * x**-1.1 * np.exp(0.05 * rng.standard_normal(x.size))
    sem = 0.05 * y
    unweighted, weighted = log_log_fit(x, y), log_log_fit(x, y, sem)
    crossover = fit_power_law(x, y)               # y = A x^(-exponent)
    assert (crossover.exponent, crossover.ci_low, crossover.ci_high) == (
        -unweighted.exponent, -unweighted.exponent_ci[1], -unweighted.exponent_ci[0])
    slope = fit_loglog_slope(x, y, sem)
    assert (slope.slope, slope.se, slope.ci) == (weighted.exponent, weighted.exponent_se, weighted.exponent_ci)
    ests = [Estimate((v - s, v + s)) for v, s in zip(y, sem * np.sqrt(2))]   # mean v, sem s
    amp, b, b_se = excess_power_law(x, ests)
    assert b == pytest.approx(-weighted.exponent, rel=1e-12) and b_se == pytest.approx(weighted.exponent_se, rel=1e-12)
