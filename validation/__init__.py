"""Monte Carlo of the trained models, theory-vs-simulation statistics, figures and the CLI."""


def __getattr__(name):
    # Lazy: importing the validation layer must not import the sweep engine (or xarray).
    if name == "sweep":
        from lowrank_icl.validation.sweeps import sweep
        return sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
