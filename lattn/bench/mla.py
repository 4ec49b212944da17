"""``python -m lattn.bench mla``: decode speed of DeepSeek MLA with a naive cache (full per-head K and V) against an
absorbed cache (only the latent c_KV and the shared rotary key), from 64 to 16,384 cached tokens.

One decode step = one new token per sequence attending to ``context`` cached tokens. The cache is filled with random
numbers (their values do not change the work), so no O(N²) prefill is needed. The config is DeepSeek-V3 at an eighth
of its widths with all 128 heads (dim 896, d_h 16, d_c 64, d_rope 8), which keeps V3's cache ratio exactly (naive /
absorbed = 5,120 / 72 = 71×) and fits a 2-core laptop. Each point is the fastest of ``repeats`` interleaved medians
(lattn.bench.median_seconds), which damps the noise of other programs on a busy machine.

The command line writes its rows to ``./lattn-results/bench-mla/`` (or ``--out``/``--csv``); ``--update-shipped``
makes the full run and replaces ``lattn/data/bench_mla_2core.csv`` (notebook 05's stored measurement).
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Callable
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lattn._cli import add_output_options, add_parser, announce_done, output_folder
from lattn.bench import median_seconds
from lattn.mla import MODES, PRESETS, MLAConfig, MultiHeadLatentAttention

__all__ = [
    "CONTEXTS",
    "QUICK_CONTEXTS",
    "STORED_CSV",
    "bench_config",
    "decode_benchmark",
    "decode_curves",
    "format_table",
    "read_csv",
    "register",
    "write_csv",
]

CONTEXTS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
QUICK_CONTEXTS = (512, 2048, 8192)
STORED_CSV = "bench_mla_2core.csv"  # in lattn/data/: the measurement behind notebook 05's static figure
FIELDS = ("config", "mode", "context", "batch", "threads", "ms_per_step", "tokens_per_s", "cache_bytes")


def bench_config() -> MLAConfig:
    """DeepSeek-V3 at an eighth of its widths: dim 896, 128 heads, d_h 16, d_c 64, d_rope 8, d_cq 192."""
    return PRESETS["DeepSeek-V3"].scaled(0.125)


def decode_benchmark(
    contexts: tuple[int, ...] = CONTEXTS,
    *,
    config: MLAConfig | None = None,
    batch: int = 1,
    min_run_time: float = 0.1,
    repeats: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Time one float32 decode step per mode and context; one row per (context, mode).

    Each row: config, mode, context, batch, threads, ms_per_step, tokens_per_s (= batch / step time) and
    cache_bytes (the real ``nbytes`` of that layer's cache holding ``context`` tokens). The step time is the
    fastest of ``repeats`` medians, the two modes measured in turn. ``progress(text)`` is called before each context.
    """
    config = config or bench_config()
    torch.manual_seed(seed)
    mla = MultiHeadLatentAttention(config).eval()
    x = torch.randn(batch, 1, config.dim)  # the new token of each sequence
    rows = []
    for context in contexts:
        if progress:
            progress(f"{context:,} cached tokens")
        steps, caches = {}, {}
        for mode in MODES:
            mla.mode = mode
            caches[mode] = cache = mla.new_cache(batch, context)
            for buf in cache.buffers.values():
                buf.normal_()
            cache.length = context - 1  # the step writes the last slot and attends to all `context` tokens
        best = dict.fromkeys(MODES, math.inf)
        with torch.inference_mode():
            for _ in range(repeats):
                for mode in MODES:
                    mla.mode = mode
                    steps[mode] = partial(mla, x, cache=caches[mode], start_pos=context - 1)  # rewinds each call
                    best[mode] = min(best[mode], median_seconds(steps[mode], min_run_time))
        for mode in MODES:
            rows.append(
                {
                    "config": config.name,
                    "mode": mode,
                    "context": context,
                    "batch": batch,
                    "threads": torch.get_num_threads(),
                    "ms_per_step": round(best[mode] * 1e3, 4),
                    "tokens_per_s": round(batch / best[mode], 1),
                    "cache_bytes": caches[mode].nbytes,
                }
            )
    return rows


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Write benchmark rows (as returned by :func:`decode_benchmark`) to a CSV file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: str | Path | None = None) -> list[dict]:
    """Rows of a benchmark CSV (default: the stored 2-core measurement shipped in ``lattn/data``)."""
    if path is None:
        text = resources.files("lattn").joinpath("data", STORED_CSV).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    for row in rows:
        for key in ("context", "batch", "threads", "cache_bytes"):
            row[key] = int(row[key])
        for key in ("ms_per_step", "tokens_per_s"):
            row[key] = float(row[key])
    return rows


def decode_curves(rows: list[dict]) -> dict[str, Any]:
    """The benchmark's rows as curves against the context: ``contexts`` (C,) sorted; ``tokens_per_s``,
    ``ms_per_step`` and ``cache_bytes`` {mode: (C,) array}; ``speedup`` {context: absorbed / naive tokens/s}."""
    by = {(r["context"], r["mode"]): r for r in rows}
    contexts = sorted({r["context"] for r in rows})
    curves: dict[str, Any] = {"contexts": np.array(contexts)}
    for key in ("tokens_per_s", "ms_per_step", "cache_bytes"):
        curves[key] = {m: np.array([by[c, m][key] for c in contexts]) for m in MODES}
    curves["speedup"] = {c: by[c, "absorbed"]["tokens_per_s"] / by[c, "naive"]["tokens_per_s"] for c in contexts}
    return curves


def format_table(rows: list[dict]) -> str:
    """A Markdown table: one line per context with both modes' tokens/s, the speed-up and the cache sizes."""
    curves = decode_curves(rows)
    lines = [
        "| context | naive tokens/s | absorbed tokens/s | absorbed / naive | naive cache MB | absorbed cache MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    speed, cache = curves["tokens_per_s"], curves["cache_bytes"]
    for i, (context, speedup) in enumerate(curves["speedup"].items()):
        lines.append(
            f"| {context:,} | {speed['naive'][i]:,.0f} | {speed['absorbed'][i]:,.0f} | {speedup:.2f}× | "
            f"{cache['naive'][i] / 1e6:.1f} | {cache['absorbed'][i] / 1e6:.1f} |"
        )
    return "\n".join(lines)


DESCRIPTION = """\
Decode speed of DeepSeek's multi-head latent attention (MLA) on this machine: one new
token attending to 64 to 16,384 cached tokens, with a naive cache (full keys and values
per head) against an absorbed cache (only the small latent vector per token). The layer
is DeepSeek-V3 at an eighth of its widths with all 128 heads, so the cache sizes keep
V3's ratio (71 times smaller when absorbed). It prints tokens per second and cache sizes.

Time on a 2-core laptop CPU: --quick under 30 s; the full run about a minute.

Output: bench_mla.csv in ./lattn-results/bench-mla/ in the current directory (or
--out DIR, or --csv FILE). --update-shipped makes the full run and replaces the
measurement shipped for notebook 05."""

EXAMPLES = """\
Examples:
  python -m lattn.bench mla --quick
  python -m lattn.bench mla
  python -m lattn.bench mla --contexts 1024 4096 --batch 4 --csv my-run.csv
  python -m lattn.bench mla --update-shipped"""


def _main(args: argparse.Namespace) -> None:
    changed = [f"--{k.replace('_', '-')}" for k in ("quick", "contexts", "min_run_time", "repeats", "threads")
               if getattr(args, k) not in (None, False)]  # fmt: skip
    changed += [f"--batch {args.batch} (shipped: 1)"] if args.batch != 1 else []
    out = output_folder(args, changed, file=args.csv)
    csv_path = args.csv or out / (STORED_CSV if args.update_shipped else "bench_mla.csv")
    if args.threads:
        torch.set_num_threads(args.threads)
    contexts = tuple(args.contexts) if args.contexts else (QUICK_CONTEXTS if args.quick else CONTEXTS)
    min_run_time = args.min_run_time if args.min_run_time is not None else (0.05 if args.quick else 0.1)
    config = bench_config()
    print(
        f"MLA decode, {config.name}: dim {config.dim}, {config.heads} heads, d_h {config.d_h}, d_c {config.d_c}, "
        f"d_rope {config.d_rope}; batch {args.batch}, float32, {torch.get_num_threads()} threads",
        flush=True,
    )
    start = time.perf_counter()
    repeats = args.repeats or (2 if args.quick else 5)
    rows = decode_benchmark(contexts, config=config, batch=args.batch, min_run_time=min_run_time, repeats=repeats)
    print(format_table(rows))
    print(f"({time.perf_counter() - start:.1f} s)")
    print(f"wrote {write_csv(rows, csv_path)}")
    announce_done(csv_path if args.csv else out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "mla", "MLA decode speed, naive vs absorbed cache; --quick under 30 s", DESCRIPTION,
                   EXAMPLES)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="contexts 512 2048 8192, short timings (under 30 s)")
    p.add_argument("--contexts", type=int, nargs="+", help="cached tokens to test (default 64 128 … 16384)")
    p.add_argument("--batch", type=int, default=1, help="sequences decoded together (default 1)")
    p.add_argument("--min-run-time", type=float, help="seconds per timing (default 0.1; --quick 0.05)")
    p.add_argument(
        "--repeats", type=int, help="interleaved timings per point, the fastest counts (default 5; --quick 2)"
    )
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the rows to this CSV file (instead of --out)")
    add_output_options(p, "bench-mla", STORED_CSV)
    p.set_defaults(func=_main)
