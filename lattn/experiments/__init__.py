"""Longer experiments whose small result files ship with the package; ``python -m lattn.experiments --help``.

Each submodule is one subcommand and exposes ``register(subparsers)`` (adds its parser, sets ``func``). Runs write
to ``./lattn-results/<name>/`` (see :mod:`lattn._cli`); ``--update-shipped`` replaces the files in ``lattn/data/``.
Results are reproducible from the seed.
"""

CLI_HELP = """\
Re-run the longer experiments behind notebooks 03 and 06 on your CPU.

Results go to ./lattn-results/<name>/ in the current directory (or --out DIR); the folder
is printed at the start and the end. The results shipped with lattn, which the notebooks
read, are replaced only with --update-shipped, and only by a complete run with the shipped
settings. Run "python -m lattn.experiments COMMAND --help" for the details."""

CLI_EXAMPLES = """\
Examples:
  python -m lattn.experiments bottleneck --part capacity
  python -m lattn.experiments lm --kinds full,mla --steps 300
  python -m lattn.experiments lm --help"""
