"""``python -m lattn.bench complexity``: measured time and memory of full vs latent attention as N grows.

Four attention cores (the real modules with their Linear projections removed, see
:func:`lattn.complexity.without_projections`), timed with ``torch.utils.benchmark`` on B×N×D float32 tokens:

* ``full-sdpa``       — :class:`~lattn.attention.MultiHeadAttention`'s fast path: torch's fused SDPA;
* ``full-explicit``   — its teaching path: explicit (B, H, N, N) float32 weights;
* ``latent-fast``     — :class:`~lattn.latent.LatentAttention`'s fast path (write, gather, broadcast);
* ``latent-teaching`` — its teaching path, all three maps kept.

Also: the same machine's fp32 matmul throughput (measured before and after the run and right after each latent
fast-path point; the best of these is the machine's capability) and the latent fast path's achieved FLOP/s as a
fraction of it (the "roofline"); a grid over M at one N; the whole modules (projections
included) at the largest N where full attention ran; the fitted log-log slope of time against N per method. A point
is skipped, with a note, when its weights would not fit the memory budget or its predicted time (analytic FLOPs at
the measured matmul rate) exceeds the time budget. Peak memory is measured by :func:`lattn.complexity.peak_bytes`
in a separate, untimed run (which doubles as the warm-up).

Example (``--reuse-freed-memory`` stops glibc from returning big freed blocks to the OS, see
:func:`reuse_freed_memory`; the stored run was made with it)::

    python -m lattn.bench complexity --quick                                   # < 30 s
    python -m lattn.bench complexity --reuse-freed-memory --csv run.csv      # the full run, a few minutes
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import torch

from lattn.attention import MultiHeadAttention
from lattn.bench import matmul_flops_per_s, median_seconds
from lattn.complexity import (
    Cost,
    full_attention_cost,
    latent_attention_cost,
    peak_bytes,
    total_cost,
    without_projections,
)
from lattn.latent import LatentAttention

__all__ = [
    "METHODS",
    "MODULES",
    "STORED_CSV",
    "BenchConfig",
    "achieved_flops_per_s",
    "format_table",
    "human_bytes",
    "loglog_slope",
    "method_cost",
    "read_csv",
    "register",
    "reuse_freed_memory",
    "run_benchmark",
    "slopes",
    "targets",
    "write_csv",
]

METHODS = {
    "full-sdpa": "full attention, torch SDPA (fused)",
    "full-explicit": "full attention, explicit N×N weights",
    "latent-fast": "latent attention, fast path",
    "latent-teaching": "latent attention, teaching path",
}
MODULES = {"mha-module": "MultiHeadAttention (fast)", "latent-module": "LatentAttention (fast)"}
STORED_CSV = "bench_complexity_2core.csv"  # in lattn/data/: the run behind notebook 02's static figure
FIELDS = (
    "section", "method", "n", "m", "batch", "heads", "dim_head", "threads", "torch", "allocator",
    "seconds", "flops", "peak_bytes", "formula_bytes", "matmul_rate", "note",
)  # fmt: skip
GIB = 2**30
_allocator = "default"  # what reuse_freed_memory() did to this process's allocator


def reuse_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (mallopt: mmap threshold 1 GiB, no trimming).

    By default glibc returns every freed block above 32 MiB to the operating system, so the next one costs a page
    fault per 4 KiB page on first touch — on some machines more than the matmul that fills it (a 64 MiB map at
    N = 65,536). Caching allocators (jemalloc, tcmalloc) avoid this too. Process-wide, for benchmark runs only;
    returns False (and changes nothing) where the C library is not glibc.
    """
    global _allocator
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(-3, 2**30) == 1 and libc.mallopt(-1, 2**31 - 1) == 1  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False
    if ok:
        _allocator = "glibc, freed memory reused"
    return ok


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. The defaults are the full run; :meth:`quick` is the < 30 s one."""

    ns: tuple[int, ...] = tuple(2**k for k in range(8, 17))  # 256 … 65,536 tokens
    m: int = 64  # latents in the N grid
    ms: tuple[int, ...] = (16, 64, 256, 1024)  # the M grid …
    m_grid_n: int = 16_384  # … at this N
    batch: int = 1
    heads: int = 4
    dim_head: int = 64
    memory_budget: int = 2 * GIB  # skip a point whose attention core must hold more bytes than this
    time_budget: float = 15.0  # skip a point predicted to take longer than this (seconds per call)
    min_run_time: float = 0.5  # seconds per torch.utils.benchmark measurement
    repeats: int = 3  # rounds over the whole grid; each point keeps its fastest median (the machine may be shared)
    fit_from: int = 1024  # fit slopes on N ≥ this (smaller N is dominated by fixed overheads)
    matmul_n: int = 2048  # size of the (n×n)·(n×n) matmul that measures the machine's throughput
    seed: int = 0

    @classmethod
    def quick(cls) -> BenchConfig:
        """N up to 16,384 for latent attention, full attention up to 2,048; under 30 s on 2 cores."""
        return cls(
            ns=(512, 1024, 2048, 4096, 16_384),
            ms=(32, 64, 128),
            m_grid_n=2048,
            memory_budget=GIB // 8,
            time_budget=0.5,
            min_run_time=0.05,
            repeats=1,
            matmul_n=1024,
        )

    def __post_init__(self) -> None:
        for name in ("m", "m_grid_n", "batch", "heads", "dim_head", "repeats", "matmul_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("ns", "ms"):
            values = getattr(self, name)
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {values!r}")
        if self.min_run_time <= 0 or self.time_budget <= 0 or self.memory_budget <= 0:
            raise ValueError("min_run_time, time_budget and memory_budget must be positive")


def loglog_slope(ns: list[float], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(n): ≈ 2 for an O(N²) method, ≈ 1 for O(N)."""
    if len(ns) != len(seconds) or len(set(ns)) < 2:
        raise ValueError(f"need at least two distinct n with one time each, got n={list(ns)}, seconds={list(seconds)}")
    if min(ns) <= 0 or min(seconds) <= 0:
        raise ValueError("n and seconds must be positive to take logarithms")
    xs, ys = [math.log(n) for n in ns], [math.log(t) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _seconds(fn: Callable[[], object], first: float, config: BenchConfig) -> float:
    """One median of ``fn``: ``min_run_time`` worth of runs, or — for a call slower than that — about two runs
    (torch.utils.benchmark's own warm-up run, then one block)."""
    return median_seconds(fn, max(config.min_run_time, first))


def method_cost(method: str, n: int, m: int, *, batch: int = 1, heads: int = 4, dim_head: int = 64) -> Cost:
    """The analytic :class:`~lattn.complexity.Cost` of one benchmarked method (a key of :data:`METHODS` or
    :data:`MODULES`) at N = n, M = m: the attention core's, or the whole module's for the ``*-module`` methods."""
    if method not in METHODS and method not in MODULES:
        raise ValueError(f"unknown method {method!r}; choose from {[*METHODS, *MODULES]}")
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head}
    path = "teaching" if method.endswith(("explicit", "teaching")) else "fast"
    if method.startswith(("full", "mha")):
        return full_attention_cost(n, path=path, **sizes)
    return total_cost(latent_attention_cost(n, m, path=path, **sizes), core_only=method != "latent-module")


def _cost(method: str, n: int, m: int, config: BenchConfig) -> Cost:
    return method_cost(method, n, m, batch=config.batch, heads=config.heads, dim_head=config.dim_head)


def _skip_reason(cost, seconds_predicted: float, config: BenchConfig, method: str) -> str:
    if cost.core_bytes > config.memory_budget:
        return f"skipped: must hold {human_bytes(cost.core_bytes)} > {human_bytes(config.memory_budget)} memory budget"
    if seconds_predicted > config.time_budget:
        why = " (its N×N is never stored: time, not memory, is the limit)" if method == "full-sdpa" else ""
        return f"skipped: predicted {seconds_predicted:.2g} s > {config.time_budget:g} s time budget{why}"
    return ""


def run_benchmark(config: BenchConfig | None = None, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Measure everything in ``config``; one row (a dict with :data:`FIELDS`) per point.

    Sections: ``matmul`` (before and after), ``n-grid`` (the four methods × N at M = ``config.m``), ``m-grid`` (latent
    paths × M at N = ``config.m_grid_n``), ``module`` (whole modules with projections, at the largest N where fused
    full attention runs). ``seconds`` is None for a skipped point, whose ``note`` says why. The grid is measured
    ``config.repeats`` times, round after round, and each point keeps its fastest median: on a shared machine a burst
    of load then spoils one round of a point, not all of its measurements.
    """
    config = config or BenchConfig()
    say = progress or (lambda _text: None)
    B, H, dh = config.batch, config.heads, config.dim_head
    D = H * dh
    base = {"batch": B, "heads": H, "dim_head": dh, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "allocator": _allocator, "matmul_rate": ""}  # fmt: skip
    rows: list[dict] = []

    def matmul_rate(min_run_time: float) -> float:
        """FLOP/s of an fp32 (n×n)·(n×n) matmul (2 per multiply-add, as the counter counts)."""
        return 2 * matmul_flops_per_s(config.matmul_n, min_run_time=min_run_time)

    def matmul_row() -> float:
        rate, n = matmul_rate(max(0.2, config.min_run_time)), config.matmul_n
        rows.append({**base, "section": "matmul", "method": "matmul", "n": n, "m": 0, "seconds": 2 * n**3 / rate,
                     "flops": 2 * n**3, "peak_bytes": "", "formula_bytes": "", "note": ""})  # fmt: skip
        return rate

    torch.manual_seed(config.seed)
    full = MultiHeadAttention(D, H).eval()
    cores = {"full": without_projections(full)}
    latents: dict[int, LatentAttention] = {}
    tokens: dict[int, torch.Tensor] = {}

    def latent(m: int) -> LatentAttention:
        if m not in latents:
            latents[m] = LatentAttention(D, m, H).eval()
        return latents[m]

    def runner(method: str, n: int, m: int) -> Callable[[], object]:
        if n not in tokens:
            tokens[n] = torch.randn(B, n, D, generator=torch.Generator().manual_seed(config.seed + n))
        x, teaching = tokens[n], method.endswith(("explicit", "teaching"))
        if method == "mha-module":
            return lambda: full(x)
        if method == "latent-module":
            return lambda: latent(m)(x)
        if method.startswith("full"):
            return lambda: cores["full"](x, return_maps=teaching)
        if ("latent", m) not in cores:
            cores["latent", m] = without_projections(latent(m))
        return lambda: cores["latent", m](x, return_maps=teaching)

    peak_bytes(lambda: torch.ones(1) + 1)  # the tracker's first use imports a lot: not inside a measurement
    say("matmul throughput")
    rate = matmul_row()

    # every point, with its analytic cost and, where it must be skipped, the reason
    points = [("n-grid", method, n, config.m) for n in config.ns for method in METHODS]
    points += [
        ("m-grid", method, config.m_grid_n, m) for m in config.ms for method in ("latent-fast", "latent-teaching")
    ]
    planned = []
    for section, method, n, m in points:
        cost = _cost(method, n, m, config)
        note = _skip_reason(cost, cost.core_flops / rate, config, method)
        planned.append({"section": section, "method": method, "n": n, "m": m, "cost": cost, "note": note})
    ran_full = [p["n"] for p in planned if p["method"] == "full-sdpa" and not p["note"]]
    if ran_full:
        for method in MODULES:
            cost = _cost(method, max(ran_full), config.m, config)
            planned.append({"section": "module", "method": method, "n": max(ran_full), "m": config.m, "cost": cost,
                            "note": ""})  # fmt: skip

    with torch.inference_mode():
        for round_ in range(config.repeats):
            for p in planned:
                if p["note"]:
                    continue
                say(f"round {round_ + 1}/{config.repeats}: {p['section']} {p['method']} N={p['n']:,} M={p['m']}")
                fn = runner(p["method"], p["n"], p["m"])
                if "seconds" not in p:  # first round: the untimed memory run, which is also the warm-up
                    start = time.perf_counter()
                    p["peak_bytes"] = peak_bytes(fn)
                    p["first"], p["seconds"] = time.perf_counter() - start, math.inf
                p["seconds"] = min(p["seconds"], _seconds(fn, p["first"], config))
                if (
                    p["method"] == "latent-fast" and p["section"] == "n-grid"
                ):  # more samples of the roofline's reference
                    p["matmul_rate"] = max(p.get("matmul_rate", 0.0), matmul_rate(max(0.1, config.min_run_time)))

    for p in planned:
        module = p["section"] == "module"
        row = {**base, "section": p["section"], "method": p["method"], "n": p["n"], "m": p["m"], "note": p["note"],
               "flops": p["cost"].flops if module else p["cost"].core_flops,
               "formula_bytes": p["cost"].peak_bytes if module else p["cost"].core_bytes,
               "seconds": p.get("seconds"), "peak_bytes": p.get("peak_bytes", ""),
               "matmul_rate": p.get("matmul_rate", "")}  # fmt: skip
        rows.append(row)
    say("matmul throughput (again)")
    matmul_row()
    return rows


# --- reading the results ----------------------------------------------------------------------------------------


def _matmul_rate(rows: list[dict]) -> float:
    """The best fp32 matmul FLOP/s measured in the run (before, after, and next to each latent fast-path point):
    the machine's capability. On a shared machine any single measurement may be slowed down; the best is not."""
    rates = [r["flops"] / r["seconds"] for r in rows if r["section"] == "matmul"]
    return max(rates + [r["matmul_rate"] for r in rows if r.get("matmul_rate")])


def _measured(rows: list[dict], section: str, method: str) -> dict[int, dict]:
    key = "m" if section == "m-grid" else "n"
    return {r[key]: r for r in rows if r["section"] == section and r["method"] == method and r["seconds"] is not None}


def slopes(rows: list[dict], fit_from: int = 1024) -> dict[str, float | None]:
    """Fitted log-log slope of time against N for each method (N ≥ ``fit_from``), None if < 2 points."""
    out: dict[str, float | None] = {}
    for method in METHODS:
        points = {n: r["seconds"] for n, r in _measured(rows, "n-grid", method).items() if n >= fit_from}
        out[method] = loglog_slope(list(points), list(points.values())) if len(points) >= 2 else None
    return out


def achieved_flops_per_s(rows: list[dict], method: str, fit_from: int = 1024) -> float | None:
    """Median FLOP/s of ``method`` over its measured N ≥ ``fit_from`` (its formula FLOPs / its time), or None."""
    rates = sorted(r["flops"] / r["seconds"] for n, r in _measured(rows, "n-grid", method).items() if n >= fit_from)
    return rates[len(rates) // 2] if rates else None


def targets(rows: list[dict], fit_from: int = 1024) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets as (what, measured, target, met); met is None where the run lacks the point. The
    teaching/fast ratio is the worst over N ≥ ``fit_from`` (below, fixed per-call overheads dominate)."""
    fast, sdpa = _measured(rows, "n-grid", "latent-fast"), _measured(rows, "n-grid", "full-sdpa")
    teach = _measured(rows, "n-grid", "latent-teaching")
    rate = _matmul_rate(rows)
    out: list[tuple[str, str, str, bool | None]] = []

    def add(what: str, value: float | None, fmt: str, target: str, ok: Callable[[float], bool]) -> None:
        out.append((what, "n/a" if value is None else fmt.format(value), target, None if value is None else ok(value)))

    def get(table: dict, n: int) -> float | None:
        return table[n]["seconds"] if n in table else None

    s16, f16, f64 = get(sdpa, 16_384), get(fast, 16_384), get(fast, 65_536)
    add(
        "full-sdpa / latent-fast at N=16,384", s16 / f16 if s16 and f16 else None, "{:.1f}×", "≥ 60×", lambda v: v >= 60
    )
    add("latent-fast time(65,536) / time(16,384)", f64 / f16 if f64 and f16 else None, "{:.2f}", "≤ 4.5",
        lambda v: v <= 4.5)  # fmt: skip
    roof = fast[65_536]["flops"] / f64 / rate if f64 else None
    add("latent-fast FLOP/s / matmul FLOP/s at N=65,536", roof,
        "{:.0%}", "≥ 50 %", lambda v: v >= 0.5)  # fmt: skip
    common = [n for n in sorted(set(fast) & set(teach)) if n >= fit_from]
    worst = max((teach[n]["seconds"] / fast[n]["seconds"] for n in common), default=None)
    add(f"latent-teaching / latent-fast, worst N ≥ {fit_from:,}", worst, "{:.2f}×", "≤ 2×", lambda v: v <= 2)
    return out


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:,.{1 if seconds >= 0.01 else 2}f}"


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; binary units, three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _mem(row: dict | None) -> str:
    if row is None or row["seconds"] is None:
        return "—"
    return f"{human_bytes(row['peak_bytes'])} / {human_bytes(row['formula_bytes'])}"


def format_table(rows: list[dict], fit_from: int = 1024) -> str:
    """The printed report: config, matmul rate, N grid (times, ratios, roofline, memory), slopes, M grid, whole
    modules, notes on skipped points, targets."""
    r0 = rows[0]
    rate = _matmul_rate(rows)
    mat = [f"{r['flops'] / r['seconds'] / 1e9:.1f}" for r in rows if r["section"] == "matmul"]
    grid = {
        method: {r["n"]: r for r in rows if r["section"] == "n-grid" and r["method"] == method} for method in METHODS
    }
    m = next((r["m"] for r in rows if r["section"] == "n-grid"), 0)
    lines = [
        f"complexity benchmark: B={r0['batch']}, H={r0['heads']}, d_head={r0['dim_head']}, M={m}, float32, "
        f"{r0['threads']} threads, torch {r0['torch']}",
        f"fp32 matmul throughput: {' → '.join(mat)} GFLOP/s before → after the run; best of all its measurements "
        f"(also taken next to each latent-fast point): {rate / 1e9:.1f}, the roofline's reference",
        f"allocator: {r0.get('allocator') or 'default'}",
        "",
        "attention cores (projections removed), median time in ms:",
        f"{'N':>7} | {'full-sdpa':>10} | {'full-explicit':>13} | {'latent-fast':>11} | {'latent-teaching':>15} | "
        f"{'sdpa/latent':>11} | {'teach/fast':>10} | {'latent % of matmul':>18}",
    ]
    skipped: dict[str, str] = {}  # method → the note of its first skipped N
    for n in sorted({r["n"] for r in rows if r["section"] == "n-grid"}):
        cells = {}
        for method in METHODS:
            row = grid[method][n]
            cells[method] = "skipped*" if row["note"] else _ms(row["seconds"])
            if row["note"]:
                skipped.setdefault(method, f"* {method} at N = {n:,}: {row['note']}")
        sd, lf, lt = (grid[k][n]["seconds"] for k in ("full-sdpa", "latent-fast", "latent-teaching"))
        ratio = f"{sd / lf:,.1f}×" if sd and lf else "—"
        teach = f"{lt / lf:.2f}×" if lt and lf else "—"
        roof = f"{grid['latent-fast'][n]['flops'] / lf / rate:.0%}" if lf else "—"
        lines.append(
            f"{n:>7,} | {cells['full-sdpa']:>10} | {cells['full-explicit']:>13} | {cells['latent-fast']:>11} | "
            f"{cells['latent-teaching']:>15} | {ratio:>11} | {teach:>10} | {roof:>18}"
        )
    fitted = slopes(rows, fit_from)
    lines.append(
        f"{'slope':>7} | "
        + " | ".join(
            f"{('—' if fitted[k] is None else f'{fitted[k]:.2f}'):>{w}}" for k, w in zip(METHODS, (10, 13, 11, 15))
        )
        + f"   (log-log fit over N ≥ {fit_from:,})"
    )
    lines += ["", "peak memory held by the core (measured / formula: the bytes that must exist):"]
    lines.append(" | ".join([f"{'N':>7}", *(f"{k:>21}" for k in METHODS)]))
    for n in sorted({r["n"] for r in rows if r["section"] == "n-grid"}):
        lines.append(" | ".join([f"{n:>7,}", *(f"{_mem(grid[k][n]):>21}" for k in METHODS)]))
    lines += list(skipped.values())

    mgrid = [r for r in rows if r["section"] == "m-grid"]
    if mgrid:
        n = mgrid[0]["n"]
        lines += ["", f"latent attention cores at N={n:,} as M grows (ms; memory measured / formula):"]
        lines.append(
            f"{'M':>6} | {'latent-fast':>11} | {'latent-teaching':>15} | {'fast memory':>21} | {'teaching memory':>21}"
        )
        fast, teach = _measured(rows, "m-grid", "latent-fast"), _measured(rows, "m-grid", "latent-teaching")
        for mm in sorted({r["m"] for r in mgrid}):
            f, t = fast.get(mm), teach.get(mm)
            lines.append(
                f"{mm:>6} | {_ms(f and f['seconds']):>11} | {_ms(t and t['seconds']):>15} | "
                f"{_mem(f):>21} | {_mem(t):>21}"
            )
        big = {k: v["seconds"] for k, v in fast.items() if k >= 64}
        if len(big) >= 2:
            lines.append(
                f"slope of latent-fast time against M (M ≥ 64): {loglog_slope(list(big), list(big.values())):.2f}"
            )

    mods = {r["method"]: r for r in rows if r["section"] == "module" and r["seconds"] is not None}
    if len(mods) == 2:
        mha, lat = mods["mha-module"], mods["latent-module"]
        lines += [
            "",
            f"whole modules with their Linear projections at N={mha['n']:,}: MultiHeadAttention {_ms(mha['seconds'])} ms,"
            f" LatentAttention {_ms(lat['seconds'])} ms → {mha['seconds'] / lat['seconds']:.1f}× "
            f"(FLOPs ratio {mha['flops'] / lat['flops']:.1f}×; latent module at {lat['flops'] / lat['seconds'] / rate:.0%}"
            " of matmul)",
        ]
    lines += ["", "targets (B=1, H=4, d_head=64, M=64, fp32 on 2 cores; reported, not asserted):"]
    for what, value, target, met in targets(rows, fit_from):
        verdict = {True: "met", False: "MISSED", None: "not measured in this run"}[met]
        lines.append(f"  {what:<48} {value:>8}   target {target:<6} {verdict}")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Write the rows of :func:`run_benchmark` to a CSV file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({k: ("" if r[k] is None else r[k]) for k in FIELDS} for r in rows)
    return path


def read_csv(path: str | Path | None = None) -> list[dict]:
    """Rows of a benchmark CSV (default: the stored 2-core run shipped in ``lattn/data``)."""
    text = resources.files("lattn").joinpath("data", STORED_CSV).read_text() if path is None else Path(path).read_text()
    rows = list(csv.DictReader(text.splitlines()))
    for row in rows:
        for key in ("n", "m", "batch", "heads", "dim_head", "threads", "flops"):
            row[key] = int(row[key])
        for key in ("seconds", "matmul_rate"):
            row[key] = float(row[key]) if row.get(key) else None
        for key in ("peak_bytes", "formula_bytes"):
            row[key] = int(row[key]) if row[key] else None
    return rows


def _main(args: argparse.Namespace) -> None:
    config = BenchConfig.quick() if args.quick else BenchConfig()
    names = ("ns", "ms", "m", "heads", "dim_head", "batch", "min_run_time", "fit_from")
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
    p.add_argument("--heads", type=int, help="heads H (default 4)")
    p.add_argument("--dim-head", type=int, help="head size d_head (default 64)")
    p.add_argument("--batch", type=int, help="batch B (default 1)")
    p.add_argument("--min-run-time", type=float, help="seconds per timing (default 0.5; --quick 0.05)")
    p.add_argument("--reuse-freed-memory", action="store_true", help="glibc mallopt: keep freed memory for reuse "
                   "(big temporaries then cost no page faults; see reuse_freed_memory)")  # fmt: skip
    p.add_argument("--fit-from", type=int, help="fit slopes on N ≥ this (default 1,024)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each point as it is measured")
    p.set_defaults(func=_main)
