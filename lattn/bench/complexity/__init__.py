"""``python -m lattn.bench complexity``: measured time and memory of full vs latent attention as N grows.

Four attention cores (the real modules with their Linear projections removed, see
:func:`lattn.complexity.without_projections`), timed with ``torch.utils.benchmark`` on B×N×D float32 tokens:

* ``full-sdpa``       — :class:`~lattn.attention.MultiHeadAttention`'s fast path: torch's fused SDPA;
* ``full-explicit``   — its teaching path: explicit (B, H, N, N) float32 weights;
* ``latent-fast``     — :class:`~lattn.latent.LatentAttention`'s fast path (write, gather, broadcast);
* ``latent-teaching`` — its teaching path, all three maps kept.

Also: the same machine's fp32 matmul throughput (measured before and after the run and right after each latent
fast-path point; the best of these is the machine's capability) and the latent fast path's achieved FLOP/s as a
fraction of it (the "roofline"); a grid over M at one N; the whole modules MultiHeadAttention and LatentAttention
(projections included) at N = 16,384 and 32,768 and their time ratio; the fitted log-log slope of time against N
per method. A core point is skipped, with a note, when its weights would not fit the memory budget or its
predicted time (analytic FLOPs at the measured matmul rate) exceeds the time budget. Peak memory is measured by
:func:`lattn.complexity.peak_bytes` in a separate, untimed run (which doubles as the warm-up).

This package: :mod:`~lattn.bench.complexity.run` measures (config, rows), :mod:`~lattn.bench.complexity.report`
reads the rows (table, slopes, targets, CSV); this file is the command line.

Example (``--reuse-freed-memory`` stops glibc from returning big freed blocks to the OS, see
:func:`reuse_freed_memory`; the stored run was made with it)::

    python -m lattn.bench complexity --quick                                   # < 30 s
    python -m lattn.bench complexity --reuse-freed-memory --csv run.csv      # the full run, several minutes
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from ...complexity import method_cost
from .report import (
    FIELDS,
    STORED_CSV,
    achieved_flops_per_s,
    format_table,
    formula_curves,
    human_bytes,
    loglog_slope,
    module_ratios,
    read_csv,
    series,
    slopes,
    speedups,
    targets,
    write_csv,
)
from .run import GIB, METHODS, MODULES, BenchConfig, reuse_freed_memory, run_benchmark

__all__ = [
    "FIELDS",
    "GIB",
    "METHODS",
    "MODULES",
    "STORED_CSV",
    "BenchConfig",
    "achieved_flops_per_s",
    "format_table",
    "formula_curves",
    "human_bytes",
    "loglog_slope",
    "method_cost",
    "module_ratios",
    "read_csv",
    "register",
    "reuse_freed_memory",
    "run_benchmark",
    "series",
    "slopes",
    "speedups",
    "targets",
    "write_csv",
]


def _main(args: argparse.Namespace) -> None:
    config = BenchConfig.quick() if args.quick else BenchConfig()
    names = ("ns", "ms", "m", "module_ns", "heads", "dim_head", "batch", "min_run_time", "time_budget", "fit_from")
    overrides = {k: getattr(args, k) for k in names}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    if args.m is not None and args.ms is None and args.m not in config.ms:
        overrides["ms"] = (*config.ms, args.m)
    config = replace(config, **overrides)
    if args.ns is not None:
        config = replace(config, m_grid_n=max(args.ns))
    if args.from_csv:
        print(format_table(read_csv(args.from_csv), config.fit_from))
        return
    if args.reuse_freed_memory and not reuse_freed_memory():
        print("note: --reuse-freed-memory needs glibc; measuring with the default allocator", flush=True)
    print(f"config: {asdict(config)}", flush=True)
    start = time.perf_counter()
    rows = run_benchmark(config, progress=(lambda text: print(f"  … {text}", flush=True)) if args.verbose else None)
    print(format_table(rows, config.fit_from))
    print(f"\n({time.perf_counter() - start:.1f} s)")
    if args.csv:
        print(f"wrote {write_csv(rows, args.csv)}")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "complexity", help="time and memory of full vs latent attention as N grows", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="N ≤ 16,384, short timings, small budgets (< 30 s)")
    p.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    p.add_argument("--from-csv", type=Path, help="print the report of a stored CSV instead of measuring")
    p.add_argument("--ns", type=int, nargs="+", help="sequence lengths N (default 256 … 65,536)")
    p.add_argument("--ms", type=int, nargs="+", help="latent counts of the M grid (at the largest N given)")
    p.add_argument("--m", type=int, help="latents M in the N grid (default 64)")
    p.add_argument("--module-ns", type=int, nargs="+", help="N of the whole-module comparison, those in --ns "
                   "(default 16,384 32,768; if none is in --ns: the largest N where full attention's core ran)")  # fmt: skip
    p.add_argument("--heads", type=int, help="heads H (default 4)")
    p.add_argument("--dim-head", type=int, help="head size d_head (default 64)")
    p.add_argument("--batch", type=int, help="batch B (default 1)")
    p.add_argument("--min-run-time", type=float, help="seconds per timing (default 0.5; --quick 0.05)")
    p.add_argument("--time-budget", type=float, help="skip a core point predicted slower than this, in seconds "
                   "(default 15; --quick 0.5)")  # fmt: skip
    p.add_argument("--reuse-freed-memory", action="store_true", help="glibc mallopt: keep freed memory for reuse "
                   "(big temporaries then cost no page faults; see reuse_freed_memory)")  # fmt: skip
    p.add_argument("--fit-from", type=int, help="fit slopes on N ≥ this (default 1,024)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each point as it is measured")
    p.set_defaults(func=_main)
