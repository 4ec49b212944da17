"""Reading the complexity benchmark's rows: the printed report, fitted slopes, achieved FLOP/s and their share of
the machine's matmul peak, the issue's targets, whole-module ratios, the data of notebook 02's "what M costs"
figure, and CSV files (the stored 2-core run behind notebook 02 is one). No measuring here: that is
:mod:`lattn.bench.complexity.run`."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from ...complexity import CORE_METHODS, Shape, created_bytes, human_bytes, method_cost

__all__ = [
    "FIELDS",
    "STORED_CSV",
    "achieved_flops_per_s",
    "format_table",
    "formula_curves",
    "honest_data",
    "human_bytes",
    "loglog_slope",
    "matmul_fraction",
    "module_ratios",
    "read_csv",
    "series",
    "slopes",
    "speedups",
    "targets",
    "write_csv",
]

STORED_CSV = "bench_complexity_2core.csv"  # in lattn/data/: the run behind notebook 02's static figure
FIELDS = (
    "section", "method", "n", "m", "batch", "heads", "d_head", "threads", "torch", "allocator",
    "seconds", "flops", "peak_bytes", "formula_bytes", "matmul_rate", "note",
)  # fmt: skip


def loglog_slope(ns: list[float], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(n): ≈ 2 for an O(N²) method, ≈ 1 for O(N)."""
    if len(ns) != len(seconds) or len(set(ns)) < 2:
        raise ValueError(f"need at least two distinct n with one time each, got n={list(ns)}, seconds={list(seconds)}")
    if min(ns) <= 0 or min(seconds) <= 0:
        raise ValueError("n and seconds must be positive to take logarithms")
    xs, ys = [math.log(n) for n in ns], [math.log(t) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _matmul_rate(rows: list[dict]) -> float:
    """The best fp32 matmul FLOP/s measured in the run (before, after, and next to each latent fast-path point):
    the machine's capability. On a shared machine any single measurement may be slowed down; the best is not."""
    rates = [r["flops"] / r["seconds"] for r in rows if r["section"] == "matmul"]
    return max(rates + [r["matmul_rate"] for r in rows if r.get("matmul_rate")])


def _measured(rows: list[dict], section: str, method: str) -> dict[int, dict]:
    key = "m" if section == "m-grid" else "n"
    return {r[key]: r for r in rows if r["section"] == section and r["method"] == method and r["seconds"] is not None}


def series(rows: list[dict], method: str, key: str = "seconds", section: str = "n-grid") -> tuple[list, list]:
    """(N values, ``key`` values) of the measured points of one method, sorted by N (by M in the ``m-grid``)."""
    points = sorted(_measured(rows, section, method).items())
    return [n for n, _ in points], [r[key] for _, r in points]


def slopes(rows: list[dict], fit_from: int = 1024) -> dict[str, float | None]:
    """Fitted log-log slope of time against N for each method (N ≥ ``fit_from``), None if < 2 points."""
    out: dict[str, float | None] = {}
    for method in CORE_METHODS:
        points = {n: r["seconds"] for n, r in _measured(rows, "n-grid", method).items() if n >= fit_from}
        out[method] = loglog_slope(list(points), list(points.values())) if len(points) >= 2 else None
    return out


def speedups(rows: list[dict]) -> dict[int, float]:
    """{N: full-sdpa time / latent-fast time} over the N where both attention cores were measured."""
    sdpa, fast = _measured(rows, "n-grid", "full-sdpa"), _measured(rows, "n-grid", "latent-fast")
    return {n: sdpa[n]["seconds"] / fast[n]["seconds"] for n in sorted(set(sdpa) & set(fast))}


def module_ratios(rows: list[dict]) -> dict[int, dict[str, float]]:
    """{N: {"time", "flops"}}: MultiHeadAttention / LatentAttention, whole modules, where both were measured."""
    mha, lat = _measured(rows, "module", "mha-module"), _measured(rows, "module", "latent-module")
    return {n: {"time": mha[n]["seconds"] / lat[n]["seconds"], "flops": mha[n]["flops"] / lat[n]["flops"]}
            for n in sorted(set(mha) & set(lat))}  # fmt: skip


def matmul_fraction(rows: list[dict], method: str, n: int) -> float | None:
    """Its share of the matmul peak: one measured point's formula FLOPs per second divided by the best float32
    FLOP/s of a large square matrix product measured in the same run; None where not measured. (Not a roofline,
    which would also need each kernel's arithmetic intensity and the machine's memory bandwidth.)"""
    row = _measured(rows, "n-grid", method).get(n)
    return None if row is None else row["flops"] / row["seconds"] / _matmul_rate(rows)


def achieved_flops_per_s(rows: list[dict], method: str, fit_from: int = 1024) -> float | None:
    """Median FLOP/s of ``method`` over its measured N ≥ ``fit_from`` (its formula FLOPs / its time), or None."""
    rates = sorted(r["flops"] / r["seconds"] for n, r in _measured(rows, "n-grid", method).items() if n >= fit_from)
    return rates[len(rates) // 2] if rates else None


def formula_curves(rows: list[dict], y: str = "time", fit_from: int = 1024, num: int = 40) -> dict[str, tuple]:
    """{method: (N values, formula values)} on ``num`` log-spaced N over the n-grid, each up to the largest N its
    method was measured at: for ``y="time"`` its formula FLOPs / its own median FLOP/s (the shape the formula
    predicts), for ``y="peak memory"`` the bytes the call creates (output and maps; q, k, v are its inputs), the
    quantity :func:`~lattn.complexity.peak_bytes` measures on a core."""
    if y not in ("time", "peak memory"):
        raise ValueError(f"y must be 'time' or 'peak memory', got {y!r}")
    grid = [r for r in rows if r["section"] == "n-grid"]
    first, ns = grid[0], sorted({r["n"] for r in grid})
    sizes = {"batch": first["batch"], "heads": first["heads"], "d_head": first["d_head"]}
    fine = np.unique(np.geomspace(ns[0], ns[-1], num).round().astype(int))
    curves = {}
    for method in CORE_METHODS:
        rate = achieved_flops_per_s(rows, method, fit_from) if y == "time" else None
        measured = _measured(rows, "n-grid", method)
        xs = fine[fine <= max(measured, default=0)] if rate or y != "time" else fine[:0]
        shapes = [Shape(seq_len=int(n), num_latents=first["m"], **sizes) for n in xs]
        if rate:
            values = [method_cost(method, shape).core_flops / rate for shape in shapes]
        else:
            values = [created_bytes(method, shape) for shape in shapes]
        curves[method] = (xs, np.asarray(values, dtype=float))
    return curves


def honest_data(rows: list[dict], fit_from_m: int = 64) -> dict:
    """The data of notebook 02's "what M costs" figure (:func:`lattn.viz.complexity.honest_figure`), from a run's rows.

    ``m_sweep`` {method: (M values, seconds)} of the latent paths at one N (``n``); ``sdpa_seconds``: fused full
    attention's time at that N (None if not measured); ``m_slope``: the fitted log-log slope of latent-fast time
    against M (M ≥ ``fit_from_m``); ``m_even``: the M at which that fit reaches ``sdpa_seconds`` — an extrapolation
    beyond the sweep, not a measurement (None without two points or SDPA); ``m_flops_even``: the M at which the
    cores' FLOPs are equal (N / 3); ``ratios`` {"attention cores", "whole modules"}: full / latent time at
    ``ratio_n``, the largest N where both were measured (empty without a module run).
    """
    mgrid = [r for r in rows if r["section"] == "m-grid" and r["seconds"] is not None]
    n = mgrid[0]["n"] if mgrid else None
    sweep = {m: series(rows, m, section="m-grid") for m in ("latent-fast", "latent-teaching")}
    sdpa = dict(zip(*series(rows, "full-sdpa"))).get(n)
    ms, seconds = sweep["latent-fast"]
    fit = [(m, t) for m, t in zip(ms, seconds) if m >= fit_from_m]
    slope = loglog_slope(*map(list, zip(*fit))) if len(fit) >= 2 else None
    m_even = None
    if slope and sdpa:
        m_last, t_last = fit[-1]
        m_even = m_last * (sdpa / t_last) ** (1 / slope)
    cores, modules = speedups(rows), module_ratios(rows)
    both = [nm for nm in modules if nm in cores]
    ratio_n = max(both) if both else None
    ratios = {"attention cores": cores[ratio_n], "whole modules": modules[ratio_n]["time"]} if both else {}
    return {"m_sweep": {k: v for k, v in sweep.items() if v[0]}, "n": n, "sdpa_seconds": sdpa, "m_slope": slope,
            "m_even": m_even, "m_flops_even": None if n is None else n / 3, "ratios": ratios,
            "ratio_n": ratio_n}  # fmt: skip


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
    ratio = s16 / f16 if s16 and f16 else None
    add("full-sdpa / latent-fast at N=16,384", ratio, "{:.1f}×", "≥ 60×", lambda v: v >= 60)
    add("latent-fast time(65,536) / time(16,384)", f64 / f16 if f64 and f16 else None, "{:.2f}", "≤ 4.5",
        lambda v: v <= 4.5)  # fmt: skip
    share = fast[65_536]["flops"] / f64 / rate if f64 else None
    add("latent-fast FLOP/s / matmul FLOP/s at N=65,536", share, "{:.0%}", "≥ 50 %", lambda v: v >= 0.5)
    common = [n for n in sorted(set(fast) & set(teach)) if n >= fit_from]
    worst = max((teach[n]["seconds"] / fast[n]["seconds"] for n in common), default=None)
    add(f"latent-teaching / latent-fast, worst N ≥ {fit_from:,}", worst, "{:.2f}×", "≤ 2×", lambda v: v <= 2)
    return out


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:,.{1 if seconds >= 0.01 else 2}f}"


def _mem(row: dict | None) -> str:
    if row is None or row["seconds"] is None:
        return "—"
    return f"{human_bytes(row['peak_bytes'])} / {human_bytes(row['formula_bytes'])}"


def _n_grid_lines(rows: list[dict], rate: float, fit_from: int) -> list[str]:
    """Times, ratios and share of the matmul peak per N; the fitted slopes; measured vs formula memory (what the
    core creates); notes on skipped points."""
    grid = {m: {r["n"]: r for r in rows if r["section"] == "n-grid" and r["method"] == m} for m in CORE_METHODS}
    ns = sorted({r["n"] for r in rows if r["section"] == "n-grid"})
    lines = [
        "attention cores (projections removed), median time in ms:",
        f"{'N':>7} | {'full-sdpa':>10} | {'full-explicit':>13} | {'latent-fast':>11} | {'latent-teaching':>15} | "
        f"{'sdpa/latent':>11} | {'teach/fast':>10} | {'latent % of matmul':>18}",
    ]
    skipped: dict[str, str] = {}  # method → the note of its first skipped N
    for n in ns:
        cells = {}
        for method in CORE_METHODS:
            row = grid[method][n]
            cells[method] = "skipped*" if row["note"] else _ms(row["seconds"])
            if row["note"]:
                skipped.setdefault(method, f"* {method} at N = {n:,}: {row['note']}")
        sd, lf, lt = (grid[k][n]["seconds"] for k in ("full-sdpa", "latent-fast", "latent-teaching"))
        ratio = f"{sd / lf:,.1f}×" if sd and lf else "—"
        teach = f"{lt / lf:.2f}×" if lt and lf else "—"
        share = f"{grid['latent-fast'][n]['flops'] / lf / rate:.0%}" if lf else "—"
        lines.append(
            f"{n:>7,} | {cells['full-sdpa']:>10} | {cells['full-explicit']:>13} | {cells['latent-fast']:>11} | "
            f"{cells['latent-teaching']:>15} | {ratio:>11} | {teach:>10} | {share:>18}"
        )
    fitted = slopes(rows, fit_from)
    cells = (
        f"{('—' if fitted[k] is None else f'{fitted[k]:.2f}'):>{w}}" for k, w in zip(CORE_METHODS, (10, 13, 11, 15))
    )
    lines.append(f"{'slope':>7} | " + " | ".join(cells) + f"   (log-log fit over N ≥ {fit_from:,})")
    lines += ["", "peak memory the core creates, measured / formula (output and maps; q, k, v are its inputs):"]
    lines.append(" | ".join([f"{'N':>7}", *(f"{k:>21}" for k in CORE_METHODS)]))
    lines += [" | ".join([f"{n:>7,}", *(f"{_mem(grid[k][n]):>21}" for k in CORE_METHODS)]) for n in ns]
    return lines + list(skipped.values())


def _m_grid_lines(rows: list[dict]) -> list[str]:
    mgrid = [r for r in rows if r["section"] == "m-grid"]
    if not mgrid:
        return []
    lines = ["", f"latent attention cores at N={mgrid[0]['n']:,} as M grows (ms; memory measured / formula):"]
    lines.append(
        f"{'M':>6} | {'latent-fast':>11} | {'latent-teaching':>15} | {'fast memory':>21} | {'teaching memory':>21}"
    )
    fast, teach = _measured(rows, "m-grid", "latent-fast"), _measured(rows, "m-grid", "latent-teaching")
    for mm in sorted({r["m"] for r in mgrid}):
        f, t = fast.get(mm), teach.get(mm)
        lines.append(
            f"{mm:>6} | {_ms(f and f['seconds']):>11} | {_ms(t and t['seconds']):>15} | {_mem(f):>21} | {_mem(t):>21}"
        )
    big = {k: v["seconds"] for k, v in fast.items() if k >= 64}
    if len(big) >= 2:
        lines.append(f"slope of latent-fast time against M (M ≥ 64): {loglog_slope(list(big), list(big.values())):.2f}")
    return lines


def _module_lines(rows: list[dict], rate: float) -> list[str]:
    mha, lat = _measured(rows, "module", "mha-module"), _measured(rows, "module", "latent-module")
    lines = []
    for n, ratio in module_ratios(rows).items():
        lines.append(
            f"whole modules with their Linear projections at N={n:,}: MultiHeadAttention {_ms(mha[n]['seconds'])} ms,"
            f" LatentAttention {_ms(lat[n]['seconds'])} ms → {ratio['time']:.1f}× "
            f"(FLOPs ratio {ratio['flops']:.1f}×; latent module at {lat[n]['flops'] / lat[n]['seconds'] / rate:.0%}"
            " of matmul)"
        )
    return ["", *lines] if lines else []


def format_table(rows: list[dict], fit_from: int = 1024) -> str:
    """The printed report: config, matmul rate, N grid (times, ratios, share of the matmul peak, memory), slopes,
    M grid, whole modules, notes on skipped points, targets."""
    r0 = rows[0]
    rate = _matmul_rate(rows)
    mat = [f"{r['flops'] / r['seconds'] / 1e9:.1f}" for r in rows if r["section"] == "matmul"]
    m = next((r["m"] for r in rows if r["section"] == "n-grid"), 0)
    lines = [
        f"complexity benchmark: B={r0['batch']}, H={r0['heads']}, d_head={r0['d_head']}, M={m}, float32, "
        f"{r0['threads']} threads, torch {r0['torch']}",
        f"fp32 matmul throughput: {' → '.join(mat)} GFLOP/s before → after the run; best of all its measurements "
        f"(also taken next to each latent-fast point): {rate / 1e9:.1f}, the matmul peak",
        f"allocator: {r0.get('allocator') or 'default'}",
        "",
        *_n_grid_lines(rows, rate, fit_from),
        *_m_grid_lines(rows),
        *_module_lines(rows, rate),
        "",
        "targets (B=1, H=4, d_head=64, M=64, fp32 on 2 cores; reported, not asserted):",
    ]
    for what, value, target, met in targets(rows, fit_from):
        verdict = {True: "met", False: "MISSED", None: "not measured in this run"}[met]
        lines.append(f"  {what:<48} {value:>8}   target {target:<6} {verdict}")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Write the rows of :func:`~lattn.bench.complexity.run.run_benchmark` to a CSV file."""
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
        if "dim_head" in row:  # runs written before the head width was named d_head everywhere
            row["d_head"] = row.pop("dim_head")
        for key in ("n", "m", "batch", "heads", "d_head", "threads", "flops"):
            row[key] = int(row[key])
        for key in ("seconds", "matmul_rate"):
            row[key] = float(row[key]) if row.get(key) else None
        for key in ("peak_bytes", "formula_bytes"):
            row[key] = int(row[key]) if row[key] else None
    return rows
