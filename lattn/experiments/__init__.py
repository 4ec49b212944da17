"""Longer experiments whose small result files ship with the package; ``python -m lattn.experiments --help``.

Each submodule is one subcommand and exposes ``register(subparsers)`` (adds its parser, sets ``func``).
Results are written under ``lattn/data/`` and are reproducible from the seed.
"""
