"""The command lines of ``lattn.experiments`` and ``lattn.bench``: each runs with a tiny budget into a user folder
(printed at the start and the end), ``lattn/data`` stays byte-for-byte unchanged, ``--update-shipped`` refuses a
partial or changed run, and every ``--help`` is plain text with examples."""

from __future__ import annotations

import hashlib
import re
from functools import partial
from pathlib import Path

import pytest
import torch

import lattn.bench
import lattn.experiments
from lattn._cli import DATA_DIR, run_subcommands
from lattn.bench import mla as bench_mla
from lattn.experiments import bottleneck as bn
from lattn.experiments import lm as experiment_lm
from lattn.mla import MLAConfig

PACKAGES = {"experiments": lattn.experiments, "bench": lattn.bench}
TOY_MLA = MLAConfig(dim=16, heads=2, d_head=4, d_c=8, d_rope=2, d_cq=0, name="toy")
TINY_COMPLEXITY = ["--quick", "--ns", "16", "32", "--ms", "2", "--m", "2", "--heads", "1", "--dim-head", "4",
                   "--min-run-time", "0.001", "--fit-from", "16"]  # fmt: skip


def _hashes() -> dict[str, str]:
    return {str(p.relative_to(DATA_DIR)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(DATA_DIR.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.fixture(autouse=True)
def shipped_data_unchanged(monkeypatch, tmp_path):
    """Every test here runs in a fresh current directory and must leave every file of lattn/data as it was."""
    monkeypatch.chdir(tmp_path)
    before, threads = _hashes(), torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the bottleneck CLI sets one thread
    assert _hashes() == before, "lattn/data changed"


def _run(capsys, command: str, *argv: str) -> tuple[Path, list[str]]:
    """Run a CLI in-process; return the announced output path (which must be the same at start and end) and the
    printed lines."""
    run_subcommands(PACKAGES[command], list(argv))
    lines = capsys.readouterr().out.strip().splitlines()
    start, end = lines[0], lines[-1]
    assert start.startswith("Results go to ") and end.startswith("Results are in "), (start, end)
    assert start.removeprefix("Results go to ") == end.removeprefix("Results are in ")
    return Path(end.removeprefix("Results are in ")), lines


def test_bottleneck_writes_to_the_default_user_folder(capsys, monkeypatch, tmp_path):
    tiny = [{**c, "train": {**c["train"], "steps": 2}} for c in bn.configs(("distil",))[:1]]
    monkeypatch.setattr(bn, "configs", lambda parts: tiny if "distil" in parts else [])
    monkeypatch.setattr(bn, "run_timing", partial(bn.run_timing, lengths=(16,)))
    folder, _ = _run(capsys, "experiments", "bottleneck", "--part", "distil", "--part", "timing")
    assert folder == (tmp_path / "lattn-results" / "bottleneck").resolve()
    assert {p.name for p in folder.iterdir()} == {bn.RUNS_FILE, bn.TIMING_FILE}


def test_lm_writes_to_the_folder_given(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(
        experiment_lm, "measure_memory", partial(experiment_lm.measure_memory, prefill=(8,), decode=(8,))
    )
    argv = ["lm", "--kinds", "full", "--steps", "2", "--batch-size", "2", "--eval-every", "1", "--out", "mine"]
    folder, _ = _run(capsys, "experiments", *argv)
    assert folder == (tmp_path / "mine").resolve()
    assert {p.name for p in folder.iterdir()} == {"lm_full.pt", experiment_lm.RESULTS}


def test_bench_complexity_writes_to_the_default_user_folder(capsys, tmp_path):
    folder, _ = _run(capsys, "bench", "complexity", *TINY_COMPLEXITY)
    assert folder == (tmp_path / "lattn-results" / "bench-complexity").resolve()
    assert [p.name for p in folder.iterdir()] == ["bench_complexity.csv"]


def test_bench_mla_writes_to_the_default_user_folder(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(bench_mla, "bench_config", lambda: TOY_MLA)
    argv = ["--contexts", "8", "--prefill", "4", "--min-run-time", "0.005", "--repeats", "1"]
    folder, _ = _run(capsys, "bench", "mla", *argv)
    assert folder == (tmp_path / "lattn-results" / "bench-mla").resolve()
    assert len(bench_mla.read_csv(folder / "bench_mla.csv")) == 6  # (prefill 4, decode 8) × 3 modes


REFUSED = [
    ("experiments", ["lm", "--kinds", "full,mla", "--steps", "300", "--update-shipped"], "--kinds full,mla"),
    ("experiments", ["lm", "--steps", "300", "--update-shipped"], "--steps 300"),
    ("experiments", ["lm", "--update-shipped", "--out", "x"], "--out"),
    ("experiments", ["bottleneck", "--part", "capacity", "--update-shipped"], "--part capacity"),
    ("bench", ["complexity", "--quick", "--update-shipped"], "--quick"),
    ("bench", ["complexity", "--ns", "256", "--update-shipped"], "--ns"),
    ("bench", ["complexity", "--csv", "run.csv", "--update-shipped"], "--csv"),
    ("bench", ["mla", "--quick", "--update-shipped"], "--quick"),
    ("bench", ["mla", "--batch", "4", "--update-shipped"], "--batch 4"),
]


@pytest.mark.parametrize(("command", "argv", "named"), REFUSED, ids=[" ".join(a) for _, a, _ in REFUSED])
def test_update_shipped_refuses_a_partial_or_changed_run(capsys, command, argv, named):
    with pytest.raises(SystemExit) as refused:
        run_subcommands(PACKAGES[command], argv)
    message = str(refused.value.code)
    assert "--update-shipped replaces all the results shipped" in message and named in message, message
    assert "Results go to" not in capsys.readouterr().out  # refused before any work


@pytest.mark.parametrize(
    ("command", "argv"),
    [("experiments", ["lm", "--out", str(DATA_DIR)]), ("experiments", ["bottleneck", "--out", str(DATA_DIR / "sub")]),
     ("bench", ["complexity", "--csv", str(DATA_DIR / "bench_complexity_2core.csv")]),
     ("bench", ["mla", "--out", str(DATA_DIR)])],
)  # fmt: skip
def test_writing_into_the_shipped_data_needs_update_shipped(command, argv):
    with pytest.raises(SystemExit, match=r"inside lattn/data.*--update-shipped"):
        run_subcommands(PACKAGES[command], argv)


def test_update_shipped_with_the_shipped_settings_targets_lattn_data(capsys, monkeypatch):
    seen = {}
    monkeypatch.setattr(experiment_lm, "run", lambda kinds, out, **kw: seen.update(kinds=kinds, out=out, **kw))
    run_subcommands(lattn.experiments, ["lm", "--update-shipped"])
    assert seen["out"] == DATA_DIR and seen["kinds"] == experiment_lm.DEFAULT_KINDS
    assert {k: seen[k] for k in experiment_lm.SHIPPED} == experiment_lm.SHIPPED
    record = lambda contexts, prefill, **kw: seen.update(contexts=contexts, prefill=prefill) or []
    monkeypatch.setattr(bench_mla, "benchmark", record)
    monkeypatch.setattr(bench_mla, "write_csv", lambda rows, path: seen.update(csv=path) or path)
    run_subcommands(lattn.bench, ["mla", "--update-shipped"])
    assert seen["csv"] == DATA_DIR / bench_mla.STORED_CSV and seen["contexts"] == bench_mla.CONTEXTS
    assert seen["prefill"] == bench_mla.PREFILL_LENGTHS
    assert f"Results go to {DATA_DIR}" in capsys.readouterr().out


HELPS = [("experiments", []), ("experiments", ["bottleneck"]), ("experiments", ["lm"]),
         ("bench", []), ("bench", ["complexity"]), ("bench", ["mla"])]  # fmt: skip


@pytest.mark.parametrize(("command", "argv"), HELPS, ids=[" ".join([c, *a]) for c, a in HELPS])
def test_help_is_plain_text_for_users_with_examples(capsys, command, argv):
    with pytest.raises(SystemExit) as done:
        run_subcommands(PACKAGES[command], [*argv, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    examples = text.split("\nExamples:\n")[1].splitlines()
    assert examples and all(line.startswith(f"  python -m lattn.{command} ") for line in examples), examples
    for markup in ("``", ":mod:", ":class:", ":func:", "**", "::"):
        assert markup not in text, markup
    assert not re.search(r"\b(lead|issue|target|MISSED|TODO)\b", text, re.IGNORECASE)
    if argv:  # a subcommand says how long it takes and where its output goes
        assert "Time" in text and "lattn-results/" in text and "--update-shipped" in text
