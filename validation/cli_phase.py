"""Subcommand registration (filled in by its issue)."""


def register(subparsers):
    """Add this module's subcommands to the lowrank-icl parser."""
