"""The pieces behind notebook 03's stage ablation: latent mixers with a subset of the stages, the parameter-matched
control, the distance of a map from uniform, the heads × latents checker, and notebook 02's memory picture and
roofline fraction."""

import json

import matplotlib
import pytest
import torch

from lattn.bench import complexity as bc
from lattn.complexity import Shape
from lattn.exercises import bottleneck as ex
from lattn.experiments import bottleneck as bn
from lattn.latent import STAGES
from lattn.tagger import MixerSpec, count_parameters
from lattn.tasks import ClusterMajority, KeyValueRetrieval
from lattn.viz.complexity import PATH_STEPS, paths_figure

matplotlib.use("Agg")


def test_mixer_spec_with_a_subset_of_stages():
    spec = MixerSpec("latent", num_latents=4, stages=["gather", "broadcast"])  # a list, as read from JSON
    assert spec.stages == ("gather", "broadcast") and spec.label == "gather+broadcast M=4"
    assert spec.build(16, 2).stages == ("gather", "broadcast")
    assert (
        MixerSpec("latent", num_latents=4).stages == STAGES and MixerSpec("latent", num_latents=4).label == "latent M=4"
    )
    task = ClusterMajority(seq_len=8)
    two, three = (
        MixerSpec("latent", num_latents=2, stages=s).tagger(task, 16, 2) for s in (("write", "broadcast"), STAGES)
    )
    one_stage = 4 * 16 * 16 + 4 * 16  # one Attention layer: four D×D Linear layers with biases
    assert count_parameters(three) - count_parameters(two) == one_stage
    with pytest.raises(ValueError, match="broadcast"):
        MixerSpec("latent", num_latents=2, stages=("write", "gather"))
    with pytest.raises(ValueError, match="order"):
        MixerSpec("latent", num_latents=2, stages=("broadcast", "write"))


def test_map_distances():
    task = KeyValueRetrieval(num_facts=2, num_queries=2, seq_len=8)
    one = MixerSpec("latent", num_latents=1).tagger(task, 16, 2, seed=0)
    d = bn.map_distances(one, task)
    assert d["write"] == 0 and d["write_rows"] == 0  # one latent: write is exactly the mean of the tokens
    assert 0 < d["gather"] < 1
    no_write = MixerSpec("latent", num_latents=3, stages=("gather", "broadcast")).tagger(task, 16, 2, seed=0)
    assert set(bn.map_distances(no_write, task)) == {"gather"}
    model = MixerSpec("latent", num_latents=3).tagger(task, 16, 2, seed=0)
    with torch.no_grad():  # make the write stage's scores large: each token picks one latent
        model.mixer.proj["write"].to_q.weight.mul_(50)
    assert bn.map_distances(model, task)["write_rows"] > 0.5


def test_ablation_configs_match_parameters_and_stages():
    configs = bn.configs(("ablation", "control", "heads"))
    ablation = [c for c in configs if c["part"] == "ablation"]
    assert len(ablation) == len(bn.SEEDS) * 2 * len(bn.ABLATION) * len(bn.ABLATION_LATENTS)
    assert {tuple(c["mixer"]["stages"]) for c in ablation} == set(bn.ABLATION)
    assert {c["heads"] for c in configs if c["part"] == "heads"} == {1, 4}
    json.dumps(configs)  # plain data
    control = [c for c in configs if c["part"] == "control"]
    assert [{**c, "part": "ablation", "dim": bn.DIM} for c in control] == ablation  # the same runs, wider
    tasks = {"global": ClusterMajority(), "retrieval": KeyValueRetrieval(num_facts=8)}
    for c in control:  # parameter-matched: within 2 % below the three-stage layer at D = 32, never above
        task, m = tasks[c["task"]], c["mixer"]["num_latents"]
        two = count_parameters(MixerSpec(**c["mixer"]).tagger(task, c["dim"], c["heads"]))
        three = count_parameters(MixerSpec("latent", num_latents=m).tagger(task, bn.DIM, c["heads"]))
        assert 0.98 * three <= two <= three, (c["task"], m, two, three)


@pytest.mark.parametrize(
    ("answer", "ok", "hint"),
    [(0.5625, True, ""), (1 / 8 + 7 / 64, False, "each of the 4 heads"), (0.5, False, "guess"), (2, False, "between")],
)
def test_check_head_capacity(answer, ok, hint, capsys):
    assert bool(ex.check_head_capacity(answer)) is ok
    assert hint in capsys.readouterr().out


def test_paths_figure_draws_every_path():
    fig = paths_figure(Shape(seq_len=256, num_latents=16, heads=2, d_head=8))
    ax, ax_text = fig.axes
    assert len(ax.get_yticklabels()) == len(PATH_STEPS) and len(ax_text.texts) == len(PATH_STEPS)
    totals = [0.0] * len(PATH_STEPS)  # MiB per row (row 0: full attention with its explicit N×N map)
    for bar in ax.patches:
        totals[round(bar.get_y() + bar.get_height() / 2)] += bar.get_width()
    assert totals[0] == max(totals) and totals[1] < totals[0] / 2  # the N×N map dominates


def test_matmul_fraction():
    rows = [
        {"section": "matmul", "method": "matmul", "n": 0, "flops": 100.0, "seconds": 1.0, "matmul_rate": ""},
        {"section": "n-grid", "method": "latent-fast", "n": 64, "flops": 30.0, "seconds": 1.0, "matmul_rate": ""},
    ]
    assert bc.matmul_fraction(rows, "latent-fast", 64) == pytest.approx(0.3)
    assert bc.matmul_fraction(rows, "latent-fast", 128) is None
