"""``python -m lattn.bench complexity``: a smoke run of the CLI on tiny sizes (table, CSV round trip, skip notes),
the log-log slope fit, the target verdicts on hand-made rows, and bad configurations."""

import contextlib
import io
import math

import pytest
import torch

import lattn.bench
from lattn._cli import run_subcommands
from lattn.bench import complexity as bc

TINY = ["--ns", "16", "32", "64", "--ms", "2", "4", "--m", "4", "--heads", "2", "--d-head", "8", "--min-run-time",
        "0.001", "--fit-from", "16"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny benchmark through the real CLI entry point (quick settings, sizes overridden): (csv path, stdout)."""
    path = tmp_path_factory.mktemp("bench") / "run.csv"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_subcommands(lattn.bench, ["complexity", "--quick", *TINY, "--csv", str(path)])
    return path, out.getvalue()


def test_cli_smoke_run_prints_the_report_and_writes_a_csv(tiny_run):
    path, out = tiny_run
    for text in ("fp32 matmul throughput", "attention cores", "slope", "peak memory the core creates",
                 "as M grows", "whole modules", "targets", f"wrote {path}"):  # fmt: skip
        assert text in out, f"{text!r} missing from:\n{out}"
    rows = bc.read_csv(path)
    grid = [r for r in rows if r["section"] == "n-grid"]
    assert {(r["method"], r["n"]) for r in grid} == {(m, n) for m in bc.METHODS for n in (16, 32, 64)}
    assert all(r["seconds"] > 0 and r["peak_bytes"] >= r["formula_bytes"] > 0 for r in grid)  # formula = lower bound
    assert sum(r["section"] == "matmul" for r in rows) == 2
    assert all(r["matmul_rate"] > 0 for r in grid if r["method"] == "latent-fast")  # samples of the matmul peak
    assert all(r["allocator"] == "default" and r["torch"] == torch.__version__ for r in rows)
    assert {r["m"] for r in rows if r["section"] == "m-grid"} == {2, 4}
    assert {r["method"] for r in rows if r["section"] == "module"} == set(bc.MODULES)
    # the FLOPs column is the formula's (the counter checks those in test_complexity)
    sdpa = next(r for r in grid if r["method"] == "full-sdpa" and r["n"] == 64)
    assert sdpa["flops"] == 4 * 2 * 64 * 64 * 8
    # the printed report is format_table of the rows, which the CSV keeps
    assert bc.format_table(rows, 16) in out


def test_cli_prints_a_stored_csv(tiny_run, capsys):
    path, _ = tiny_run
    run_subcommands(lattn.bench, ["complexity", "--from-csv", str(path), "--fit-from", "16"])
    assert capsys.readouterr().out.strip() == bc.format_table(bc.read_csv(path), 16)


def test_skipped_points_carry_a_note():
    config = bc.BenchConfig(ns=(32, 64), m=2, ms=(2,), m_grid_n=32, heads=1, d_head=4, memory_budget=10_000,
                            time_budget=1.0, min_run_time=0.001, repeats=1, matmul_n=64)  # fmt: skip
    rows = bc.run_benchmark(config)
    explicit = {r["n"]: r for r in rows if r["method"] == "full-explicit"}
    assert explicit[32]["seconds"] is not None  # 32·32·4 B = 4 KiB of weights fit in 10 kB
    assert explicit[64]["seconds"] is None and "memory budget" in explicit[64]["note"]  # 16 KiB do not
    table = bc.format_table(rows)
    assert "skipped*" in table and "* full-explicit at N = 64: skipped" in table
    # a predicted time beyond the budget skips too
    slow = bc.run_benchmark(bc.BenchConfig(**{**config.__dict__, "time_budget": 1e-12, "memory_budget": 2**30}))
    assert all(r["seconds"] is None and "time budget" in r["note"] for r in slow if r["section"] != "matmul")


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_slope_of_an_exact_power_law(power):
    ns = [256, 1024, 4096, 16384]
    assert bc.loglog_slope(ns, [3e-6 * n**power for n in ns]) == pytest.approx(power, abs=1e-12)


def test_slope_is_a_least_squares_fit():
    # log t = [0, 1, 3] at log n = [0, 1, 2]: slope = Σ(x−x̄)(y−ȳ) / Σ(x−x̄)² = (−1·−4/3 + 1·5/3) / 2 = 1.5
    ns = [1, math.e, math.e**2]
    assert bc.loglog_slope(ns, [1, math.e, math.e**3]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="two distinct"):
        bc.loglog_slope([8, 8], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        bc.loglog_slope([8, 16], [0.0, 2.0])


def _row(section, method, n, seconds, flops=0, m=64):
    return {"section": section, "method": method, "n": n, "m": m, "batch": 1, "heads": 4, "d_head": 64,
            "threads": 2, "seconds": seconds, "flops": flops, "peak_bytes": 1, "formula_bytes": 1, "note": ""}  # fmt: skip


def test_targets_on_hand_made_rows():
    """Matmul: 2·1000 FLOPs in 1e-7 s = 20 GFLOP/s. SDPA 7.0 s vs latent 0.1 s at 16k → 70× (met); latent 0.4 s
    at 64k → 4.0 (met), its 1e10 FLOPs in 0.4 s = 25 GFLOP/s = 125 % (met); teaching 0.25 s vs fast 0.1 s at 16k
    → 2.5× (missed)."""
    rows = [
        _row("matmul", "matmul", 10, 1e-7, flops=2000),
        _row("n-grid", "full-sdpa", 16384, 7.0),
        _row("n-grid", "latent-fast", 16384, 0.1),
        _row("n-grid", "latent-fast", 65536, 0.4, flops=10**10),
        _row("n-grid", "latent-teaching", 16384, 0.25),
        _row("n-grid", "latent-teaching", 65536, 0.6),
    ]
    got = {what: (value, met) for what, value, _target, met in bc.targets(rows)}
    assert list(got.values()) == [("70.0×", True), ("4.00", True), ("125%", True), ("2.50×", False)]
    # without the 65,536 point two targets cannot be judged
    partial = bc.targets([r for r in rows if r["n"] != 65536])
    assert [met for *_, met in partial] == [True, None, None, False]


def test_human_bytes():
    sizes = (512, 1536, 2**20 * 3, 2**30 * 4.5, 2**44)
    assert [bc.human_bytes(b) for b in sizes] == ["512 B", "1.5 KiB", "3 MiB", "4.5 GiB", "16 TiB"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ns": ()}, "ns must be"),
        ({"ms": (0,)}, "ms must be"),
        ({"heads": 0}, "heads"),
        ({"min_run_time": 0}, "positive"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bc.BenchConfig(**kwargs)


def test_quick_config_is_smaller_than_the_full_one():
    quick, full = bc.BenchConfig.quick(), bc.BenchConfig()
    assert max(quick.ns) < max(full.ns) == 65_536 and quick.time_budget < full.time_budget


def test_whole_modules_at_several_n_print_their_ratio():
    """The issue's module ratio MultiHeadAttention / LatentAttention: at every N of ``module_ns`` that is in ``ns``."""
    config = bc.BenchConfig(ns=(16, 32), m=2, ms=(2,), m_grid_n=32, module_ns=(16, 32, 4096), heads=1, d_head=4,
                            min_run_time=0.001, repeats=1, matmul_n=64)  # fmt: skip
    rows = bc.run_benchmark(config)
    assert sorted((r["method"], r["n"]) for r in rows if r["section"] == "module") == [
        ("latent-module", 16), ("latent-module", 32), ("mha-module", 16), ("mha-module", 32)
    ]  # fmt: skip
    ratios = bc.module_ratios(rows)
    mods = {(r["method"], r["n"]): r for r in rows if r["section"] == "module"}
    for n in (16, 32):
        assert ratios[n]["time"] == mods["mha-module", n]["seconds"] / mods["latent-module", n]["seconds"]
        assert ratios[n]["flops"] == mods["mha-module", n]["flops"] / mods["latent-module", n]["flops"]
        assert f"whole modules with their Linear projections at N={n}: MultiHeadAttention" in bc.format_table(rows)
    with pytest.raises(ValueError, match="module_ns"):
        bc.BenchConfig(module_ns=(0,))


def test_stage_peaks_show_which_stage_sets_the_latent_cores_peak():
    """The write stage holds a block's scores and weights at once; the broadcast stage its (N, D) output. At
    N = 64, M = 4, H = 2 heads of 8 (one block): write = 2 × the (1, 2, 64, 4) float32 map, broadcast = 64·16·4."""
    peaks = bc.stage_peaks(64, 4, heads=2, d_head=8)
    assert set(peaks) == {"write", "gather", "broadcast", "all three"}
    assert peaks["write"] >= 2 * 2 * 64 * 4 * 4 and peaks["broadcast"] >= 64 * 16 * 4
    stages = [peaks[s] for s in ("write", "gather", "broadcast")]
    assert max(stages) <= peaks["all three"] <= sum(stages)  # small latent-side tensors may outlive their stage
