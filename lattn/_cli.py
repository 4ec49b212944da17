"""A tiny command-line dispatcher (one subcommand per submodule of a package) and the output-folder rules that
every experiment and benchmark follows.

Output rules: results go to ``./lattn-results/<name>/`` in the current directory unless ``--out DIR`` says
otherwise; the results shipped in ``lattn/data/`` are replaced only with ``--update-shipped``, and then only by a run
with the shipped settings (everything at once), so that no partial or shortened run can break the notebooks.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

DATA_DIR = Path(__file__).resolve().parent / "data"  # the shipped results
RESULTS_ROOT = Path("lattn-results")  # the default output folder's parent, relative to the current directory
RAW = argparse.RawDescriptionHelpFormatter  # keeps the help texts' line breaks (one example per line)


def run_subcommands(package: ModuleType, argv: list[str] | None = None) -> None:
    """Build ``python -m <package> <subcommand>``: every public submodule exposes ``register(subparsers)``,
    which adds its parser and sets ``func`` (called with the parsed arguments). The package's ``CLI_HELP`` and
    ``CLI_EXAMPLES`` (plain text) are the top-level help's description and epilog."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {package.__name__}", description=getattr(package, "CLI_HELP", package.__doc__),
        epilog=getattr(package, "CLI_EXAMPLES", None), formatter_class=RAW,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}").register(sub)
    args = parser.parse_args(argv)
    args.func(args)


def add_parser(subparsers: argparse._SubParsersAction, name: str, summary: str, description: str, examples: str):
    """A subcommand's parser with a plain-text description and an "Examples:" epilog, line breaks kept."""
    return subparsers.add_parser(name, help=summary, description=description, epilog=examples, formatter_class=RAW)


def add_output_options(parser: argparse.ArgumentParser, name: str, shipped: str) -> None:
    """``--out DIR`` (default ``./lattn-results/<name>/``) and ``--update-shipped`` (replace ``shipped``)."""
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help=f"output folder (default: ./{RESULTS_ROOT / name}/ in the current directory)")  # fmt: skip
    parser.add_argument("--update-shipped", action="store_true",
                        help=f"replace the results shipped with lattn ({shipped}); needs the shipped settings, "
                        "so it cannot be combined with options that change the run")  # fmt: skip
    parser.set_defaults(output_name=name)


def refuse_shipped(path: Path) -> None:
    """Exit with a clear message if ``path`` lies in the shipped data folder (only --update-shipped writes there)."""
    path = Path(path).resolve()
    if path == DATA_DIR or DATA_DIR in path.parents:
        raise SystemExit(
            f"error: {path} is inside lattn/data, which holds the results shipped with lattn. Choose another --out "
            "(or --csv), or use --update-shipped to replace the shipped results with a full run."
        )


def output_folder(args: argparse.Namespace, changes: list[str], file: Path | None = None) -> Path:
    """The folder this run writes to, created and announced in one line. ``changes``: the options that make this run
    differ from the shipped one (``--update-shipped`` refuses them). ``file``: a user-named output file (e.g.
    ``--csv``); its folder is used and the file is announced instead."""
    if args.update_shipped:
        changes = [*changes, *(["--out"] if args.out is not None else []), *(["--csv"] if file is not None else [])]
        if changes:
            raise SystemExit(
                f"error: --update-shipped replaces all the results shipped in lattn/data at once, so it needs the "
                f"shipped settings; this run changes {', '.join(changes)}. Drop --update-shipped to write to "
                f"./{RESULTS_ROOT / args.output_name}/ (or --out DIR) instead."
            )
        folder = DATA_DIR
    else:
        folder = Path(file).resolve().parent if file is not None else Path(args.out or RESULTS_ROOT / args.output_name)
        refuse_shipped(file if file is not None else folder)
        folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Results go to {Path(file).resolve() if file is not None else folder}", flush=True)
    return folder


def announce_done(path: Path) -> None:
    """The closing line: where the results are."""
    print(f"Results are in {Path(path).resolve()}", flush=True)
