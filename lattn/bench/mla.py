"""``python -m lattn.bench mla``: DeepSeek MLA's speed in its three modes — ``naive`` (per-head keys and values cached,
always expanded), ``absorbed`` (the latent cached, always absorbed) and ``auto`` (the default: the latent cached, a
prompt expanded, a decoding token absorbed) — for reading a prompt (prefill) and for one decode step.

* **prefill**: one causal forward of ``context`` tokens from position 0, writing a fresh cache (1,024 and 4,096).
* **decode**: one new token attending to ``context`` cached tokens (64 to 16,384). The cache is filled with random
  numbers (their values do not change the work), so no O(N²) prefill is needed.

The config is DeepSeek-V3 at an eighth of its widths with all 128 heads (dim 896, d_head 16, d_c 64, d_rope 8),
which keeps V3's cache ratio exactly (per-head / latent = 5,120 / 72 = 71×) and fits a 2-core laptop. All modes are
timed in one process, interleaved: each of ``repeats`` rounds times every mode once (decode: the median of blocks of
calls, :func:`lattn.bench.median_seconds`; prefill: one call after a warm-up); a row holds the median over the rounds
and their range (``ms_min``/``ms_max``), so ratios come from the same run and overlapping ranges read "within noise".

The command line writes its rows to ``./lattn-results/bench-mla/`` (or ``--out``/``--csv``); ``--update-shipped``
makes the full run and replaces ``lattn/data/bench_mla_2core.csv`` (notebook 05's stored measurement).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
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
    "PREFILL_LENGTHS",
    "QUICK_CONTEXTS",
    "STORED_CSV",
    "bench_config",
    "benchmark",
    "decode_curves",
    "format_modes_table",
    "format_table",
    "read_csv",
    "register",
    "summary",
    "verdict",
    "write_csv",
]

CONTEXTS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)  # decode: cached tokens
PREFILL_LENGTHS = (1024, 4096)  # prefill: prompt tokens
QUICK_CONTEXTS, QUICK_PREFILL = (512, 2048, 8192), (512,)
STORED_CSV = "bench_mla_2core.csv"  # in lattn/data/: the measurement behind notebook 05's table and figure
FIELDS = ("config", "phase", "mode", "context", "batch", "threads", "repeats", "ms", "ms_min", "ms_max",
          "tokens_per_s", "cache_bytes")  # fmt: skip


def bench_config() -> MLAConfig:
    """DeepSeek-V3 at an eighth of its widths: dim 896, 128 heads, d_head 16, d_c 64, d_rope 8, d_cq 192."""
    return PRESETS["DeepSeek-V3"].scaled(0.125)


def _time_modes(
    steps: dict[str, Callable[[], object]], repeats: int, min_run_time: float | None
) -> dict[str, list[float]]:
    """Seconds per call of each step, ``repeats`` interleaved rounds; ``min_run_time`` None = one call per round
    (after one warm-up call each), else the median of blocks of calls (:func:`median_seconds`)."""
    seconds: dict[str, list[float]] = {mode: [] for mode in steps}
    with torch.inference_mode():
        if min_run_time is None:
            for step in steps.values():
                step()  # warm-up: first-call allocations
        for _ in range(repeats):
            for mode, step in steps.items():
                if min_run_time is None:
                    start = time.perf_counter()
                    step()
                    seconds[mode].append(time.perf_counter() - start)
                else:
                    seconds[mode].append(median_seconds(step, min_run_time))
    return seconds


def _row(config: MLAConfig, phase: str, mode: str, context: int, batch: int, seconds: list[float], cache) -> dict:
    ms = statistics.median(seconds) * 1e3
    tokens = batch * (context if phase == "prefill" else 1)  # tokens processed by one call
    return {"config": config.name, "phase": phase, "mode": mode, "context": context, "batch": batch,
            "threads": torch.get_num_threads(), "repeats": len(seconds), "ms": round(ms, 4),
            "ms_min": round(min(seconds) * 1e3, 4), "ms_max": round(max(seconds) * 1e3, 4),
            "tokens_per_s": round(tokens / ms * 1e3, 1), "cache_bytes": cache.nbytes}  # fmt: skip


def benchmark(
    contexts: tuple[int, ...] = CONTEXTS,
    prefill_lengths: tuple[int, ...] = PREFILL_LENGTHS,
    *,
    config: MLAConfig | None = None,
    modes: tuple[str, ...] = MODES,
    batch: int = 1,
    min_run_time: float = 0.1,
    repeats: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Time float32 prefill (``prefill_lengths``) and decode steps (``contexts``) in each of ``modes``; one row per
    (phase, context, mode): config, phase, mode, context, batch, threads, repeats, ms (median over the rounds),
    ms_min, ms_max, tokens_per_s (tokens of one call / ms) and cache_bytes (the real ``nbytes`` of that layer's cache
    holding ``context`` tokens). ``progress(text)`` is called before each point."""
    config = config or bench_config()
    torch.manual_seed(seed)
    mla = MultiHeadLatentAttention(config).eval()
    rows = []
    for phase, lengths in (("prefill", prefill_lengths), ("decode", contexts)):
        for context in lengths:
            if progress:
                progress(f"{phase} at {context:,} tokens")
            caches, steps = {}, {}
            x = torch.randn(batch, context if phase == "prefill" else 1, config.dim)
            for mode in modes:
                mla.mode = mode
                caches[mode] = cache = mla.new_cache(batch, context)
                if phase == "decode":
                    for buf in cache.buffers.values():
                        buf.normal_()
                    cache.length = context - 1
                start = 0 if phase == "prefill" else context - 1  # decode writes the last slot, sees all `context`
                steps[mode] = _step(mla, mode, x, cache, start)
            seconds = _time_modes(steps, repeats, min_run_time if phase == "decode" else None)
            rows += [_row(config, phase, m, context, batch, seconds[m], caches[m]) for m in modes]
    return rows


def _step(mla: MultiHeadLatentAttention, mode: str, x: torch.Tensor, cache, start: int) -> Callable[[], object]:
    def step() -> object:
        mla.mode = mode
        return mla(x, cache=cache, start_pos=start)  # start_pos rewinds the cache each call

    return step


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Write benchmark rows (as returned by :func:`benchmark`) to a CSV file."""
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
        for key in ("context", "batch", "threads", "repeats", "cache_bytes"):
            row[key] = int(row[key])
        for key in ("ms", "ms_min", "ms_max", "tokens_per_s"):
            row[key] = float(row[key])
    return rows


def _modes(rows: list[dict]) -> list[str]:
    return [m for m in ("naive", "absorbed", "auto") if any(r["mode"] == m for r in rows)]


def decode_curves(rows: list[dict]) -> dict[str, Any]:
    """The decode rows as curves against the context: ``contexts`` (C,) sorted; ``tokens_per_s``, ``ms_per_step``
    and ``cache_bytes`` {mode: (C,) array}; ``speedup`` {context: absorbed / naive tokens/s}."""
    rows = [r for r in rows if r["phase"] == "decode"]
    by = {(r["context"], r["mode"]): r for r in rows}
    contexts = sorted({r["context"] for r in rows})
    curves: dict[str, Any] = {"contexts": np.array(contexts)}
    for key, column in (("tokens_per_s", "tokens_per_s"), ("ms_per_step", "ms"), ("cache_bytes", "cache_bytes")):
        curves[key] = {m: np.array([by[c, m][column] for c in contexts]) for m in _modes(rows)}
    curves["speedup"] = {c: by[c, "absorbed"]["tokens_per_s"] / by[c, "naive"]["tokens_per_s"] for c in contexts}
    return curves


def verdict(a: dict, b: dict) -> str:
    """The verdict for two rows: "<mode> faster", or "within noise" when their ranges over the rounds overlap."""
    if a["ms_max"] >= b["ms_min"] and b["ms_max"] >= a["ms_min"]:
        return "within noise"
    return f"{a['mode']} faster" if a["ms"] < b["ms"] else f"{b['mode']} faster"


def summary(rows: list[dict]) -> list[dict]:
    """One entry per (phase, context) with every mode's row: ``ms`` {mode: median ms}, ``absorbed_vs_naive``
    (naive ms / absorbed ms: > 1 = absorbed faster), ``auto_vs_best`` (auto ms / the faster of naive and absorbed)
    and the verdicts ``absorbed_or_naive`` and ``auto_vs_faster`` (by :func:`verdict`)."""
    by = {(r["phase"], r["context"], r["mode"]): r for r in rows}
    out = []
    for phase, context in sorted({(r["phase"], r["context"]) for r in rows}, key=lambda k: (k[0] != "prefill", k[1])):
        got = {m: by[phase, context, m] for m in MODES if (phase, context, m) in by}
        faster = min((got["naive"], got["absorbed"]), key=lambda r: r["ms"])
        out.append({"phase": phase, "context": context, "ms": {m: r["ms"] for m, r in got.items()},
                    "range": {m: (r["ms_min"], r["ms_max"]) for m, r in got.items()},
                    "absorbed_vs_naive": got["naive"]["ms"] / got["absorbed"]["ms"],
                    "auto_vs_best": got["auto"]["ms"] / faster["ms"],
                    "absorbed_or_naive": verdict(got["naive"], got["absorbed"]),
                    "auto_vs_faster": verdict(got["auto"], faster)})  # fmt: skip
    return out


def format_modes_table(rows: list[dict]) -> str:
    """A Markdown table of the three modes: ms per call for prefill and decode, naive / absorbed (> 1: absorbed
    faster), auto / the faster mode, each with its verdict (ranges over the rounds overlap → within noise)."""
    lines = [
        "| phase | tokens | naive ms | absorbed ms | auto ms | naive / absorbed | auto / faster mode |",
        "|:--|---:|---:|---:|---:|:--|:--|",
    ]
    for s in summary(rows):
        ms = s["ms"]
        lines.append(
            f"| {s['phase']} | {s['context']:,} | {ms['naive']:,.1f} | {ms['absorbed']:,.1f} | {ms['auto']:,.1f} | "
            f"{s['absorbed_vs_naive']:.2f} ({s['absorbed_or_naive']}) | {s['auto_vs_best']:.2f} "
            f"({s['auto_vs_faster']}) |"
        )
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the decode sweep: tokens/s per mode, absorbed / naive and the caches' sizes."""
    curves = decode_curves(rows)
    modes = _modes([r for r in rows if r["phase"] == "decode"])
    lines = [
        "| context | " + " | ".join(f"{m} tokens/s" for m in modes) + " | absorbed / naive | per-head cache MB "
        "| latent cache MB |",
        "|---:|" + "---:|" * (len(modes) + 3),
    ]
    speed, cache = curves["tokens_per_s"], curves["cache_bytes"]
    for i, (context, speedup) in enumerate(curves["speedup"].items()):
        lines.append(
            f"| {context:,} | " + " | ".join(f"{speed[m][i]:,.0f}" for m in modes) + f" | {speedup:.2f}× | "
            f"{cache['naive'][i] / 1e6:.1f} | {cache['absorbed'][i] / 1e6:.1f} |"
        )
    return "\n".join(lines)


DESCRIPTION = """\
Speed of DeepSeek's multi-head latent attention (MLA) on this machine in its three
modes: naive (full keys and values per head cached and used), absorbed (only the small
latent vector per token cached, every call computed in the latent space) and auto (the
default: the latent cached, a prompt expanded into per-head keys, a decoding token
absorbed). It times reading a prompt of 1,024 and 4,096 tokens (prefill) and one decode
step over 64 to 16,384 cached tokens. The layer is DeepSeek-V3 at an eighth of its
widths with all 128 heads, so the cache sizes keep V3's ratio (71 times smaller latent).

Time on a 2-core laptop CPU: --quick under a minute; the full run 5 to 15 minutes
(the 4,096-token prefill dominates).

Output: bench_mla.csv in ./lattn-results/bench-mla/ in the current directory (or
--out DIR, or --csv FILE). --update-shipped makes the full run and replaces the
measurement shipped for notebook 05."""

EXAMPLES = """\
Examples:
  python -m lattn.bench mla --quick
  python -m lattn.bench mla --threads 2
  python -m lattn.bench mla --contexts 1024 4096 --prefill 1024 --batch 4 --csv my-run.csv
  python -m lattn.bench mla --update-shipped"""


def _main(args: argparse.Namespace) -> None:
    changed = [f"--{k.replace('_', '-')}" for k in ("quick", "contexts", "prefill", "min_run_time", "repeats", "threads")
               if getattr(args, k) not in (None, False)]  # fmt: skip
    changed += [f"--batch {args.batch} (shipped: 1)"] if args.batch != 1 else []
    out = output_folder(args, changed, file=args.csv)
    csv_path = args.csv or out / (STORED_CSV if args.update_shipped else "bench_mla.csv")
    if args.threads:
        torch.set_num_threads(args.threads)
    contexts = tuple(args.contexts) if args.contexts else (QUICK_CONTEXTS if args.quick else CONTEXTS)
    prefill = tuple(args.prefill) if args.prefill else (QUICK_PREFILL if args.quick else PREFILL_LENGTHS)
    min_run_time = args.min_run_time if args.min_run_time is not None else (0.05 if args.quick else 0.1)
    repeats = args.repeats or (2 if args.quick else 5)
    config = bench_config()
    print(
        f"MLA, {config.name}: dim {config.dim}, {config.heads} heads, d_head {config.d_head}, d_c {config.d_c}, "
        f"d_rope {config.d_rope}; batch {args.batch}, float32, {torch.get_num_threads()} threads, {repeats} rounds",
        flush=True,
    )
    start = time.perf_counter()
    rows = benchmark(contexts, prefill, config=config, batch=args.batch, min_run_time=min_run_time,
                     repeats=repeats, progress=lambda text: print(f"  {text} …", flush=True))  # fmt: skip
    print(format_modes_table(rows))
    print(format_table(rows))
    print(f"({time.perf_counter() - start:.1f} s)")
    print(f"wrote {write_csv(rows, csv_path)}")
    announce_done(csv_path if args.csv else out)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(subparsers, "mla", "MLA prefill and decode speed, naive vs absorbed vs auto; --quick under a minute",
                   DESCRIPTION, EXAMPLES)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="decode at 512 2048 8192, prefill at 512, 2 rounds")
    p.add_argument("--contexts", type=int, nargs="+", help="decode: cached tokens (default 64 128 … 16384)")
    p.add_argument("--prefill", type=int, nargs="+", help="prefill: prompt tokens (default 1024 4096)")
    p.add_argument("--batch", type=int, default=1, help="sequences processed together (default 1)")
    p.add_argument("--min-run-time", type=float, help="decode: seconds per timing (default 0.1; --quick 0.05)")
    p.add_argument("--repeats", type=int, help="interleaved rounds per point, the median counts (default 5; --quick 2)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write the rows to this CSV file (instead of --out)")
    add_output_options(p, "bench-mla", STORED_CSV)
    p.set_defaults(func=_main)
