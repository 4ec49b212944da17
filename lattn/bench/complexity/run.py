"""What the complexity benchmark measures and how: :class:`BenchConfig` and :func:`run_benchmark` (one row per
point). Reading the rows — tables, slopes, targets, CSV files — is :mod:`lattn.bench.complexity.report`'s job."""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...attention import MultiHeadAttention
from ...checks import check_int
from ...complexity import (
    CORE_METHODS,
    MODULE_METHODS,
    Cost,
    Shape,
    created_bytes,
    human_bytes,
    method_cost,
    peak_bytes,
    without_projections,
)
from ...latent import STAGES, LatentAttention
from .. import matmul_flops_per_s, median_seconds

__all__ = ["GIB", "METHODS", "MODULES", "BenchConfig", "reuse_freed_memory", "run_benchmark", "stage_peaks"]

METHODS = dict(zip(CORE_METHODS, (
    "full attention, torch SDPA (fused)",
    "full attention, explicit N×N weights",
    "latent attention, fast path",
    "latent attention, teaching path",
)))  # fmt: skip
MODULES = dict(zip(MODULE_METHODS, ("MultiHeadAttention (fast)", "LatentAttention (fast)")))
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
    module_ns: tuple[int, ...] = (16_384, 32_768)  # whole modules at those of these N in ns (none: the largest N
    # at which full-sdpa runs)
    batch: int = 1
    heads: int = 4
    d_head: int = 64
    memory_budget: int = 2 * GIB  # skip a point whose attention core must hold more bytes than this
    time_budget: float = 15.0  # skip a core point predicted to take longer than this (seconds per call)
    min_run_time: float = 0.5  # seconds per measurement (lattn.bench.median_seconds)
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
            module_ns=(),
            memory_budget=GIB // 8,
            time_budget=0.5,
            min_run_time=0.05,
            repeats=1,
            matmul_n=1024,
        )

    def __post_init__(self) -> None:
        check_int(m=self.m, m_grid_n=self.m_grid_n, batch=self.batch, heads=self.heads, d_head=self.d_head,
                  repeats=self.repeats, matmul_n=self.matmul_n)  # fmt: skip
        for name in ("ns", "ms", "module_ns"):
            values = getattr(self, name)
            empty = not values and name != "module_ns"
            if empty or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty tuple of positive integers, got {values!r}")
        if self.min_run_time <= 0 or self.time_budget <= 0 or self.memory_budget <= 0:
            raise ValueError("min_run_time, time_budget and memory_budget must be positive")

    def shape(self, n: int, m: int) -> Shape:
        """The :class:`~lattn.complexity.Shape` of one point (float32)."""
        return Shape(batch=self.batch, seq_len=n, num_latents=m, heads=self.heads, d_head=self.d_head)


def _skip_reason(cost: Cost, seconds_predicted: float, config: BenchConfig, method: str) -> str:
    if cost.peak_bytes > config.memory_budget:
        return f"skipped: must hold {human_bytes(cost.peak_bytes)} > {human_bytes(config.memory_budget)} memory budget"
    if seconds_predicted > config.time_budget:
        why = " (its N×N is never stored: time, not memory, is the limit)" if method == "full-sdpa" else ""
        return f"skipped: predicted {seconds_predicted:.2g} s > {config.time_budget:g} s time budget{why}"
    return ""


def _plan(config: BenchConfig, rate: float) -> list[dict]:
    """Every point, with its analytic cost and, where it must be skipped, the reason."""
    points = [("n-grid", method, n, config.m) for n in config.ns for method in METHODS]
    points += [
        ("m-grid", method, config.m_grid_n, m) for m in config.ms for method in ("latent-fast", "latent-teaching")
    ]
    planned = []
    for section, method, n, m in points:
        cost = method_cost(method, config.shape(n, m))
        note = _skip_reason(cost, cost.core_flops / rate, config, method)
        planned.append({"section": section, "method": method, "n": n, "m": m, "cost": cost, "note": note})
    ran_full = [p["n"] for p in planned if p["method"] == "full-sdpa" and not p["note"]]
    module_ns = [n for n in config.module_ns if n in config.ns] or ([max(ran_full)] if ran_full else [])
    for n in module_ns:  # whole modules: fast paths only (O(N·D) memory), never skipped
        for method in MODULES:
            cost = method_cost(method, config.shape(n, config.m))
            planned.append({"section": "module", "method": method, "n": n, "m": config.m, "cost": cost, "note": ""})
    return planned


def run_benchmark(config: BenchConfig | None = None, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Measure everything in ``config``; one row (a dict with :data:`~lattn.bench.complexity.report.FIELDS`) per
    point.

    Sections: ``matmul`` (before and after), ``n-grid`` (the four methods × N at M = ``config.m``), ``m-grid`` (latent
    paths × M at N = ``config.m_grid_n``), ``module`` (whole modules with projections, at ``config.module_ns``).
    ``seconds`` is None for a skipped point, whose ``note`` says why. The grid is measured ``config.repeats`` times,
    round after round, and each point keeps its fastest median: on a shared machine a burst of load then spoils one
    round of a point, not all of its measurements.
    """
    config = config or BenchConfig()
    say = progress or (lambda _text: None)
    B, D = config.batch, config.heads * config.d_head
    base = {"batch": B, "heads": config.heads, "d_head": config.d_head, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "allocator": _allocator, "matmul_rate": ""}  # fmt: skip
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
    full = MultiHeadAttention(D, config.heads).eval()
    cores = {"full": without_projections(full)}
    latents: dict[int, LatentAttention] = {}
    tokens: dict[int, torch.Tensor] = {}

    def latent(m: int) -> LatentAttention:
        if m not in latents:
            latents[m] = LatentAttention(D, m, config.heads).eval()
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
    planned = _plan(config, matmul_row())
    with torch.inference_mode():
        for round_ in range(config.repeats):
            for p in (p for p in planned if not p["note"]):
                say(f"round {round_ + 1}/{config.repeats}: {p['section']} {p['method']} N={p['n']:,} M={p['m']}")
                fn = runner(p["method"], p["n"], p["m"])
                if "seconds" not in p:  # first round: the untimed memory run, which is also the warm-up
                    start = time.perf_counter()
                    p["peak_bytes"] = peak_bytes(fn)
                    p["first"], p["seconds"] = time.perf_counter() - start, math.inf
                # min_run_time worth of runs, or — for a call slower than that — about two runs
                p["seconds"] = min(p["seconds"], median_seconds(fn, max(config.min_run_time, p["first"])))
                if p["method"] == "latent-fast" and p["section"] == "n-grid":  # more samples of the matmul peak
                    p["matmul_rate"] = max(p.get("matmul_rate", 0.0), matmul_rate(max(0.1, config.min_run_time)))

    for p in planned:
        module = p["section"] == "module"  # a module makes its own q, k, v: the tracker sees them
        flops, held = p["cost"].totals(whole_module=module)
        formula_bytes = held if module else created_bytes(p["method"], config.shape(p["n"], p["m"]))
        rows.append({**base, "section": p["section"], "method": p["method"], "n": p["n"], "m": p["m"],
                     "note": p["note"], "flops": flops, "formula_bytes": formula_bytes, "seconds": p.get("seconds"),
                     "peak_bytes": p.get("peak_bytes", ""), "matmul_rate": p.get("matmul_rate", "")})  # fmt: skip
    say("matmul throughput (again)")
    matmul_row()
    return rows


def stage_peaks(n: int, m: int = 64, *, heads: int = 4, d_head: int = 64, seed: int = 0) -> dict[str, int]:
    """Peak bytes each stage of the latent fast path's core creates on its own (:func:`peak_bytes`; projections
    removed, so q, k, v are views of the input), B = 1, float32: ``{"write", "gather", "broadcast", "all three"}``.
    Shows which stage sets the core's measured peak at a given N."""
    check_int(n=n, m=m, heads=heads, d_head=d_head)
    D = heads * d_head
    x = torch.randn(1, n, D, generator=torch.Generator().manual_seed(seed))
    out = {}
    for name, stages in [*((s, (s,)) for s in STAGES), ("all three", STAGES)]:
        torch.manual_seed(seed)
        core = without_projections(LatentAttention(D, m, heads, stages=stages))
        with torch.inference_mode():
            out[name] = peak_bytes(lambda c=core: c(x))
    return out
