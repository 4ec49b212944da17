"""Explorers of notebooks 00-01 and the Explorer base: set controls in code, check the drawn data follow."""

import numpy as np
import pytest
import torch

from lattn import LatentAttention, MultiHeadAttention
from lattn.analysis import low_rank
from lattn.tasks import ClusterMajority
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


def test_snapshots_make_one_figure(attention_explorer):
    fig = attention_explorer.snapshots([{"n": 4}, {"n": 8}, {"n": 12}], ncols=2)
    assert len(fig.axes) == 3


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
