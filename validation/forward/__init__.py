"""Forward ICL Monte Carlo: exact samplers, ridge solvers, the simulator, full attention, crossover checks."""
