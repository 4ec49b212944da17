"""``python -m lattn.bench complexity``: measured time and memory of full vs latent attention as N grows.

Four attention cores (the real modules with their Linear projections removed, see
:func:`lattn.complexity.without_projections`), timed with :func:`lattn.bench.median_seconds` on B×N×D float32 tokens:

* ``full-sdpa``       — :class:`~lattn.attention.MultiHeadAttention`'s fast path: torch's fused SDPA;
* ``full-explicit``   — its teaching path: explicit (B, H, N, N) float32 weights;
* ``latent-fast``     — :class:`~lattn.latent.LatentAttention`'s fast path (write, gather, broadcast);
* ``latent-teaching`` — its teaching path, all three maps kept.

Also: the same machine's fp32 matmul throughput (measured before and after the run and right after each latent
fast-path point; the best of these is the machine's matmul peak) and each core's achieved FLOP/s as a share of it
(not a roofline: that would also need each kernel's arithmetic intensity and the memory bandwidth); a grid over M
at one N; the whole modules MultiHeadAttention and LatentAttention (projections included) at N = 16,384 and 32,768
and their time ratio; the fitted log-log slope of time against N per method. A core point is skipped, with a note,
when the memory its attention call must hold (q, k, v, output, maps) exceeds the memory budget or its predicted
time (analytic FLOPs at the measured matmul rate) exceeds the time budget. Peak memory is measured by
:func:`lattn.complexity.peak_bytes` in a separate, untimed run (which doubles as the warm-up): on a core, whose
q, k, v are views of its input, it sees what the call creates (``formula_bytes``: output and maps, by formula);
:func:`~lattn.bench.complexity.run.stage_peaks` shows which stage of the latent core sets that peak.

This package: :mod:`~lattn.bench.complexity.run` measures (config, rows), :mod:`~lattn.bench.complexity.report`
reads the rows (table, slopes, targets, CSV); this file is the command line.

The command line writes its rows to ``./lattn-results/bench-complexity/`` (or ``--out``/``--csv``);
``--update-shipped`` makes the full run and replaces ``lattn/data/bench_complexity_2core.csv``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..._cli import add_output_options, add_parser, announce_done, output_folder
from ...complexity import method_cost
from .report import (
    FIELDS,
    STORED_CSV,
    achieved_flops_per_s,
    format_table,
    formula_curves,
    honest_data,
    human_bytes,
    loglog_slope,
    matmul_fraction,
    module_ratios,
    read_csv,
    series,
    slopes,
    speedups,
    targets,
    write_csv,
)
from .run import GIB, METHODS, MODULES, BenchConfig, reuse_freed_memory, run_benchmark, stage_peaks

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
    "honest_data",
    "human_bytes",
    "loglog_slope",
    "matmul_fraction",
    "method_cost",
    "module_ratios",
    "read_csv",
    "register",
    "reuse_freed_memory",
    "run_benchmark",
    "series",
    "slopes",
    "speedups",
    "stage_peaks",
    "targets",
    "write_csv",
]


DESCRIPTION = """\
Time and memory of full attention against latent attention as the sequence length N
grows, measured on this machine: the attention cores for N from 256 to 65,536 tokens, a
grid over the number of latents M, the whole modules at N = 16,384 and 32,768, and this
machine's matrix-multiply speed for reference. It prints a table with the fitted growth
(slope of time against N on a log-log scale) and writes every measurement to a CSV.
Points that would not fit the memory or time budget are skipped with a note.

Time on a 2-core laptop CPU: --quick under 30 s; the full run about 5 minutes.

Output: bench_complexity.csv in ./lattn-results/bench-complexity/ in the current
directory (or --out DIR, or --csv FILE). --from-csv FILE prints the report of a stored
CSV without measuring. --update-shipped makes the full run, the way the measurement
shipped for notebook 02 was made, and replaces it."""

EXAMPLES = """\
Examples:
  python -m lattn.bench complexity --quick
  python -m lattn.bench complexity --reuse-freed-memory
  python -m lattn.bench complexity --quick --ns 1024 4096 --csv my-run.csv
  python -m lattn.bench complexity --from-csv my-run.csv
  python -m lattn.bench complexity --update-shipped"""

SETTINGS = ("ns", "ms", "m", "module_ns", "heads", "d_head", "batch", "min_run_time", "time_budget", "fit_from")


def _main(args: argparse.Namespace) -> None:
    config = BenchConfig.quick() if args.quick else BenchConfig()
    overrides = {k: getattr(args, k) for k in SETTINGS}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    if args.m is not None and args.ms is None and args.m not in config.ms:
        overrides["ms"] = (*config.ms, args.m)
    config = replace(config, **overrides)
    if args.ns is not None:
        config = replace(config, m_grid_n=max(args.ns))
    if args.from_csv and not args.update_shipped:
        print(format_table(read_csv(args.from_csv), config.fit_from))
        return
    changed = [
        f"--{k.replace('_', '-')}" for k in ("quick", "from_csv", *SETTINGS) if getattr(args, k) not in (None, False)
    ]
    out = output_folder(args, changed, file=args.csv)
    csv_path = args.csv or out / (STORED_CSV if args.update_shipped else "bench_complexity.csv")
    if (args.reuse_freed_memory or args.update_shipped) and not reuse_freed_memory():  # the stored run used it
        print("note: --reuse-freed-memory needs glibc; measuring with the default allocator", flush=True)
    print(f"config: {asdict(config)}", flush=True)
    start = time.perf_counter()
    rows = run_benchmark(config, progress=(lambda text: print(f"  … {text}", flush=True)) if args.verbose else None)
    print(format_table(rows, config.fit_from))
    print(f"\n({time.perf_counter() - start:.1f} s)")
    print(f"wrote {write_csv(rows, csv_path)}")
    announce_done(csv_path if args.csv else out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "complexity", "full vs latent attention as N grows; --quick under 30 s",
                   DESCRIPTION, EXAMPLES)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="N up to 16,384, short timings, small budgets (under 30 s)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the rows to this CSV file (instead of --out)")
    p.add_argument(
        "--from-csv", type=Path, metavar="FILE", help="print the report of a stored CSV instead of measuring"
    )
    p.add_argument("--ns", type=int, nargs="+", help="sequence lengths N (default 256 … 65,536)")
    p.add_argument("--ms", type=int, nargs="+", help="latent counts of the M grid (at the largest N given)")
    p.add_argument("--m", type=int, help="latents M in the N grid (default 64)")
    p.add_argument("--module-ns", type=int, nargs="+", help="N of the whole-module comparison, those in --ns "
                   "(default 16,384 32,768; if none is in --ns: the largest N where full attention's core ran)")  # fmt: skip
    p.add_argument("--heads", type=int, help="heads H (default 4)")
    p.add_argument(
        "--d-head",
        "--dim-head",
        dest="d_head",
        type=int,
        help="head size d_head (default 64; --dim-head is its old name)",
    )
    p.add_argument("--batch", type=int, help="batch B (default 1)")
    p.add_argument("--min-run-time", type=float, help="seconds per timing (default 0.5; --quick 0.05)")
    p.add_argument("--time-budget", type=float, help="skip a core point predicted slower than this, in seconds "
                   "(default 15; --quick 0.5)")  # fmt: skip
    p.add_argument("--reuse-freed-memory", action="store_true", help="keep freed memory for reuse (glibc only): big "
                   "temporaries then cost no page faults; the shipped run used it")  # fmt: skip
    p.add_argument("--fit-from", type=int, help="fit slopes on N ≥ this (default 1,024)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each point as it is measured")
    add_output_options(p, "bench-complexity", STORED_CSV)
    p.set_defaults(func=_main)
