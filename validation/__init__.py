"""Monte Carlo of the trained models, theory-vs-simulation statistics, figures and the CLI."""
