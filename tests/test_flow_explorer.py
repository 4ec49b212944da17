"""The flow view (attention weights → line widths, a selected token's links highlighted) and its explorer, on a
small LatentAttention(16, num_latents=4, heads=2) over 12 tokens."""

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from lattn.latent import LatentAttention, LatentMaps
from lattn.viz import png_bytes
from lattn.viz.diagram import COLORS, layout
from lattn.viz.flow import draw_flow, flow_figure, flow_styles, flow_summary, flow_weights, line_width
from lattn.widgets.flow import FlowExplorer

N, M, H = 12, 4, 2


@pytest.fixture(scope="module")
def model_x_maps():
    torch.manual_seed(0)
    model = LatentAttention(16, num_latents=M, heads=H)
    x = torch.randn(1, N, 16)
    with torch.no_grad():
        _, maps = model(x, return_maps=True)
    return model, x, maps


def test_flow_weights_mean_or_one_head(model_x_maps):
    _, _, maps = model_x_maps
    mean, one = flow_weights(maps), flow_weights(maps, head=1)
    assert {s: w.shape for s, w in mean.items()} == {"write": (N, M), "gather": (M, N), "broadcast": (N, M)}
    np.testing.assert_allclose(mean["gather"], maps.gather[0].mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(one["broadcast"], maps.broadcast[0, 1].numpy(), atol=1e-6)
    assert list(flow_weights({"gather": maps.gather[0]})) == ["gather"]  # (H, M, N) without batch works too


@pytest.mark.parametrize(
    ("maps", "kwargs", "message"),
    [
        (lambda m: LatentMaps(gather=m.gather.expand(2, -1, -1, -1)), {}, "one sequence"),
        (lambda m: LatentMaps(gather=m.gather[0, 0]), {}, r"must be \(H, queries, keys\)"),
        (lambda m: LatentMaps(write=m.write, gather=m.gather[..., :-1]), {}, "disagree on N and M"),
        (lambda m: m, {"head": 2}, r"head must be in 0 … 1"),
        (lambda m: LatentMaps(), {}, "none of the stages"),
    ],
)
def test_flow_weights_rejects_bad_maps(model_x_maps, maps, kwargs, message):
    with pytest.raises(ValueError, match=message):
        flow_weights(maps(model_x_maps[2]), **kwargs)


def test_line_widths_are_monotone_in_the_weights(model_x_maps):
    w = np.linspace(0, 1, 50)
    assert (np.diff(line_width(w)) > 0).all()
    weights = flow_weights(model_x_maps[2])
    for p in layout("latent", N, M).panels:
        e = weights[p.stage.name][p.query, p.key]
        st = flow_styles(p, weights[p.stage.name])
        order = np.argsort(e)
        assert (np.diff(st["widths"][order]) >= 0).all() and (np.diff(st["colors"][order, 3]) >= 0).all()
        assert st["widths"][e.argmax()] > st["widths"][e.argmin()]


def test_selected_token_edges_are_highlighted(model_x_maps):
    weights = flow_weights(model_x_maps[2])
    art = draw_flow(model_x_maps[2], token=4)
    for k, p in enumerate(art.layout.panels):
        st = flow_styles(p, weights[p.stage.name], token=4)
        token_side = p.query if p.stage.query == "tokens" else p.key
        np.testing.assert_array_equal(st["focus"], token_side == 4)  # write/gather: from x₅; broadcast: into x₅
        assert st["focus"].sum() == M
        np.testing.assert_allclose(st["colors"][st["focus"], :3], [to_rgba(COLORS["focus"])[:3]] * M)
        assert (st["colors"][~st["focus"], 3] <= 0.5).all()  # the others fade
        assert len(art.focus[k].get_segments()) == M  # drawn on top
        sizes = art.nodes[k]["bottom"].get_sizes()
        assert sizes[4] > sizes[0]
    assert flow_styles(art.layout.panels[0], weights["write"])["focus"].sum() == 0  # nothing picked: no focus
    with pytest.raises(
        ValueError, match=r"stage 'gather': weights must be \(n_query, n_key\) = \(4, 12\), got \(12, 4\)"
    ):
        flow_styles(art.layout.panels[1], weights["write"])


def test_flow_figure_widths_follow_the_maps_and_title_names_the_links(model_x_maps):
    maps = model_x_maps[2]
    fig = flow_figure(maps, token=4, head=0)
    assert isinstance(fig, Figure)
    w = flow_weights(maps, head=0)
    write_lines = fig.axes[0].collections[1]  # the write panel's edge lines
    p = layout("latent", N, M).panels[0]
    np.testing.assert_allclose(write_lines.get_linewidths(), line_width(w["write"][p.query, p.key]))
    j = int(w["write"][4].argmax())
    title = fig.axes[0].get_title()
    assert f"x₄ → z{'₀₁₂₃'[j]} {w['write'][4, j]:.2f}" in title and "head 0" in title  # token 4 is x₄: 0-based
    assert "line width ∝ √weight" in fig.axes[0].get_legend().get_title().get_text()
    summary = flow_summary(w, layout("latent", N, M), latent=0)
    assert summary.count("z₀") == 3  # latent 0
    with pytest.raises(ValueError, match="token must be in 0 … 11"):
        flow_figure(maps, token=12)


def test_explorer_controls_change_picture_and_state(model_x_maps):
    model, x, maps = model_x_maps
    e = FlowExplorer(model, x)
    assert e.dpi >= 110 and e.state["token"] is None and e.state["head"] is None
    before = e.png
    e.set(token=4)
    assert e.state["token"] == 4 and e.png != before
    assert len(e.art.focus[0].get_segments()) == M
    assert "token=x₄" in e.status.value and "x₄ →" in e.status.value  # token 4 is x₄: labels are 0-based
    after_token = e.png
    e.set(head=1)
    np.testing.assert_allclose(e.state["weights"]["write"], maps.write[0, 1].numpy(), atol=1e-6)
    assert e.png != after_token
    e.set(token=-1, latent=2, stage="gather")
    assert e.state["shown"] == ("gather",) and e.state["latent"] == 2
    assert not e.art.lines[0].get_visible() and e.art.lines[1].get_visible()
    assert e.art.names[0].get_text() == "1. write (hidden)" and "broadcast:" not in e.status.value
    e.set(token=-1, latent=-1, head=-1, stage="all")
    assert e.png == before  # back to the start: the same picture


def test_explorer_rejects_bad_input(model_x_maps):
    model, x, _ = model_x_maps
    with pytest.raises(ValueError, match=r"x must be one sequence, \(1, N, D\) or \(N, D\), got \(2, 12, 16\)"):
        FlowExplorer(model, x.expand(2, -1, -1))
    with pytest.raises(TypeError, match="must return \\(output, maps\\)"):
        FlowExplorer(lambda x, **_: x, x)
    e = FlowExplorer(model, x[0], token_labels=[f"t{i}" for i in range(N)])
    assert e.token.options[1] == ("t0", 0)
    assert png_bytes(e.fig, 110)


def test_explorer_starts_at_the_given_selection_in_one_render(model_x_maps):
    model, x, _ = model_x_maps
    e = FlowExplorer(model, x, token=4, head=1)
    assert e.renders == 1 and e.state["token"] == 4 and e.state["head"] == 1 and e.state["latent"] is None
    assert e.png == FlowExplorer(model, x).set(token=4, head=1).png
    with pytest.raises(ValueError, match=r"head must be an int in 0 … 1 or None, got 2"):
        FlowExplorer(model, x, head=2)
