"""Token ↔ latent diagrams: the geometry of every preset (edge counts, directions, softmax axes, masks), the drawn
artists, and clear errors for bad input."""

import numpy as np
import pytest
from matplotlib.text import Text

from lattn.viz import png_bytes
from lattn.viz.diagram import PRESETS, Stage, draw_stages, layout

N, M = 8, 3
FULL = N * M
EDGES = {  # preset → edges per stage for N = 8 tokens, M = 3 latents
    "latent": [FULL, FULL, FULL],
    "perceiver": [FULL],
    "perceiver_ar": [6 + 7 + 8],  # latent j sits at position 5 + j and reads tokens 0 … 5 + j
    "isab": [FULL, FULL],
    "luna": [FULL, FULL],
    "slot": [FULL],
    "full": [N * N],
    "causal": [N * (N + 1) // 2],
    "window": [N + 2 * (N - 1)],  # ±1: itself and two neighbours, one fewer at each end
    "perceiver_repeats": [FULL, M * M, FULL],
    "perceiver_io": [FULL, M * M, FULL],
    "perceiver_ar_full": [6 + 7 + 8, M * (M + 1) // 2],
    "pma": [FULL],
    "luna_causal": [FULL, FULL],
    "linformer": [FULL, FULL],
    "registers": [N * N, FULL, FULL],
    "nystrom": [FULL, M * M, FULL],  # gather, the m × m pseudo-inverse, broadcast
}


def test_causal_luna_pack_says_how_it_weighs():
    pack, unpack = layout("luna_causal", N, M).panels
    assert pack.stage.caption == "packed query tokens · weights φ > 0, no softmax"
    assert unpack.stage.caption == "tokens query latents · softmax over latents"


def test_linformer_projection_has_no_softmax():
    project, attend = layout("linformer", N, M).panels
    assert project.stage.caption == "tokens mixed into latents · fixed learned weights, no softmax"
    assert attend.stage.caption == "tokens query latents · softmax over latents"
    with pytest.raises(ValueError, match="softmax must be"):
        Stage("x", "tokens", "latents", softmax="rows")


def test_every_preset_has_an_expected_edge_count():
    assert set(EDGES) == set(PRESETS)


def test_presets_live_in_diagram_data_and_stay_importable_from_diagram():
    from lattn.viz import diagram, diagram_data

    assert diagram.PRESETS is diagram_data.PRESETS and diagram.Stage is diagram_data.Stage
    assert layout("window", N, M).panels[0].stage.caption.endswith("window ±1")


@pytest.mark.parametrize("name", sorted(EDGES))
def test_edge_counts_and_segments_end_on_nodes(name):
    lay = layout(name, N, M)
    assert [len(p.query) for p in lay.panels] == EDGES[name]
    for p in lay.panels:
        assert p.segments.shape == (len(p.query), 2, 2)
        for end in (0, 1):  # every segment starts and ends on a node of the bottom (y 0) or top (y 1) row
            xy = p.segments[:, end]
            on_row = np.where(xy[:, 1] == 0, 0, 1)
            rows = [p.bottom_x, p.top_x]
            assert all(np.isclose(rows[r], x).any() for r, x in zip(on_row, xy[:, 0]))
        assert len(set(zip(p.query.tolist(), p.key.tolist()))) == len(p.query)  # no duplicate edge


def test_latent_stages_direction_and_softmax_axis():
    write, gather, broadcast = layout("latent", N, M).panels
    up, down = (0.0, 1.0), (1.0, 0.0)  # (source y, receiver y): tokens are y 0, latents y 1
    assert tuple(write.segments[0, :, 1]) == up  # tokens → latents, although the tokens are the queries
    assert tuple(gather.segments[0, :, 1]) == up
    assert tuple(broadcast.segments[0, :, 1]) == down
    assert write.stage.caption == "tokens query latents · softmax over latents"
    assert gather.stage.caption == "latents query tokens · softmax over tokens"
    assert broadcast.stage.caption == "tokens query latents · softmax over latents"
    assert (write.query.max(), write.key.max()) == (N - 1, M - 1)  # indices into the (N, M) write map
    assert (gather.query.max(), gather.key.max()) == (M - 1, N - 1)  # (M, N) gather map
    assert (write.shape, gather.shape, broadcast.shape) == ((N, M), (M, N), (N, M))
    assert layout("full", N, M).panels[0].stage.caption == "tokens query tokens · softmax over keys"


def test_causal_masks_have_no_link_from_the_future():
    (causal,) = layout("causal", N, M).panels
    assert (causal.key <= causal.query).all()
    assert (causal.segments[:, 0, 1] == 0).all() and (causal.segments[:, 1, 1] == 1).all()  # keys → queries
    (ar,) = layout("perceiver_ar", N, M).panels
    assert (ar.key <= N - M + ar.query).all()
    assert not ((ar.query == 0) & (ar.key == N - M + 1)).any()  # z₀ (latent 0, at position 5) never reads token 6
    (win,) = layout("window", N, M).panels
    assert (np.abs(win.query - win.key) <= 1).all()
    # the latents sit above their positions: z_j over token N − M + j
    np.testing.assert_allclose(ar.top_x, ar.bottom_x[N - M :])


def test_custom_stage_lists_and_labels():
    lay = layout(["gather", "broadcast"], 5, 2, token_labels="abcde")
    assert [p.stage.name for p in lay.panels] == ["gather", "broadcast"]
    assert lay.token_labels == tuple("abcde") and lay.latent_labels == ("z₀", "z₁")  # 0-based, as the code indexes
    assert layout("latent", 3, 2).token_labels == ("x₀", "x₁", "x₂")
    sliding = Stage("causal window", "tokens", "tokens", causal=True, window=2)
    (p,) = layout([sliding], 6, 1).panels
    assert ((p.key <= p.query) & (p.query - p.key <= 2)).all() and len(
        p.query
    ) == 1 + 2 + 3 * 4  # queries 0, 1, then 2 … 5
    assert p.touches("tokens", 0).sum() == 3  # token 0 reads itself; tokens 1 and 2 read it


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: layout("nope", N, M), "unknown diagram 'nope'"),
        (lambda: layout(["write", "mix"], N, M), "unknown stage 'mix'"),
        (lambda: layout([], N, M), "must not be empty"),
        (lambda: layout("latent", 0, M), "n_tokens must be an int ≥ 1, got 0"),
        (lambda: layout("latent", N, 0), "n_latents must be an int ≥ 1, got 0"),
        (lambda: layout("latent", N, 2.5), "n_latents must be an int ≥ 1, got 2.5"),
        (lambda: layout("latent", N, M, token_labels=["a"]), "token_labels must have 8 entries, got 1"),
        (lambda: layout("perceiver_ar", 2, 3), "M ≤ N"),
        (lambda: layout([Stage("g", "latents", "tokens", causal=True)], N, M), "latents need positions"),
        (lambda: Stage("s", "tokens", "slots"), "key must be one of"),
        (lambda: Stage("s", "tokens", "latents", softmax="rows"), "softmax must be 'key', 'query' or 'none'"),
        (lambda: Stage("s", "tokens", "tokens", window=-1), "window must be an int ≥ 0"),
    ],
)
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_draw_stages_returns_its_artists_and_a_legible_figure():
    art = draw_stages("latent", N, M)
    assert len(art.lines) == len(art.heads) == len(art.names) == 3
    assert [len(c.get_segments()) for c in art.lines] == EDGES["latent"]
    assert [n.get_text() for n in art.names] == ["1. write", "2. gather", "3. broadcast"]
    assert len(art.heads[0].get_offsets()) == M and len(art.heads[2].get_offsets()) == N  # one per receiving node
    texts = [t for t in art.ax.figure.findobj(Text) if t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 8
    assert "tokens never score each other" in art.title.get_text()
    png = png_bytes(art.ax.figure, 110)
    width = int.from_bytes(png[16:20], "big")
    assert width >= 1000  # ≈ 10 in at 110 dpi
    assert png != png_bytes(draw_stages("isab", N, M).ax.figure, 110)
