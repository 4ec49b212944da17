"""Notebook 06's route of the answer: the leak_route figure, the operation counts of a decode step and of an uncached
forward, and the
block-by-hand exercise checker (right answers pass, typical mistakes get their hint)."""

import numpy as np
import pytest
import torch

from lattn.exercises import lm as ex
from lattn.lm import CharLM, LMConfig
from lattn.lm_cost import decode_step_ops, forward_ops
from lattn.viz.lm import leak_route


def route_maps(N: int = 6, M: int = 4, relay: int = 2, position: int = 3):
    """Maps of one head where latent ``relay`` gathers token position + 1 and token ``position`` reads it back."""
    gather = np.full((M, N), 0.1 / (N - 1))
    gather[:, 0] = 0.9  # every other latent reads token 0
    gather[relay] = 0.02
    gather[relay, position + 1] = 1 - 0.02 * (N - 1)
    broadcast = np.full((N, M), 0.1 / (M - 1))
    broadcast[:, 0] = 0.9
    broadcast[position] = 0.05
    broadcast[position, relay] = 1 - 0.05 * (M - 1)
    return broadcast @ gather, gather, broadcast


def test_leak_route_names_the_relay_latent_and_the_two_tokens():
    eff, gather, broadcast = route_maps()
    fig = leak_route(eff, gather, broadcast, 3, "abcdef", head=1)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]
    title = next(t for t in texts if t.startswith("the route of the answer"))
    assert "'e' at 4 → latent z₂ → position 3" in title and "gather 0.90, broadcast 0.85" in title  # relay 2, 0-based
    latents = [t for t in texts if t.startswith("z")]
    assert latents and set(latents) <= {"z₀", "z₁", "z₂", "z₃"}, f"latents numbered from 0 as in the code: {latents}"
    assert any(t.startswith("answer 4 'e'") for t in texts) and any(t.startswith("reader 3 'd'") for t in texts)
    assert any("head 1" in t for t in texts)
    outlined = [p for p in fig.axes[0].patches if p.get_edgecolor()[3] == 1 and p.get_linewidth() > 2]
    assert [(p.get_x(), p.get_y()) for p in outlined] == [(3.5, 2.5)], "the chosen cell (3, 4) is the thick one"


def test_leak_route_names_every_token_and_colours_the_two_of_the_route():
    eff, gather, broadcast = route_maps(N=16, M=8, relay=5, position=11)
    chars = "me see:  that wo"
    fig = leak_route(eff, gather, broadcast, 11, chars)
    ax_flow = next(ax for ax in fig.axes if ax.texts)  # the flow view (the map and its colour bar have no texts)
    names = [t for t in ax_flow.texts if t.get_position()[1] == -0.07]  # the token row of both panels
    assert "".join(t.get_text() for t in names) == 2 * "me␣see:␣␣that␣wo", "all 16 tokens, in order, per panel"
    assert len([t for t in ax_flow.texts if -0.3 < t.get_position()[1] < 0]) == 32, "no second, thinned name row"
    bold = [(round(t.get_position()[0], 3), t.get_text()) for t in names if t.get_weight() == "bold"]
    assert [c for _, c in bold] == ["t", "a"], "gather: the answer (position 12); broadcast: the reader (11)"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((np.eye(6), np.ones((4, 6)), np.ones((6, 4)), 5, "abcdef"), "position must be in"),
        ((np.eye(5), np.ones((4, 6)), np.ones((6, 4)), 2, "abcdef"), "expected effective"),
        ((np.eye(6), np.ones((4, 6)), np.ones((6, 4)), 2, "abc"), "6 characters|3 characters"),
    ],
)
def test_leak_route_explains_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        leak_route(*args)


def test_decode_step_ops_counts_one_step_the_same_way_twice():
    prompt = torch.tensor([[1, 2, 3]])
    for kind in ("full", "luna", "mla"):
        model = CharLM.build(LMConfig(10, kind=kind, dim=16, heads=2, layers=1, context=8, d_rope=4), seed=0)
        count = decode_step_ops(model, prompt)
        assert count > 10 and count == decode_step_ops(model, prompt)
    deeper = CharLM.build(LMConfig(10, kind="full", dim=16, heads=2, layers=2, context=8), seed=0)
    assert decode_step_ops(deeper, prompt) > decode_step_ops(
        CharLM.build(LMConfig(10, kind="full", dim=16, heads=2, layers=1, context=8), seed=0), prompt
    ), "a second block adds its operations"


def test_forward_ops_counts_one_uncached_forward():
    """The same count twice; a second block adds its operations; full attention's fast path launches fewer than MLA's
    (the measured reason its uncached generation is faster at this width, notebook 06 §5)."""

    def build(kind, layers=1):
        return CharLM.build(LMConfig(10, kind=kind, dim=16, heads=2, layers=layers, context=8, d_rope=4), seed=0)

    full, mla = build("full"), build("mla")
    assert forward_ops(full, 8) == forward_ops(full, 8) > 10
    assert forward_ops(build("full", layers=2), 8) > forward_ops(full, 8)
    assert forward_ops(mla, 8) > 2 * forward_ops(full, 8)
    with pytest.raises(ValueError, match="length must be ≤ the model's context 8, got 9"):
        forward_ops(full, 9)


def right(block, x):
    h = x + block.attn(block.norm_attn(x), causal=True)
    return h + block.mlp(block.norm_mlp(h))


def not_causal(block, x):
    h = x + block.attn(block.norm_attn(x))
    return h + block.mlp(block.norm_mlp(h))


def post_norm(block, x):
    h = block.norm_attn(x + block.attn(x, causal=True))
    return block.norm_mlp(h + block.mlp(h))


def no_residual(block, x):
    h = block.attn(block.norm_attn(x), causal=True)
    return h + block.mlp(block.norm_mlp(h))


def no_mlp_norm(block, x):
    h = x + block.attn(block.norm_attn(x), causal=True)
    return h + block.mlp(h)


@pytest.mark.parametrize(
    ("fn", "hint"),
    [
        (not_causal, "causal=True"),
        (post_norm, "post-norm"),
        (no_residual, "add the attention's input x back"),
        (no_mlp_norm, "max |diff|"),
        (lambda block, x: x[:, :1], "input's shape"),
        (lambda block, x: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_check_block_forward_hints(fn, hint, capsys):
    assert not ex.check_block_forward(fn)
    assert hint in capsys.readouterr().out


def test_check_block_forward_accepts_the_block(capsys):
    assert ex.check_block_forward(right)
    assert "matches lattn.blocks.Block" in capsys.readouterr().out
    assert not ex.check_block_forward(None)
    assert "Your turn" in capsys.readouterr().out
