"""Explorers of notebooks 00-01 and the Explorer base: set controls in code, check the drawn data follow."""

import numpy as np
import pytest
import torch

from lattn import LatentAttention, MultiHeadAttention
from lattn.analysis import agreement, latent_per_group, low_rank
from lattn.tasks import ClusterMajority
from lattn.viz import map_grid
from lattn.widgets.attention import AttentionExplorer, LatentExplorer, RankExplorer

TASK = ClusterMajority()


@pytest.fixture
def attention_explorer():
    return AttentionExplorer(MultiHeadAttention(16, 2), TASK.example(24).x)


def test_attention_explorer_follows_controls(attention_explorer, tmp_path):
    ex = attention_explorer
    png, renders = ex.png, ex.renders
    ex.n.value = 20
    assert ex.renders == renders + 1 and ex.png != png
    assert ex.state["map"].shape == (20, 20) and ex.state["scores_per_head"] == 400
    assert np.array_equal(ex.im.get_array().shape, (20, 20)), "the drawn image follows N"
    np.testing.assert_allclose(ex.state["map"].sum(1), 1, atol=1e-5)
    ex.causal.value = True
    assert np.triu(ex.state["map"], 1).max() == 0
    flat = ex.set(temperature=10.0, causal=False).state["map"].max()
    sharp = ex.set(temperature=0.1).state["map"].max()
    assert sharp > flat
    assert ex.status.value.startswith(f"rendered {ex.renders}:") and "temperature=0.1" in ex.status.value
    assert ex.save(tmp_path / "a.png").stat().st_size > 1000
    assert ex.save(tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        ex.save(tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="unknown control"):
        ex.set(m=3)


def test_attention_explorer_map_is_the_package_map(attention_explorer):
    ex = attention_explorer.set(n=10, head=1, temperature=1.0, causal=False)
    _, maps = ex.mha(ex.tokens[:, :10], return_maps=True)
    np.testing.assert_allclose(ex.state["map"], maps[0, 1].detach().numpy(), atol=1e-6)


def test_latent_explorer_stages_and_models():
    models = {
        "untrained": {m: LatentAttention(TASK.dim, m) for m in (2, 4)},
        "trained": {m: LatentAttention(TASK.dim, m, heads=2) for m in (2, 4)},
    }
    ex = LatentExplorer(models, lambda n: TASK.example(n), n_range=(8, 32), heads=2)
    assert ex.state["write"].shape == (32, ex.m.value)
    ex.set(m=2, n=16, head=1)
    assert ex.state["write"].shape == (16, 2) and ex.state["gather"].shape == (2, 16)
    np.testing.assert_allclose(ex.state["gather"].sum(1), 1, atol=1e-5)  # over tokens
    np.testing.assert_allclose(ex.state["broadcast"].sum(1), 1, atol=1e-5)  # over latents
    png = ex.png
    ex.show_gather.value = False
    assert ex.state["gather"] is None and not ex.ims["gather"].get_visible() and ex.png != png
    ex.model.value = "untrained"
    _, maps = models["untrained"][2](TASK.example(16).x, return_maps=True)
    np.testing.assert_allclose(ex.state["write"], maps.write[0, 0].detach().numpy(), atol=1e-6)
    assert "shown=write+broadcast" in ex.status.value


def test_rank_explorer_error_falls_with_m():
    a = torch.softmax(torch.randn(12, 12), -1)
    ex = RankExplorer(a)
    errors = [ex.set(m=m).state["error"] for m in (1, 3, 6, 12)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-9
    approx, err = low_rank(a, 3)
    assert torch.linalg.matrix_rank(approx).item() == 3 and err == pytest.approx(errors[1])
    with pytest.raises(ValueError, match="2-D"):
        low_rank(a[None], 2)


def test_static_figures_share_one_scale_and_leave_the_explorer_as_it_was(attention_explorer):
    ex = attention_explorer.set(n=10)
    renders, png = ex.renders, ex.png
    fig = ex.figure([{"n": 6}, {"n": 20, "temperature": 0.1}], titles=["a", "b"])
    maps = [a for a in fig.axes if a.images]
    assert len(maps) == 2 and {a.images[0].get_clim() for a in maps} == {(0.0, 1.0)}, "one 0..1 scale for all maps"
    assert maps[0].get_title().startswith("a (largest ") and len(fig.axes) == 3, "two maps + one shared colorbar"
    # computed without drawing: the explorer neither re-rendered nor changed its picture
    assert ex.n.value == 10 and ex.state["map"].shape == (10, 10) and ex.renders == renders and ex.png == png


def test_latent_maps_share_the_gather_scale_across_models():
    torch.manual_seed(0)
    models = {"untrained": {2: LatentAttention(TASK.dim, 2)}, "trained": {2: LatentAttention(TASK.dim, 2)}}
    with torch.no_grad():
        models["trained"][2].proj["gather"].to_q.weight.mul_(20)  # a sharper gather in one model
    ex = LatentExplorer(models, lambda n: TASK.example(n), n_range=(8, 16))
    sharp = ex.set(model="trained").state
    flat = ex.set(model="untrained").state
    assert (
        flat["gather_vmax"] == sharp["gather_vmax"] == pytest.approx(max(sharp["gather"].max(), flat["gather"].max()))
    )
    assert ex.ims["gather"].get_clim()[1] == pytest.approx(sharp["gather_vmax"]), "the drawn scale is the shared one"
    assert ex.ims["write"].get_clim() == (0.0, 1.0) and ex.ims["broadcast"].get_clim() == (0.0, 1.0)
    fig = ex.figure([{"model": "untrained"}, {"model": "trained"}], ["u", "t"])
    gathers = [sf.axes[2].images[0].get_clim() for sf in fig.subfigs]
    assert gathers[0] == gathers[1] and ex.model.value == "untrained"
    with pytest.raises(ValueError, match="1-3 states"):
        ex.figure([{}] * 4, ["a"] * 4)


def test_rank_figure_puts_every_map_on_the_full_maps_scale():
    a = torch.softmax(torch.randn(12, 12), -1)
    fig = RankExplorer(a).figure([1, 3])
    clims = {ax.images[0].get_clim() for ax in fig.axes if ax.images}
    assert len(clims) == 1, "the full map and its approximations share one scale"
    assert clims.pop() == pytest.approx((a.min().item(), a.max().item()))
    assert "rank 3:" in fig.axes[2].get_title()


def test_map_grid_scales():
    maps = [[np.eye(3) * 0.5, np.eye(3)], [np.ones((3, 3)) * 0.2, np.eye(4)]]
    shared = map_grid(maps, titles=[["a", "b"], ["c", "d"]])
    assert {ax.images[0].get_clim() for ax in shared.axes if ax.images} == {(0.0, 1.0)}
    assert len(shared.axes) == 5 and shared.axes[1].get_title() == "b"
    own = map_grid(maps, shared_scale=False)
    assert len(own.axes) == 8, "each map has its own colorbar"
    with pytest.raises(ValueError, match="at most 12"):
        map_grid([[np.eye(2)] * 4] * 4)


def test_agreement_prints_a_stable_number():
    a = torch.randn(5, 3)
    assert agreement(a, a + 1e-8) == "max |diff| = 0.000000"
    assert agreement(a, a + 1e-6, decimals=5) == "max |diff| = 0.00000"
    with pytest.raises(AssertionError, match=r"max \|diff\| = 0.001"):
        agreement(a, a + 1e-3)
    with pytest.raises(ValueError, match="one shape"):
        agreement(a, a[0])


def test_latent_per_group_picks_each_groups_latent():
    broadcast = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    assert latent_per_group(broadcast, torch.tensor([0, 0, 1, 1])) == [
        (0, 0, pytest.approx(0.8)),
        (1, 1, pytest.approx(0.7)),
    ]
    with pytest.raises(ValueError, match="groups"):
        latent_per_group(broadcast, torch.tensor([0, 1]))


def test_rank_explorer_switches_between_maps_with_flat_and_steep_spectra():
    n = 16
    idx = torch.arange(n)
    band = ((idx[:, None] - idx).abs() <= 2).float()
    band = band / band.sum(-1, keepdim=True)
    maps = {
        "near rank 1": torch.full((n, n), 1 / n) + 0.001 * torch.eye(n),
        "band": band,
        "shift": torch.eye(n).roll(-1, 1),
    }
    ex = RankExplorer(maps)
    assert ex.map.options == tuple(maps) and ex.state["name"] == "near rank 1"
    errors = {name: ex.set(map=name, m=4).state["error"] for name in maps}
    assert errors["near rank 1"] < 0.01 < errors["band"] < errors["shift"], errors
    assert errors["shift"] == pytest.approx((1 - 4 / n) ** 0.5)  # a permutation: all singular values equal
    assert ex.view.full_im.axes.get_title().startswith("shift:"), "the left panel follows the chosen map"
    shift_ylim = ex.view.sv_line.axes.get_ylim()
    png = ex.png
    ex.set(map="band")
    assert ex.png != png and "map=band, M=4" in ex.status.value
    # one scale of decades for every map (σ_max · 5e-5 … 2 σ_max): a flat spectrum looks flat, a steep one steep
    for ylim, sv in ((shift_ylim, ex.sv["shift"]), (ex.view.sv_line.axes.get_ylim(), ex.sv["band"])):
        np.testing.assert_allclose(ylim, (float(sv.max()) * 5e-5, 2 * float(sv.max())), rtol=1e-6)
    fig = ex.error_figure(marks=[4])
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines[:3]] == list(maps)
    np.testing.assert_allclose(lines[2].get_ydata()[4], 100 * errors["shift"], rtol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        RankExplorer({"a": band, "b": band[:8, :8]})
