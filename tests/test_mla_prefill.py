"""Tests for MLA's prefill paths: the fused causal kernel and the blockwise path give the numbers of the explicit-mask
teaching path (float64), chunks equal one shot, padding masks hold, and peak memory grows like N, not N².
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from conftest import max_diff
from test_mla_reference import CONFIGS, TINY, make, tokens

from lattn.complexity import peak_bytes
from lattn.mla import MODES, PREFILL_BLOCK, MLAConfig, MultiHeadLatentAttention

LONG = PREFILL_BLOCK + 45  # longer than one block, not a multiple of it


def padding(B: int, N: int) -> torch.Tensor:
    """(B, N) bool: the first sequence right-padded, the second left-padded, the rest all real."""
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, N - 9 :] = False
    mask[1, :5] = False
    return mask


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_fused_prefill_equals_explicit_mask_path_float64(config, mode):
    m, x = make(config, mode=mode), tokens(config, N=LONG)
    fast = m(x)  # fused kernel, is_causal, no mask
    teaching, maps = m(x, return_maps=True)  # explicit (N, N) causal mask and float64 softmax
    assert max_diff(fast, teaching, "fused vs explicit") <= 1e-12
    assert maps.triu(1).abs().max() == 0  # the explicit path is causal


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("mode", MODES)
def test_padding_mask_blockwise_equals_explicit_and_padding_changes_nothing_real(config, mode):
    m, x = make(config, mode=mode), tokens(config, B=3, N=LONG)
    mask = padding(3, LONG)
    fast = m(x, mask=mask)  # blocks of PREFILL_BLOCK queries, each with its own mask
    teaching, _ = m(x, mask=mask, return_maps=True)
    assert max_diff(fast, teaching, "blockwise vs explicit") <= 1e-12
    assert fast[~mask].abs().max() == 0  # padded positions output zeros
    # right padding: the real tokens of sequence 0 give what they give alone; sequence 2 is all real
    alone = m(x[:1, : LONG - 9])
    assert max_diff(fast[:1, : LONG - 9], alone, "right padding") <= 1e-12
    assert max_diff(fast[2:], m(x[2:]), "no padding") <= 1e-12


@pytest.mark.parametrize("mode", MODES)
def test_chunks_against_the_cache_equal_one_shot(mode):
    m, x = make(TINY, mode=mode), tokens(TINY, N=2 * LONG + 3)
    whole = m(x)
    cache = m.new_cache(2, x.shape[1])
    cuts = [0, 7, 7 + LONG, 8 + LONG, x.shape[1]]  # a short prompt, a chunk longer than a block, one token, the rest
    parts = [m(x[:, a:b], cache=cache) for a, b in itertools.pairwise(cuts)]
    assert max_diff(torch.cat(parts, dim=1), whole, "chunks vs one shot") <= 1e-12
    # a chunk with explicit start_pos = 0 against the cache is the fused causal prefill
    again = m(x[:, :LONG], cache=cache, start_pos=0)
    assert max_diff(again, whole[:, :LONG], "rewind to 0") <= 1e-12


@pytest.mark.parametrize("config", CONFIGS)
def test_every_mode_agrees_on_every_prefill_path(config):
    m, x = make(config), tokens(config, B=3, N=LONG)
    mask = padding(3, LONG)
    outs = {}
    for mode in MODES:
        m.mode = mode
        cache = m.new_cache(3, LONG)
        outs[mode] = (m(x), m(x, mask=mask), torch.cat([m(x[:, :50], cache=cache), m(x[:, 50:], cache=cache)], 1))
    for mode in ("auto", "absorbed"):
        for name, a, b in zip(("causal", "padding", "chunks"), outs["naive"], outs[mode]):
            assert max_diff(a, b, f"{name}: naive vs {mode}") <= 1e-12


def test_half_precision_prefill_stays_close_to_float64():
    config = MLAConfig(dim=64, heads=4, d_head=16, d_c=32, d_rope=8)
    m64, x = make(config), tokens(config, N=LONG)
    ref = m64(x)
    m16 = copy.deepcopy(m64).bfloat16()  # the same weights, rounded
    for mode in MODES:
        m16.mode = mode
        out = m16(x.bfloat16()).double()
        cos = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)
        assert cos > 0.999, f"{mode}: cosine {cos:.5f}"


def _module_peak(mode: str, n: int, *, chunk: bool = False) -> int:
    torch.manual_seed(0)
    m = MultiHeadLatentAttention(MLAConfig(dim=48, heads=4, d_head=12, d_c=16, d_rope=4), mode=mode)
    if not chunk:
        x = torch.randn(1, n, 48)
        return peak_bytes(lambda: m(x))
    x = torch.randn(1, 2 * n, 48)
    cache = m.new_cache(1, 2 * n)
    with torch.no_grad():
        m(x[:, :n], cache=cache)
    return peak_bytes(lambda: m(x[:, n:], cache=cache, start_pos=n))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk", [False, True], ids=["prefill", "chunk-after-cache"])
def test_peak_memory_grows_linearly_not_quadratically(mode, chunk):
    small, large = _module_peak(mode, 512, chunk=chunk), _module_peak(mode, 2048, chunk=chunk)
    assert large / small < 5, f"4× the tokens cost {large / small:.1f}× the memory (N² would be 16×)"
    scores = 4 * 2048 * 2048 * 4  # what the H×N×N float32 scores alone would take
    assert large < scores / 2
