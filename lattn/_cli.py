"""A tiny command-line dispatcher: one subcommand per submodule of a package."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from types import ModuleType


def run_subcommands(package: ModuleType, argv: list[str] | None = None) -> None:
    """Build ``python -m <package> <subcommand>``: every public submodule exposes ``register(subparsers)``,
    which adds its parser and sets ``func`` (called with the parsed arguments)."""
    parser = argparse.ArgumentParser(prog=f"python -m {package.__name__}", description=package.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}").register(sub)
    args = parser.parse_args(argv)
    args.func(args)
