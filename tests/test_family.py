"""lattn.family: the invariants each paper promises, padding, exact causality, Luna decoding, bad input.

The hand-written float64 forward of every module is in test_family_reference.py; the maps protocol over the registry
in test_family_maps.py; FLOP formulas, gradcheck and the comparison table in test_family_costs.py.
"""

import pytest
import torch
from conftest import assert_close
from torch import nn

from lattn.attention import Attention
from lattn.family import (
    ISAB,
    MAB,
    PMA,
    Linformer,
    Luna,
    LunaCausal,
    LunaState,
    Perceiver,
    PerceiverAR,
    PerceiverIO,
    SlotAttention,
)
from lattn.latent import LatentAttention, LatentMaps


@pytest.mark.parametrize("heads", [1, 2])
def test_cross_attention_matches_torch_multihead_attention(heads):
    ca = Attention(8, heads=heads)  # the family's cross-attention (PerceiverIO, PerceiverAR, MAB, Luna)
    ref = nn.MultiheadAttention(8, heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ca.to_q.weight, ca.to_k.weight, ca.to_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ca.to_q.bias, ca.to_k.bias, ca.to_v.bias]))
        ref.out_proj.load_state_dict(ca.to_out.state_dict())
    q, ctx = torch.randn(2, 3, 8), torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True, False, True, True, False, True]])
    want, want_w = ref(q, ctx, ctx, key_padding_mask=~mask, average_attn_weights=False)
    got, maps = ca(q, context=ctx, mask=mask, return_maps=True)
    assert_close(got, want, 1e-5, "teaching path vs nn.MultiheadAttention")
    assert_close(maps, want_w, 1e-6, "maps")
    assert_close(ca(q, context=ctx, mask=mask), want, 1e-5, "fast path vs nn.MultiheadAttention")


def test_perceiver_gather_is_the_latent_attention_gather_stage():
    """Without the latent-query LayerNorm, a Perceiver's gather is LatentAttention's gather stage (same weights)."""
    p = Perceiver(8, 3, depth=0, query_norm=False)
    la = LatentAttention(8, 3, stages=("gather",))
    with torch.no_grad():
        p.latents.copy_(la.latents)
    p.blocks[0].gather.load_state_dict(la.proj["gather"].state_dict())
    x = torch.randn(2, 5, 8)
    z = la(p.norm_tokens(x))
    block = p.blocks[0]
    assert_close(p(x), z + block.ff(block.norm_ff(z)), 1e-6, "gather + MLP")


def test_perceiver_normalises_latent_queries_and_repeats_its_gather():
    p = Perceiver(8, 3, depth=1, repeats=3)
    assert isinstance(p.blocks[0].norm_latents, torch.nn.LayerNorm)  # as the reference implementations
    out, maps = p(torch.randn(2, 5, 8), return_maps=True)
    assert out.shape == (2, 3, 8) and maps.gather.shape == (2, 1, 3, 5)
    assert sorted(maps.extra) == ["gather 2", "gather 3", "latent self-attention 1"]
    assert len(p.blocks) == 2  # repeats 2 and 3 share one block


def test_isab_without_feedforward_is_x_plus_latent_attention():
    la = LatentAttention(8, 3, heads=2, stages=("gather", "broadcast"))
    isab = ISAB.from_latent_attention(la)
    x = torch.randn(2, 6, 8)
    assert_close(isab(x), x + la(x), 1e-5, "fast")
    out, maps = isab(x, return_maps=True)
    _, lmaps = la(x, return_maps=True)
    assert_close(out, x + la(x), 1e-5, "teaching")
    assert_close(maps.gather, lmaps.gather, 1e-6, "gather map")
    assert_close(maps.broadcast, lmaps.broadcast, 1e-6, "broadcast map")


def test_mab_is_residual_attention_plus_feedforward():
    mab = MAB(8, 2, layer_norm=False)
    q, ctx = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    h = q + mab.attn(q, context=ctx)
    assert_close(mab(q, context=ctx), h + mab.ff(h), 1e-6, "MAB, no LayerNorm")
    mab_ln = MAB(8, 2)  # the default: the paper's Eq. (6–7), with both LayerNorms
    assert isinstance(mab_ln.norm_attn, torch.nn.LayerNorm) and isinstance(mab_ln.norm_ff, torch.nn.LayerNorm)
    h = mab_ln.norm_attn(q + mab_ln.attn(q, context=ctx))
    assert_close(mab_ln(q, context=ctx), mab_ln.norm_ff(h + mab_ln.ff(h)), 1e-6, "MAB with LayerNorm")
    h = q + mab.attn(q)  # no context: the paper's SAB, MAB(X, X)
    assert_close(mab(q), h + mab.ff(h), 1e-6, "SAB")


def test_luna_packed_sequence_goes_to_the_next_layer():
    m = Luna(8, 3, heads=2)
    x = torch.randn(2, 6, 8)
    (out, packed_next), maps = m(x, return_maps=True, return_packed=True)  # a LunaOutput and the maps
    assert isinstance(maps, LatentMaps) and maps.gather.shape == (2, 2, 3, 6)
    packed = m.packed.expand(2, -1, -1)
    context = m.pack(packed, context=x)
    assert_close(packed_next, m.norm_packed(packed + context), 1e-6, "LN(P + packed context)")
    assert_close(out, m.unpack(x, context=context), 1e-6, "unpack reads the packed context")
    assert torch.equal(m(x, return_maps=True)[0], out)  # tokens (and maps) only by default
    assert_close(m(x), out, 1e-6, "fast path, tokens only")
    # a second layer takes the tokens (with their residual) and the first layer's packed sequence
    layer2, h = Luna(8, 3, heads=2), x + out
    out2, p2 = layer2(h, packed=packed_next, return_packed=True)
    assert out2.shape == (2, 6, 8) and p2.shape == (2, 3, 8)
    assert not torch.allclose(layer2(h), out2)  # the packed sequence really is used


def test_perceiver_ar_depth0_output_depends_only_on_the_prefix():
    # with no latent self-attention, the output at position p is what the prefix x[:, :p+1] alone gives there
    m = PerceiverAR(8, 4, depth=0)
    x = torch.randn(2, 9, 8)
    out = m(x)  # positions 5…8
    for i, p in enumerate(m.output_positions(9)):
        assert_close(out[:, i], m(x[:, : p + 1])[:, -1], 1e-6, f"position {p}")


# --- invariants -----------------------------------------------------------------------------------------------------


def test_isab_is_permutation_equivariant():
    m = ISAB(8, 3, heads=2)
    x, perm = torch.randn(2, 9, 8), torch.randperm(9)
    mask = torch.rand(2, 9) > 0.3
    assert_close(m(x[:, perm]), m(x)[:, perm], 1e-5, "ISAB")
    assert_close(m(x[:, perm], mask=mask[:, perm]), m(x, mask=mask)[:, perm], 1e-5, "ISAB with padding")


def test_pma_is_permutation_invariant():
    m = PMA(8, 2, heads=2)
    x, perm = torch.randn(2, 9, 8), torch.randperm(9)
    assert_close(m(x[:, perm]), m(x), 1e-5, "PMA")
    assert m(x).shape == (2, 2, 8)


def test_slot_attention_is_equivariant_to_permuting_the_slots_and_invariant_to_input_order():
    m = SlotAttention(8, 4)
    x, slots = torch.randn(2, 9, 8), torch.randn(2, 4, 8)
    sp, xp = torch.randperm(4), torch.randperm(9)
    assert_close(m(x, slots=slots[:, sp]), m(x, slots=slots)[:, sp], 1e-5, "slots permute with their initial values")
    assert_close(m(x[:, xp], slots=slots), m(x, slots=slots), 1e-5, "input order does not matter")


def test_perceiver_encoders_ignore_token_order_without_positions():
    x, perm = torch.randn(2, 9, 8), torch.randperm(9)
    p = Perceiver(8, 3, heads=2, depth=2)
    assert_close(p(x[:, perm]), p(x), 1e-5, "Perceiver latents")
    io = PerceiverIO(8, 3, num_outputs=2)
    assert_close(io(x[:, perm]), io(x), 1e-5, "Perceiver IO with learned output queries")
    io_tokens = PerceiverIO(8, 3)
    assert_close(io_tokens(x[:, perm]), io_tokens(x)[:, perm], 1e-5, "Perceiver IO with tokens as queries")


def test_luna_is_permutation_equivariant_and_its_packed_sequence_invariant():
    m = Luna(8, 3, heads=2)
    x, perm = torch.randn(2, 9, 8), torch.randperm(9)
    out, packed = m(x, return_packed=True)
    out_p, packed_p = m(x[:, perm], return_packed=True)
    assert_close(out_p, out[:, perm], 1e-5, "outputs")
    assert_close(packed_p, packed, 1e-5, "packed sequence")


# --- padding --------------------------------------------------------------------------------------------------------


def _padded(x, where):
    """Insert random tokens at the positions where ``where`` is False; returns the padded x and the mask."""
    mask = torch.tensor(where)[None].expand(x.shape[0], -1)
    padded = torch.randn(x.shape[0], len(where), x.shape[2])
    padded[mask] = x.reshape(-1, x.shape[2])
    return padded, mask


WHERE = [True, False, True, True, False, True, False]


@pytest.mark.parametrize(
    "make", [lambda: Perceiver(8, 3, heads=2), lambda: PMA(8, 2, heads=2), lambda: SlotAttention(8, 3)]
)
def test_padding_is_invisible_to_latent_outputs(make):
    m = make()
    x = torch.randn(2, 4, 8)
    padded, mask = _padded(x, WHERE)
    kw = {"slots": torch.randn(2, 3, 8)} if isinstance(m, SlotAttention) else {}
    for rm in (False, True):
        a, b = m(x, return_maps=rm, **kw), m(padded, mask=mask, return_maps=rm, **kw)
        if rm:
            (a, _), (b, maps) = a, b
            stage_map = maps.gather if maps.gather is not None else maps.write.transpose(-1, -2)
            assert (stage_map[..., ~mask[0]] == 0).all(), "padded tokens take no part"
        assert_close(b, a, 1e-5, "latents")


@pytest.mark.parametrize("make", [lambda: ISAB(8, 3, heads=2), lambda: PerceiverIO(8, 3), lambda: Luna(8, 3, heads=2)])
def test_padding_is_invisible_to_token_outputs(make):
    m = make()
    x = torch.randn(2, 4, 8)
    padded, mask = _padded(x, WHERE)
    for rm in (False, True):
        a, b = m(x, return_maps=rm), m(padded, mask=mask, return_maps=rm)
        a, b = (a[0], b[0]) if rm else (a, b)  # with maps
        assert_close(b[:, mask[0]], a, 1e-5, "real positions")
        assert (b[:, ~mask[0]] == 0).all(), "padded positions output zeros"


def test_linformer_padding_changes_nothing_at_real_positions():
    m = Linformer(8, 7, 3, heads=2)
    x, mask = torch.randn(2, 7, 8), torch.tensor(WHERE)[None].expand(2, -1)
    other = x.clone()
    other[:, ~mask[0]] = torch.randn(2, int((~mask[0]).sum()), 8)
    for rm in (False, True):
        a, b = m(x, mask=mask, return_maps=rm), m(other, mask=mask, return_maps=rm)
        a, b = (a[0], b[0]) if rm else (a, b)
        assert torch.allclose(a, b, atol=1e-6) and (a[:, ~mask[0]] == 0).all()
    assert not torch.allclose(m(x), m(other))  # without the mask they do matter


# --- causality, exactly -------------------------------------------------------------------------------------------


def _earlier_outputs_unchanged(run, x, positions):
    for t in range(x.shape[1]):
        changed = x.clone()
        changed[:, t] = torch.randn(x.shape[0], x.shape[2]) * 5
        before, after = run(x), run(changed)
        earlier = [i for i, p in enumerate(positions) if p < t]
        assert torch.equal(before[:, earlier], after[:, earlier]), f"changing token {t} moved an earlier output"
        later = [i for i, p in enumerate(positions) if p >= t]
        assert not torch.equal(before[:, later], after[:, later]), "the test must be able to see a change"


def test_luna_causal_is_exactly_causal():
    m = LunaCausal(8, 3, heads=2)
    x = torch.randn(2, 7, 8)
    with torch.no_grad():
        _earlier_outputs_unchanged(m, x, range(7))
        _earlier_outputs_unchanged(lambda t: m(t, return_maps=True)[0], x, range(7))


@pytest.mark.parametrize("n", [3, 8])
def test_perceiver_ar_is_exactly_causal(n):
    m = PerceiverAR(8, 4, heads=2, cross_heads=2, depth=2)
    x = torch.randn(2, n, 8)
    with torch.no_grad():
        _earlier_outputs_unchanged(m, x, m.output_positions(n))
        _earlier_outputs_unchanged(lambda t: m(t, return_maps=True)[0], x, m.output_positions(n))


# --- Luna causal decoding -----------------------------------------------------------------------------------------


def test_luna_causal_decoding_equals_the_parallel_form():
    m = LunaCausal(8, 3, heads=2)
    x = torch.randn(2, 9, 8)
    full = m(x)
    state = m.new_cache(2, 9)
    assert state.length == 0 and state.numel() == 3 * (2 * 2 * 3 * 4) + 1  # 3 tensors (B, H, l, d_head) + t
    assert state.nbytes == 3 * (2 * 2 * 3 * 4) * 4  # float32
    nbytes = state.nbytes
    outs = [m(x[:, t : t + 1], cache=state) for t in range(9)]  # the state is updated in place
    assert_close(torch.cat(outs, 1), full, 1e-5, "one token at a time")
    assert state.length == 9 and state.nbytes == nbytes, "the state does not grow"
    state, outs = m.new_cache(2, 9), []
    for a, b in [(0, 3), (3, 4), (4, 9)]:  # chunks of 3, 1, 5; start_pos given or defaulted
        outs.append(m(x[:, a:b], causal=True, cache=state, start_pos=a if a else None))
    assert_close(torch.cat(outs, 1), full, 1e-5, "in chunks")


def test_luna_causal_cache_refuses_a_contradicting_start_pos_and_extra_arguments():
    m = LunaCausal(8, 3)
    x = torch.randn(1, 4, 8)
    state = m.new_cache(1, 8)
    m(x[:, :2], cache=state)
    for bad in (0, 1, 3):  # running sums cannot rewind or skip
        with pytest.raises(ValueError, match=rf"hold 2 token\(s\).*start_pos={bad}"):
            m(x[:, 2:], cache=state, start_pos=bad)
    assert state.length == 2, "a refused call leaves the state as it was"
    for kwargs in (
        {"mask": torch.ones(1, 2, dtype=torch.bool)},
        {"return_maps": True},
        {"packed": torch.randn(1, 3, 8)},
    ):
        with pytest.raises(ValueError, match="decoding with a cache"):
            m(x[:, 2:], cache=state, **kwargs)


def test_luna_causal_takes_a_given_packed_sequence():
    m = LunaCausal(8, 3)
    x, packed = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    out = m(x, packed=packed)
    assert not torch.allclose(out, m(x))
    state = m.new_cache(2, 5, packed=packed)
    steps = [m(x[:, t : t + 1], cache=state) for t in range(5)]
    assert_close(torch.cat(steps, 1), out, 1e-5, "decoding with the given packed sequence")


def test_padding_is_invisible_to_luna_causal():
    m = LunaCausal(8, 3, heads=2)
    x = torch.randn(2, 4, 8)
    padded, mask = _padded(x, WHERE)
    padded[~mask] = float("nan")  # padded tokens take no part at all, even NaN
    for rm in (False, True):
        a, b = m(x, return_maps=rm), m(padded, mask=mask, return_maps=rm)
        a, b = (a[0], b[0]) if rm else (a, b)
        assert_close(b[:, mask[0]], a, 1e-5, "real positions: t counts the real tokens")
        assert (b[:, ~mask[0]] == 0).all(), "padded positions output zeros"


def test_perceiver_ar_padded_tokens_take_no_part():
    m = PerceiverAR(8, 4, heads=2, depth=2)
    x, mask = torch.randn(2, 7, 8), torch.tensor(WHERE)[None].expand(2, -1)
    other = x.clone()
    other[~mask] = float("nan")
    latent_real = mask[:, 3:]  # latents at positions 3…6
    for rm in (False, True):
        a, b = m(x, mask=mask, return_maps=rm), m(other, mask=mask, return_maps=rm)
        a, b = (a[0], b[0]) if rm else (a, b)
        assert_close(b, a, 1e-6, "padded values do not matter")
        assert (b[~latent_real] == 0).all() and (b[latent_real] != 0).any(-1).all()
    assert not torch.allclose(m(x, mask=mask), m(x))  # the mask does change the real outputs


# --- bad input ------------------------------------------------------------------------------------------------------


def test_linformer_refuses_other_lengths_and_causal():
    m = Linformer(8, 6, 3)
    with pytest.raises(ValueError, match=r"seq_len=6.*N=5"):
        m(torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match="cannot be causal"):
        m(torch.randn(1, 6, 8), causal=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Perceiver(8, 3),
        lambda: PerceiverIO(8, 3),
        lambda: ISAB(8, 3),
        lambda: PMA(8, 3),
        lambda: Luna(8, 3),
        lambda: SlotAttention(8, 3),
    ],
)
def test_causal_is_refused_where_impossible(make):
    m = make()
    with pytest.raises(ValueError, match=r"cannot be causal: .*LunaCausal or PerceiverAR"):
        m(torch.randn(1, 6, 8), causal=True)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: Perceiver(8, 3)(torch.randn(1, 5, 7)), ValueError, r"dim=8"),
        (lambda: Perceiver(8, 3)(torch.randn(5, 8)), ValueError, r"3-D"),
        (lambda: Perceiver(8, 3)(torch.zeros(1, 5, 8, dtype=torch.long)), TypeError, "floating"),
        (lambda: Perceiver(8, 3)(torch.randn(1, 5, 8), mask=torch.ones(1, 4, dtype=torch.bool)), ValueError, "(B, N)"),
        (lambda: ISAB(8, 3)(torch.randn(1, 5, 8), mask=torch.ones(1, 5)), ValueError, "torch.bool"),
        (lambda: ISAB(8, 3)(torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool)), TypeError, "positional"),
        (lambda: ISAB(8, 3)(torch.randn(1, 5, 8, dtype=torch.float64)), TypeError, "float64"),
        (lambda: Perceiver(8, True), TypeError, "num_latents"),
        (lambda: Perceiver(8, 0), ValueError, "num_latents"),
        (lambda: Perceiver(8, 2, depth=-1), ValueError, "depth"),
        (lambda: PerceiverAR(8, 2, depth=1.5), TypeError, "depth"),
        (lambda: ISAB(8, 3, heads=3), ValueError, "divisible"),
        (lambda: LunaCausal(8, 3, heads=3), ValueError, "divisible"),
        (lambda: SlotAttention(8, 3, iters=0), ValueError, "iters"),
        (lambda: Linformer(8, 6, 0), ValueError, "k must"),
        (lambda: PerceiverIO(8, 3)(torch.randn(2, 5, 8), queries=torch.randn(1, 2, 8)), ValueError, "batch size"),
        (lambda: PerceiverIO(8, 3)(torch.randn(2, 5, 8), queries=torch.randn(2, 2, 4)), ValueError, "queries"),
        (lambda: Luna(8, 3)(torch.randn(2, 5, 8), packed=torch.randn(2, 4, 8)), ValueError, "packed must have shape"),
        (lambda: LunaCausal(8, 3)(torch.randn(2, 5, 8), packed=torch.randn(1, 3, 8)), ValueError, "packed must have"),
        (lambda: SlotAttention(8, 3)(torch.randn(2, 5, 8), slots=torch.randn(2, 4, 8)), ValueError, "slots"),
        (lambda: SlotAttention(8, 3, seed=-1), ValueError, "seed"),
        (lambda: LunaCausal(8, 3)(torch.randn(2, 1, 8), cache="state"), TypeError, "LunaState"),
        (lambda: LunaCausal(8, 3)(torch.randn(2, 1, 8), cache=LunaCausal(8, 3).new_cache(3, 4)), ValueError, "batch"),
        (lambda: LunaCausal(8, 3).new_cache(0, 4), ValueError, "batch"),
        (lambda: LunaCausal(8, 3)(torch.randn(2, 5, 8), cache=LunaCausal(8, 3).new_cache(2, 4)), ValueError, "max_len"),
        (lambda: LunaCausal(8, 3)(torch.randn(2, 5, 8), start_pos=0), ValueError, "start_pos needs a cache"),
        (lambda: MAB(8)(torch.randn(2, 3, 8), context=torch.randn(1, 4, 8)), ValueError, "batch size"),
        (lambda: MAB(8)(torch.randn(2, 3, 8), causal=True), ValueError, "cannot be causal"),
        (lambda: ISAB.from_latent_attention(LatentAttention(8, 3)), ValueError, "gather"),
    ],
)
def test_bad_input_gives_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_luna_state_is_small():
    m = LunaCausal(16, 4, heads=2)
    state = m.new_cache(1, 500)
    m(torch.randn(1, 50, 16), cache=state)
    assert isinstance(state, LunaState) and state.numel() == 3 * 4 * 16 + 1  # 3·l·D numbers + the step count
    assert state.length == 50 and state.nbytes == 3 * 4 * 16 * 4
