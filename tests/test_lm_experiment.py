"""python -m lattn.experiments lm and what it ships: the checkpoints reproduce their validation loss, a tiny run
regenerates itself, --seeds keeps the first seed's models and every seed's loss, compare_seeds' verdict by overlap,
the memory measures, the command line."""

import json

import pytest
import torch

import lattn.experiments
from lattn._cli import run_subcommands
from lattn.experiments import lm as experiment
from lattn.lm import CharLM, LMConfig, evaluate_lm, load_checkpoint
from lattn.lm_cost import prefill_peak_bytes
from lattn.lm_data import CharCorpus


@pytest.fixture(scope="module")
def corpus() -> CharCorpus:
    return CharCorpus.load()


SHIPPED = sorted(experiment.DATA_DIR.glob("lm_*.pt"))


def test_shipped_checkpoints_are_small_and_listed():
    for path in SHIPPED:  # the current layout as stored: blocks.N.attn.…, blocks.N.mlp.net.… (a FeedForward)
        blob = torch.load(path, weights_only=True)
        state = blob["state"]
        CharLM(LMConfig(**blob["config"])).load_state_dict(state)  # strict: every name as the model has it
        assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert {p.stem for p in SHIPPED} == {f"lm_{k}" for k in experiment.DEFAULT_KINDS}
    assert sum(p.stat().st_size for p in SHIPPED) < 1.5e6
    results = json.loads((experiment.DATA_DIR / experiment.RESULTS).read_text())
    assert set(results["models"]) == set(experiment.DEFAULT_KINDS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_checkpoint_reproduces_its_validation_loss(path, corpus):
    model, info = load_checkpoint(path)
    results = json.loads((experiment.DATA_DIR / experiment.RESULTS).read_text())["models"][info["kind"]]
    assert results["val_loss"] == info["val_loss"]
    assert evaluate_lm(model, corpus) == pytest.approx(info["val_loss"], abs=1e-4)
    assert info["val_curve"][-1] == pytest.approx(info["val_loss"], abs=0.02)  # the float16 rounding costs little
    if info["kind"] != "latent":
        assert info["val_loss"] < corpus.unigram_loss() - 1.0  # far below the baseline


def test_experiment_regenerates_a_tiny_run_reproducibly(tmp_path):
    sizes = dict(dim=16, heads=2, layers=1, context=16, num_latents=4, d_c=8, d_rope=4)
    a = experiment.run(
        ("full", "luna"), steps=6, batch_size=4, eval_every=3, out=tmp_path / "a", progress=False, memory=False, **sizes
    )
    b = experiment.run(
        ("full", "luna"), steps=6, batch_size=4, eval_every=3, out=tmp_path / "b", progress=False, memory=False, **sizes
    )
    for kind in ("full", "luna"):
        assert a["models"][kind]["val_loss"] == b["models"][kind]["val_loss"]
        assert a["models"][kind]["val_steps"] == [0, 3, 6]
        model, info = load_checkpoint(tmp_path / "a" / f"lm_{kind}.pt")
        assert evaluate_lm(model, CharCorpus.load()) == pytest.approx(info["val_loss"], abs=1e-6)
        sa = torch.load(tmp_path / "a" / f"lm_{kind}.pt", weights_only=True)["state"]
        sb = torch.load(tmp_path / "b" / f"lm_{kind}.pt", weights_only=True)["state"]
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    saved = json.loads((tmp_path / "a" / experiment.RESULTS).read_text())
    assert saved["models"]["full"]["val_loss"] == a["models"]["full"]["val_loss"]


def test_experiment_over_seeds_keeps_the_first_seeds_models_and_every_seeds_loss(tmp_path):
    """--seeds 3,5: checkpoints of seed 3 only; by_seed holds both seeds, each equal to a one-seed run of it."""
    sizes = dict(dim=16, heads=2, layers=1, context=16, num_latents=4, d_c=8, d_rope=4)
    tiny_run = dict(steps=4, batch_size=4, eval_every=2, progress=False, memory=False, **sizes)
    both = experiment.run(("full", "mla"), seeds=(3, 5), out=tmp_path / "both", **tiny_run)
    alone = experiment.run(("full", "mla"), seeds=(5,), out=tmp_path / "alone", **tiny_run)
    assert both["seeds"] == [3, 5] and both["seed"] == 3 and sorted(p.name for p in (tmp_path / "both").iterdir()) == [
        "lm_full.pt", "lm_mla.pt", experiment.RESULTS
    ]  # fmt: skip
    assert both["command"].endswith("--kinds full,mla --seeds 3,5")
    for kind in ("full", "mla"):
        assert both["by_seed"][kind]["5"]["val_loss"] == alone["models"][kind]["val_loss"]
        assert both["by_seed"][kind]["3"]["val_loss"] == both["models"][kind]["val_loss"]
        assert load_checkpoint(tmp_path / "both" / f"lm_{kind}.pt")[1]["seed"] == 3
    assert json.loads((tmp_path / "both" / experiment.RESULTS).read_text())["by_seed"] == both["by_seed"]


def test_compare_seeds_gives_mean_range_and_the_verdict_by_overlap():
    """Hand-made losses: ranges that overlap (touching included) are within noise; apart, the lower one wins."""
    by_seed = {
        kind: {str(s): {"val_loss": v} for s, v in enumerate(losses)}
        for kind, losses in {"full": [1.5, 1.6, 1.55], "a": [1.4, 1.45, 1.3], "b": [1.6, 1.7, 1.65],
                             "c": [1.61, 1.7, 1.65], "d": [1.0, 2.0, 1.5]}.items()
    }  # fmt: skip
    rows = {r["kind"]: r for r in experiment.compare_seeds(by_seed, ("full", "a", "b", "c", "d"))}
    assert rows["full"]["verdict"] == "the reference" and rows["full"]["mean"] == pytest.approx(1.55)
    assert (rows["a"]["low"], rows["a"]["high"], rows["a"]["verdict"]) == (1.3, 1.45, "beats full")
    assert rows["b"]["verdict"] == "within noise"  # 1.6 touches full's high end
    assert rows["c"]["verdict"] == "worse than full"
    assert rows["d"]["verdict"] == "within noise" and rows["d"]["seeds"] == [0, 1, 2]
    assert rows["d"]["losses"] == [1.0, 2.0, 1.5]


def test_shipped_results_hold_three_seeds_and_their_verdicts():
    """The shipped comparison (notebook 06 §4): three seeds per kind; the seed-0 entry is the shipped model's."""
    results = json.loads((experiment.DATA_DIR / experiment.RESULTS).read_text())
    assert results["seeds"] == [0, 1, 2] and results["command"].endswith("--seeds 0,1,2")
    for kind, info in results["models"].items():
        assert set(results["by_seed"][kind]) == {"0", "1", "2"}
        assert results["by_seed"][kind]["0"]["val_loss"] == info["val_loss"]
    rows = {r["kind"]: r for r in experiment.compare_seeds(results["by_seed"], ("full", "mla", "luna"))}
    assert rows["luna"]["verdict"] == "worse than full"  # what the notebook's prose says


def test_memory_measurements_follow_the_cache_layouts():
    sizes = dict(dim=16, heads=2, layers=2, d_c=8, d_rope=4, num_latents=4)
    mem = experiment.measure_memory(("full", "luna", "mla", "latent"), 10, prefill=(32,), decode=(100, 1000), **sizes)
    state = mem["decode_state_bytes"]
    assert state["full"] == {"100": 2 * 2 * 100 * 16 * 4, "1000": 2 * 2 * 1000 * 16 * 4}  # layers·(k+v)·N·D·4 B
    assert state["mla"]["1000"] == 2 * 1000 * (8 + 4) * 4  # layers·N·(d_c + d_rope)·4 B
    assert state["luna"]["100"] == state["luna"]["1000"] > 0  # independent of N
    assert state["latent"] == {"100": None, "1000": None}
    assert all(mem["prefill_peak_bytes"][k]["32"] > 32 * 16 * 4 for k in state)


def test_cli_lists_the_subcommand_and_rejects_unknown_kinds(capsys):
    with pytest.raises(SystemExit) as done:
        run_subcommands(lattn.experiments, ["lm", "--help"])
    assert done.value.code == 0
    assert "--kinds" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--kinds takes a comma-separated subset"):
        run_subcommands(lattn.experiments, ["lm", "--kinds", "window"])
    with pytest.raises(ValueError, match="kind must be one of"):
        experiment.config_for("window", 10)
    with pytest.raises(SystemExit, match="--seeds takes comma-separated integers"):
        run_subcommands(lattn.experiments, ["lm", "--seeds", "zero"])
    with pytest.raises(SystemExit, match="--seeds takes distinct integers"):
        run_subcommands(lattn.experiments, ["lm", "--seeds", "1,1"])
    with pytest.raises(SystemExit, match=r"--seeds 0 \(shipped: 0,1,2\)"):
        run_subcommands(lattn.experiments, ["lm", "--seeds", "0", "--update-shipped"])


def test_mla_reads_a_prompt_in_the_memory_of_full_attention():
    """Notebook 06 §5: with a fused causal prefill MLA's peak equals full attention's, far below the H·N·N scores."""
    full, mla = (experiment.config_for(kind, 72) for kind in ("full", "mla"))
    n = 1024
    peaks = {kind: prefill_peak_bytes(c, n) for kind, c in (("full", full), ("mla", mla))}
    assert peaks["mla"] <= 1.05 * peaks["full"], peaks
    assert peaks["mla"] < mla.heads * n * n * 4 / 4, "a quarter of one copy of the scores"
