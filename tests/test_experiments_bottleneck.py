"""The shipped bottleneck results: produced by the current script's grid, reproducible (a slice is re-run here),
and they say what notebook 03 says they say."""

import json

import pytest
import torch

from lattn._cli import run_subcommands
from lattn.experiments import bottleneck as bn
from lattn.tagger import MixerSpec
from lattn.tasks import slot_memory_accuracy

RUNS = bn.load()
TIMING = bn.load(bn.TIMING_FILE)


def key(config: dict) -> str:
    return json.dumps(bn.config_of(config), sort_keys=True)


def find(**where) -> list[dict]:
    return bn.select(RUNS, **where)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the script runs
    yield
    torch.set_num_threads(before)


def test_shipped_runs_are_exactly_the_scripts_grid():
    assert sorted(map(key, RUNS)) == sorted(map(key, bn.configs()))
    for r in RUNS:
        assert 0 <= r["accuracy"] <= 1 and r["params"] >= r["params_no_latents"] > 0
        assert set(r["shifted"]) == {bn._shift_name(s) for s in r["shifts"]}


@pytest.mark.parametrize(
    "where",
    [
        {"part": "sweep", "task": "global", "label": "none", "seed": 0},
        {"part": "capacity", "num_facts": 2, "label": "latent M=1"},
        {"part": "ablation", "task": "global", "label": "write+broadcast M=2", "seed": 1},
    ],
    ids=["global-none", "retrieval-K2-M1", "ablation-write-broadcast"],
)
def test_a_slice_regenerates_to_the_shipped_numbers(where, one_thread):
    (shipped,) = find(**where)
    fresh = bn.run_config(bn.config_of(shipped))
    for field in ("label", "params", "params_no_latents", "slot_ceiling", "slot_memory"):
        assert fresh.get(field) == shipped.get(field), field
    # bit-identical on the machine that made the file; a little slack for other CPUs and torch builds
    assert fresh["accuracy"] == pytest.approx(shipped["accuracy"], abs=0.02)
    assert fresh["train_loss"] == pytest.approx(shipped["train_loss"], rel=0.05, abs=0.01)
    for name, acc in shipped["shifted"].items():
        assert fresh["shifted"][name] == pytest.approx(acc, abs=0.02), name
    for name, tv in shipped.get("map_tv", {}).items():
        assert fresh["map_tv"][name] == pytest.approx(tv, abs=0.02), name


def test_slot_ceilings_are_the_formula():
    for r in find(task="retrieval", kind="latent"):
        args = r["task_args"]
        if args.get("query_skew", 0) == 0:
            expected = slot_memory_accuracy(args["num_facts"], r["mixer"]["num_latents"], 8)
            assert r["slot_ceiling"] == pytest.approx(expected, abs=1e-5)
            assert r["slot_memory"]["first"] == pytest.approx(expected, abs=0.04)  # the oracle meets it on the data


# --- what the notebook reads off the results (if a re-run changes these, the notebook's text must change too) -----


def test_full_attention_retrieves_and_no_context_guesses():
    for r in find(task="retrieval", label="full"):
        assert r["accuracy"] > 0.98
    for none in find(part="sweep", task="retrieval", label="none"):
        assert none["accuracy"] < 0.2  # chance is 1/8


def test_retrieval_hits_a_capacity_limit_for_small_m():
    """With K facts and few latents the trained model stays far below full attention and never exceeds an ideal
    memory of 2M slots (about one to two facts per latent, whatever the heads) by more than noise; with H ≥ 2 the
    H·M-slot ceiling holds too."""
    for r in find(task="retrieval", kind="latent", query_skew=0.0):
        k, m, h = r["task_args"]["num_facts"], r["mixer"]["num_latents"], r["heads"]
        assert r["accuracy"] <= slot_memory_accuracy(k, 2 * m, 8) + 0.05, (k, m, h, r["accuracy"])
        if h >= 2:
            assert r["accuracy"] <= slot_memory_accuracy(k, h * m, 8) + 0.05, (k, m, h, r["accuracy"])
        if 2 * m < k:
            assert r["accuracy"] < 0.8, (k, m, h, r["accuracy"])


ALL = ("write", "gather", "broadcast")


def by_m(part, task, stages, y="accuracy", **where):
    return bn.seed_values(RUNS, "num_latents", y, part=part, task=task, kind="latent", stages=stages, **where)


def test_stage_ablation_verdict():
    """Notebook 03 §4: on retrieval no two-stage layer differs from all three beyond seed noise; on the global task
    all three stages score higher on average; write stays near a mean-pool on the global task and moves far from it
    on retrieval."""
    for task in ("global", "retrieval"):
        full = by_m("sweep", task, ALL)
        for stages in bn.ABLATION:
            two = by_m("ablation", task, stages)
            assert sorted(two) == list(bn.ABLATION_LATENTS)
            for m in bn.ABLATION_LATENTS:
                assert len(two[m]) == len(bn.SEEDS)
                if task == "retrieval":
                    assert bn.within_noise(full[m], two[m]), (stages, m)
                else:
                    assert sum(full[m]) > sum(two[m]), (stages, m)
    for m in bn.ABLATION_LATENTS:
        assert max(by_m("sweep", "global", ALL, "map_tv.write")[m]) < 0.2
        assert min(by_m("sweep", "retrieval", ALL, "map_tv.write")[m]) > 0.4
        assert max(by_m("sweep", "retrieval", ALL, "map_tv.write_init")[m]) < 0.1


def test_more_heads_held_no_more_facts():
    """Notebook 03 §3: with H = 1, 2, 4 heads the retrieval accuracies overlap at every M (K = 8)."""
    per_h = {h: bn.seed_values(RUNS, "num_latents", task="retrieval", kind="latent", heads=h, num_facts=8,
                               query_skew=0.0, stages=ALL) for h in (1, 2, 4)}  # fmt: skip
    for m in (1, 2, 4):
        assert bn.within_noise(per_h[1][m], per_h[4][m]) and bn.within_noise(per_h[1][m], per_h[2][m]), m


def test_global_task_needs_context_but_one_latent_suffices():
    (none,) = find(part="sweep", task="global", label="none", seed=0)
    (window,) = find(part="sweep", task="global", label="window ±4", seed=0)
    one = find(part="sweep", task="global", label="latent M=1")
    assert none["accuracy"] < 0.6 < window["accuracy"] < 0.9
    assert all(r["accuracy"] > 0.93 for r in one)


def test_skewed_questions_fill_the_bottleneck_with_the_most_asked_facts():
    for r in find(part="distil", kind="latent"):
        assert r["accuracy"] > r["slot_memory"]["first"] + 0.3  # far above a memory of arbitrary facts
        assert r["accuracy"] > r["slot_memory"]["important"] - 0.1  # close to one of the most-asked facts


def test_select_and_curve():
    ms, accs = bn.curve(RUNS, "num_latents", part="sweep", task="global", kind="latent")
    assert ms == list(bn.LATENTS)
    seeds = find(part="sweep", task="global", kind="latent", num_latents=1)
    assert len(seeds) == len(bn.SEEDS) and accs[0] == pytest.approx(sum(r["accuracy"] for r in seeds) / len(seeds))
    _, longer = bn.curve(RUNS, "num_latents", "seq_len=512", part="sweep", task="global", kind="latent", seed=0)
    assert longer[0] == find(part="sweep", task="global", num_latents=1, seed=0)[0]["shifted"]["seq_len=512"]
    assert len(find(task="retrieval", query_skew=0.0)) + len(find(part="distil")) == len(find(task="retrieval"))
    with pytest.raises(ValueError, match="unknown task"):
        bn.make_task("sorting", {})


def test_latent_records_measure_their_maps():
    for r in find(kind="latent"):
        stages = r["mixer"]["stages"]
        assert ("write" in r["map_tv"]) == ("write" in stages) and ("gather" in r["map_tv"]) == ("gather" in stages)
        assert all(0 <= v <= 1 for v in r["map_tv"].values())
        if r["mixer"]["num_latents"] == 1 and "write" in stages:
            assert r["map_tv"]["write"] == 0  # one latent: write is the plain mean


def test_timing_file_covers_both_kinds():
    labels = {row["label"] for row in TIMING["rows"]}
    assert {"full", "latent M=4"} <= labels
    assert all(row["seconds"] > 0 for row in TIMING["rows"])


def test_cli_help_lists_the_parts(capsys):
    import lattn.experiments

    with pytest.raises(SystemExit) as exit_info:
        run_subcommands(lattn.experiments, ["bottleneck", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(part in out for part in bn.PARTS)


def test_time_per_step_is_positive(one_thread):
    assert bn.time_per_step(MixerSpec("latent", num_latents=2), seq_len=16, batch_size=2, steps=1) > 0


def test_train_config_is_what_run_config_trains(one_thread):
    config = bn.config_of(find(part="sweep", task="retrieval", label="none")[0])
    config["train"] = {**config["train"], "steps": 3}
    task, model, history = bn.train_config(config)
    assert len(history.loss) == 3 and task.num_facts == 8
    assert bn.run_config(config)["accuracy"] == pytest.approx(bn.held_out_accuracy(model, task), abs=1e-6)
