"""``python -m lattn.bench mla``: rows, cache sizes, CSV round trip and the CLI, on a tiny config."""

from __future__ import annotations

import lattn.bench
from lattn._cli import run_subcommands
from lattn.bench import mla as bench
from lattn.mla import MLAConfig

TOY = MLAConfig(dim=16, heads=2, d_h=4, d_c=8, d_rope=2, d_cq=0, name="toy")


def test_decode_benchmark_rows_and_cache_bytes():
    seen = []
    rows = bench.decode_benchmark((8, 16), config=TOY, batch=2, min_run_time=0.005, repeats=1, progress=seen.append)
    assert [(r["context"], r["mode"]) for r in rows] == [(8, "naive"), (8, "absorbed"), (16, "naive"), (16, "absorbed")]
    assert len(seen) == 2
    for r in rows:
        kind = "MLA" if r["mode"] == "absorbed" else "MLA naive"
        assert r["cache_bytes"] == TOY.kv_cache_bytes(kind, context=r["context"], batch=2, bits=32)
        assert r["ms_per_step"] > 0 and r["tokens_per_s"] > 0
    assert "| 16 |" in bench.format_table(rows)


def test_csv_round_trip_and_stored_file(tmp_path):
    rows = bench.decode_benchmark((8,), config=TOY, min_run_time=0.005, repeats=1)
    path = bench.write_csv(rows, tmp_path / "sub" / "b.csv")
    assert bench.read_csv(path) == rows
    stored = bench.read_csv()  # the measurement shipped for notebook 05
    contexts = sorted({r["context"] for r in stored})
    assert contexts == list(bench.CONTEXTS)
    cfg = bench.bench_config()
    assert {r["config"] for r in stored} == {cfg.name}
    for r in stored:  # the stored sizes are the formulas' (float32, one layer)
        kind = "MLA" if r["mode"] == "absorbed" else "MLA naive"
        assert (
            r["cache_bytes"] == cfg.kv_cache_bytes(kind, context=r["context"], batch=r["batch"], bits=32) / cfg.layers
        )


def test_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "bench_config", lambda: TOY)
    out = tmp_path / "r.csv"
    argv = ["mla", "--contexts", "8", "16", "--min-run-time", "0.005", "--repeats", "1", "--csv", str(out)]
    run_subcommands(lattn.bench, argv)
    text = capsys.readouterr().out
    assert "absorbed / naive" in text and "| 16 |" in text and out.exists()
    assert len(bench.read_csv(out)) == 4
