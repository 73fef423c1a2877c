"""Every figure ``lowrank-icl figures`` regenerates: one module per figure family, plus the registry."""
