"""Measurements of attention on this machine; ``python -m lattn.bench SUBCOMMAND --help``.

Each submodule of this package is one subcommand and exposes ``register(subparsers)``, which adds its parser and
sets ``func`` (called with the parsed arguments). The shared timer lives here: a plain ``time.perf_counter`` loop
(not ``torch.utils.benchmark``, whose import on CUDA builds of torch logs a warning on machines without a GPU, e.g.
Colab's CPU runtime).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["matmul_flops_per_s", "median_seconds"]

CLI_HELP = """\
Measure attention on this machine: time and memory of full vs latent attention as the
sequence grows (complexity), and prefill and decode speed of DeepSeek's multi-head latent
attention in its naive, absorbed and auto modes (mla).

Each benchmark prints a table and writes a CSV to ./lattn-results/bench-<name>/ in the
current directory (or --out DIR). The measurements shipped with lattn are replaced only
with --update-shipped. Run "python -m lattn.bench COMMAND --help" for the details."""

CLI_EXAMPLES = """\
Examples:
  python -m lattn.bench complexity --quick      # under 30 s on a 2-core laptop
  python -m lattn.bench mla --quick             # under a minute
  python -m lattn.bench complexity --help"""


def median_seconds(fn: Callable[[], object], min_run_time: float = 0.2, num_threads: int | None = None) -> float:
    """Median wall time of one ``fn()`` call in seconds.

    One warm-up call, then blocks of calls (each block ≥ 10 ms, so the clock's resolution does not matter) until
    ``min_run_time`` seconds have passed and at least 3 blocks ran; the median over blocks of their time per call.
    ``num_threads`` sets torch's intra-op threads for the measurement (default: as they are).
    """
    threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        fn()  # warm-up: first-call allocations, lazy initialisation
        start = time.perf_counter()
        fn()
        per_block = max(1, int(0.01 / max(time.perf_counter() - start, 1e-9)))
        per_call: list[float] = []
        spent = 0.0
        while spent < min_run_time or len(per_call) < 3:
            start = time.perf_counter()
            for _ in range(per_block):
                fn()
            block = time.perf_counter() - start
            per_call.append(block / per_block)
            spent += block
        return statistics.median(per_call)
    finally:
        torch.set_num_threads(threads)


def matmul_flops_per_s(n: int = 1024, min_run_time: float = 0.3) -> float:
    """Measured fp32 matmul throughput of this machine, in multiply-adds per second ((n×n)·(n×n))."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return n**3 / median_seconds(lambda: a @ b, min_run_time)
