"""lattn.masks: each pattern on a hand-derived example, the masked softmax's zero rows and axis."""

import pytest
import torch

from lattn.masks import (
    band_mask,
    causal_mask,
    key_padding,
    local_global_mask,
    map_itemsize,
    masked_softmax,
    zero_padded,
)


def test_causal_mask_hand_examples():
    """A chunk of 2 after 2 cached tokens, and 2 latents at the last 2 of 4 positions, are the same pattern:
    query 0 sits at position 2 and sees keys 0..2; query 1 at position 3 sees 0..3."""
    expected = [[True, True, True, False], [True, True, True, True]]
    assert causal_mask(2, start_pos=2).tolist() == expected
    assert causal_mask(2, 4, start_pos=2).tolist() == expected
    assert torch.equal(causal_mask(4), torch.ones(4, 4, dtype=torch.bool).tril())


def test_causal_mask_top_left_is_torchs_is_causal():
    """start_pos = 0 with Nq ≠ Nk aligns the triangle top-left, as torch's is_causal does."""
    q, k = torch.randn(1, 1, 3, 4, dtype=torch.float64), torch.randn(1, 1, 5, 4, dtype=torch.float64)
    v = torch.randn(1, 1, 5, 2, dtype=torch.float64)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    masked = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(3, 5))
    torch.testing.assert_close(masked, ref, rtol=0, atol=1e-12)


def test_causal_mask_refuses_a_negative_start():
    with pytest.raises(ValueError, match="start_pos"):
        causal_mask(2, start_pos=-1)


def test_band_and_local_global_masks():
    assert band_mask(3, 1).int().tolist() == [[1, 1, 0], [1, 1, 1], [0, 1, 1]]
    assert band_mask(3, 0).equal(torch.eye(3, dtype=torch.bool))
    m = local_global_mask(4, 1, 1).int().tolist()  # [global; 4 tokens]
    assert m[0] == [1] * 5 and [row[0] for row in m] == [1] * 5  # the global sees and is seen by everything
    assert m[1] == [1, 1, 1, 0, 0] and m[4] == [1, 0, 0, 1, 1]  # token 0 and token 3: the global and the ±1 band


def test_key_padding_shape():
    mask = torch.tensor([[True, False, True]])
    assert key_padding(mask).shape == (1, 1, 1, 3)


def test_masked_softmax_axis_zero_rows_and_dtype():
    s = torch.randn(3, 5)
    torch.testing.assert_close(masked_softmax(s, dim=0).sum(0), torch.ones(5))
    allowed = torch.tensor([[True] * 5, [False] * 5, [True, False, True, False, False]])
    w = masked_softmax(s, allowed)
    assert torch.equal(w[1], torch.zeros(5))  # nothing to see: zeros, not NaN
    assert (w[2, [1, 3, 4]] == 0).all() and torch.isclose(w[2].sum(), torch.tensor(1.0))
    assert masked_softmax(s.half()).dtype == torch.float32  # half inputs: the softmax in float32
    assert masked_softmax(s.double()).dtype == torch.float64


def test_map_itemsize_is_the_softmax_dtype():
    """Maps are float32 for half inputs (the softmax runs in float32) and float64 for float64 inputs."""
    sizes = {dt: map_itemsize(dt) for dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}
    assert sizes == {torch.float16: 4, torch.bfloat16: 4, torch.float32: 4, torch.float64: 8}


def test_zero_padded_sets_padded_tokens_to_zero_even_nan():
    t = torch.tensor([[[1.0, 2.0], [float("nan"), 3.0], [4.0, 5.0]]])  # (B=1, N=3, D=2), token 1 padded
    mask = torch.tensor([[True, False, True]])
    assert zero_padded(t, mask).tolist() == [[[1.0, 2.0], [0.0, 0.0], [4.0, 5.0]]]
    assert zero_padded(t, None) is t
    heads_last = torch.ones(1, 3, 2, 4)  # (B, N, H, d): any trailing axes
    assert zero_padded(heads_last, mask)[0, :, 0, 0].tolist() == [1.0, 0.0, 1.0]
