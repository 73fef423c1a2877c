"""Figure builders (filled in by their issue); registered with validation.figures.figure."""
