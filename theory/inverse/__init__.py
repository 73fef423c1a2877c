"""Inverse ICL derivations: oracle Bayes (ORE) risks and moments, the optimal one-layer linear transformer."""
