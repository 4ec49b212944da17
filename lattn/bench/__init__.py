"""Measurements with ``torch.utils.benchmark``; ``python -m lattn.bench SUBCOMMAND --help``.

Each submodule of this package is one subcommand and exposes ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed arguments). Shared timing helpers live here; they import
``torch.utils.benchmark`` only when they measure (on torch builds with CUDA, importing it can log a CUDA warning).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["matmul_flops_per_s", "median_seconds"]

CLI_HELP = """\
Measure attention on this machine: time and memory of full vs latent attention as the
sequence grows (complexity), and decode speed of DeepSeek's multi-head latent attention
with a naive vs an absorbed cache (mla).

Each benchmark prints a table and writes a CSV to ./lattn-results/bench-<name>/ in the
current directory (or --out DIR). The measurements shipped with lattn are replaced only
with --update-shipped. Run "python -m lattn.bench COMMAND --help" for the details."""

CLI_EXAMPLES = """\
Examples:
  python -m lattn.bench complexity --quick      # under 30 s on a 2-core laptop
  python -m lattn.bench mla --quick             # under 30 s
  python -m lattn.bench complexity --help"""


def median_seconds(fn: Callable[[], object], min_run_time: float = 0.2, num_threads: int | None = None) -> float:
    """Median wall time of ``fn()`` in seconds (torch.utils.benchmark: warm-up, then repeated blocks)."""
    import torch.utils.benchmark as tb  # here, not at import time: see the module docstring

    timer = tb.Timer(stmt="fn()", globals={"fn": fn}, num_threads=num_threads or torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def matmul_flops_per_s(n: int = 1024, min_run_time: float = 0.3) -> float:
    """Measured fp32 matmul throughput of this machine, in multiply-adds per second ((n×n)·(n×n))."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return n**3 / median_seconds(lambda: a @ b, min_run_time)
