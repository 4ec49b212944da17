"""The one maps protocol, walked over the registry: ``module(x, return_maps=True)`` is ``(out, maps)``, maps are
:class:`~lattn.latent.LatentMaps` with exactly the declared stages and their shapes (full attention: its (B, H, N, N)
tensor); padded tokens reach no output and no map; the meaning of the maps of Perceiver AR and causal Luna."""

import pytest
import torch

from lattn.family import LunaCausal, PerceiverAR
from lattn.family.compare import MECHANISMS, Sizes
from lattn.latent import STAGES, LatentMaps


@pytest.mark.parametrize("key", list(MECHANISMS))
def test_every_registry_entry_returns_out_and_maps_of_one_type(key):
    """The one maps protocol: ``module(x, return_maps=True)`` is ``(out, maps)``; maps are LatentMaps with exactly the
    declared stages, each of its shape (full attention: its (B, H, N, N) tensor); ``run`` returns what it returns."""
    mech = MECHANISMS[key]
    B, N, M, H = 2, 7, 3, 2
    module = mech.build(Sizes(dim=8, heads=H, num_latents=M, seq_len=N))
    x = torch.randn(B, N, 8)
    assert isinstance(module(x, causal=module.is_causal), torch.Tensor)
    result = module(x, causal=module.is_causal, return_maps=True)
    assert isinstance(result, tuple) and len(result) == 2, f"{key}: return_maps=True gives (out, maps)"
    out, maps = result
    assert type(maps) is type(mech.run(module, x)[1])  # the registry adds nothing
    if key == "full":
        assert isinstance(maps, torch.Tensor) and maps.shape == (B, H, N, N)
        return
    assert type(maps) is LatentMaps, f"{key}: maps are {type(maps).__name__}"
    present = tuple(s for s in STAGES if getattr(maps, s) is not None)
    assert present == mech.stages, f"{key}: maps for {present}, declared {mech.stages}"
    h = 1 if key == "slot" else H  # Slot Attention has one head
    shapes = {"write": (B, h, N, M), "gather": (B, h, M, N), "broadcast": (B, h, N, M)}
    for s in present:
        assert getattr(maps, s).shape == shapes[s], f"{key} {s}"
    if maps.gather is not None and key not in ("linformer", "luna_causal"):
        torch.testing.assert_close(maps.gather.sum(-1), torch.ones(maps.gather.shape[:-1]))  # softmax over tokens
    if maps.broadcast is not None:
        torch.testing.assert_close(maps.broadcast.sum(-1), torch.ones(maps.broadcast.shape[:-1]))  # over latents
        assert maps.effective().shape == (B, h, N, N)
    assert all(isinstance(m, torch.Tensor) and m.shape[0] == B for m in maps.extra.values())


@pytest.mark.parametrize("key", list(MECHANISMS))
def test_nan_in_padded_tokens_changes_no_output_and_no_map(key):
    """Padded tokens take no part: NaN there gives bit for bit the outputs and the maps of finite padding, and the
    padded rows and columns of every map are zeros."""
    mech = MECHANISMS[key]
    module = mech.build(Sizes(dim=8, heads=2, num_latents=3, seq_len=7))
    x, mask = torch.randn(2, 7, 8), torch.tensor([[True, True, False, True, True, True, False], [True] * 7])
    poisoned = x.masked_fill(~mask[..., None], float("nan"))
    for rm in (False, True):
        clean = module(x, mask=mask, causal=module.is_causal, return_maps=rm)
        dirty = module(poisoned, mask=mask, causal=module.is_causal, return_maps=rm)
        if not rm:
            assert torch.equal(clean, dirty), f"{key}: a NaN in a padded token moved an output"
            continue
        assert torch.equal(clean[0], dirty[0]), f"{key}: teaching path"
        maps = [clean[1]] if key == "full" else [*[getattr(clean[1], s) for s in STAGES], *clean[1].extra.values()]
        others = [dirty[1]] if key == "full" else [*[getattr(dirty[1], s) for s in STAGES], *dirty[1].extra.values()]
        for a, b in zip(maps, others):
            assert (a is None and b is None) or torch.equal(a, b), f"{key}: a map saw the padded NaN"
        pad = ~mask[0]  # sequence 0's padded tokens
        token_rows = [clean[1]] if key == "full" else [getattr(clean[1], s) for s in ("write", "broadcast")]
        token_cols = [clean[1]] if key == "full" else [clean[1].gather]
        assert all(m is None or (m[0, :, pad] == 0).all() for m in token_rows), f"{key}: padded rows"
        assert all(m is None or (m[0, ..., pad] == 0).all() for m in token_cols), f"{key}: padded columns"


def test_perceiver_ar_gather_map():
    m = PerceiverAR(8, 3, heads=2, cross_heads=2, depth=2)
    out, maps = m(torch.randn(1, 7, 8), return_maps=True)
    assert out.shape == (1, 3, 8) and list(m.output_positions(7)) == [4, 5, 6]
    g = maps.gather  # (1, 2, 3, 7): latent i at position 4 + i sees tokens ≤ 4 + i
    assert g.shape == (1, 2, 3, 7)
    assert (g[..., 0, 5:] == 0).all() and (g[..., 1, 6:] == 0).all() and (g[..., 0, :5] > 0).all()
    for i in (1, 2):
        s = maps.extra[f"latent self-attention {i}"]  # (1, 2, 3, 3), causal among latents
        assert torch.equal(s, s.tril())
    short = m(torch.randn(1, 2, 8))  # N ≤ M: every position is a latent, (B, N, D)
    assert short.shape == (1, 2, 8) and list(m.output_positions(2)) == [0, 1]


def test_luna_causal_effective_map_is_lower_triangular_and_row_stochastic_in_the_limit():
    m = LunaCausal(8, 3, heads=2)
    _, maps = m(torch.randn(1, 6, 8), return_maps=True)
    eff = maps.effective()
    assert eff.shape == (1, 2, 6, 6)
    assert torch.equal(eff, eff.tril()), "no token reads a later token"
    assert (maps.gather > 0).all(), "elu + 1 packing weights are positive"
    torch.testing.assert_close(maps.broadcast.sum(-1), torch.ones(1, 2, 6))
