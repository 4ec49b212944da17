"""``python -m lattn.bench mla``: rows, cache sizes, verdicts, CSV round trip and the CLI, on a tiny config."""

from __future__ import annotations

import lattn.bench
from lattn._cli import run_subcommands
from lattn.bench import mla as bench
from lattn.mla import MODES, MLAConfig

TOY = MLAConfig(dim=16, heads=2, d_head=4, d_c=8, d_rope=2, d_cq=0, name="toy")


def test_benchmark_rows_and_cache_bytes():
    seen = []
    rows = bench.benchmark((8, 16), (8,), config=TOY, batch=2, min_run_time=0.005, repeats=2, progress=seen.append)
    keys = [(r["phase"], r["context"], r["mode"]) for r in rows]
    assert keys == [(p, c, m) for p, c in [("prefill", 8), ("decode", 8), ("decode", 16)] for m in MODES]
    assert seen == ["prefill at 8 tokens", "decode at 8 tokens", "decode at 16 tokens"]
    for r in rows:
        kind = "MLA naive" if r["mode"] == "naive" else "MLA"  # auto and absorbed share the latent layout
        assert r["cache_bytes"] == TOY.kv_cache_bytes(kind, context=r["context"], batch=2, bits=32)
        assert 0 < r["ms_min"] <= r["ms"] <= r["ms_max"] and r["repeats"] == 2
        tokens = 2 * (r["context"] if r["phase"] == "prefill" else 1)
        assert abs(r["tokens_per_s"] - tokens / r["ms"] * 1e3) <= 0.05 + 1e-3 * r["tokens_per_s"]
    assert "| decode | 16 |" in bench.format_modes_table(rows) and "| 16 |" in bench.format_table(rows)


def test_verdicts_by_overlapping_ranges():
    row = lambda mode, lo, mid, hi: {"mode": mode, "ms_min": lo, "ms": mid, "ms_max": hi}
    assert bench.verdict(row("naive", 1, 2, 3), row("absorbed", 2.5, 4, 5)) == "within noise"
    assert bench.verdict(row("naive", 1, 2, 3), row("absorbed", 3.5, 4, 5)) == "naive faster"
    assert bench.verdict(row("auto", 6, 7, 8), row("naive", 1, 2, 3)) == "naive faster"
    rows = [
        {"phase": "prefill", "context": 4, "mode": m, "ms": ms, "ms_min": ms * 0.9, "ms_max": ms * 1.1}
        for m, ms in (("naive", 10.0), ("absorbed", 20.0), ("auto", 10.5))
    ]
    (s,) = bench.summary(rows)
    assert s["absorbed_vs_naive"] == 0.5 and s["absorbed_or_naive"] == "naive faster"
    assert s["auto_vs_best"] == 1.05 and s["auto_vs_faster"] == "within noise"


def test_csv_round_trip_and_stored_file(tmp_path):
    rows = bench.benchmark((8,), (4,), config=TOY, min_run_time=0.005, repeats=1)
    path = bench.write_csv(rows, tmp_path / "sub" / "b.csv")
    assert bench.read_csv(path) == rows
    stored = bench.read_csv()  # the measurement shipped for notebook 05
    for phase, lengths in (("prefill", bench.PREFILL_LENGTHS), ("decode", bench.CONTEXTS)):
        got = sorted({(r["context"], r["mode"]) for r in stored if r["phase"] == phase})
        assert got == sorted((c, m) for c in lengths for m in MODES), phase
    cfg = bench.bench_config()
    assert {r["config"] for r in stored} == {cfg.name} and {r["threads"] for r in stored} == {2}
    for r in stored:  # the stored sizes are the formulas' (float32, one layer)
        kind = "MLA naive" if r["mode"] == "naive" else "MLA"
        per_layer = cfg.kv_cache_bytes(kind, context=r["context"], batch=r["batch"], bits=32) / cfg.layers
        assert r["cache_bytes"] == per_layer and r["ms_min"] <= r["ms"] <= r["ms_max"]


def test_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench_config", lambda: TOY)
    out = tmp_path / "r.csv"
    argv = ["mla", "--contexts", "8", "16", "--prefill", "4", "--min-run-time", "0.005", "--repeats", "1",
            "--csv", str(out)]  # fmt: skip
    run_subcommands(lattn.bench, argv)
    text = capsys.readouterr().out
    assert "naive / absorbed" in text and "| decode | 16 |" in text and "absorbed / naive" in text and out.exists()
    assert len(bench.read_csv(out)) == 3 * len(MODES)
