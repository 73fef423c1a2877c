"""Monte Carlo of the trained models, theory-vs-simulation statistics, figures and the CLI."""


def __getattr__(name):
    # lazy, so that importing the CLI does not import the theory layer before it is needed
    if name == "__version__":
        from lowrank_icl._version import __version__
        return __version__
    # lazy: importing the validation layer must not import the sweep engine (or xarray)
    if name == "sweep":
        from lowrank_icl.validation.sweeps import sweep
        return sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
