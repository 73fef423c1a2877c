"""The ``lowrank-icl`` command line: one module per subcommand, plus ``main``."""
