"""Window + global tokens (lattn.family.global_tokens): the mask, the score counts, and how far an output reaches."""

import pytest
import torch

from lattn import LatentAttention
from lattn.analysis import dependence
from lattn.family.global_tokens import LocalGlobalAttention, score_counts
from lattn.masks import local_global_mask


def test_mask_example_from_the_docstring():
    m = local_global_mask(4, 1, 1).int().tolist()
    assert m[0] == [1, 1, 1, 1, 1]  # the global token sees everything
    assert m[1] == [1, 1, 1, 0, 0]  # token 0: the global, itself, token 1
    assert [row[0] for row in m] == [1] * 5  # everything sees the global token


@pytest.mark.parametrize(("n", "w", "g"), [(16, 2, 2), (100, 7, 3), (5, 10, 1)])
def test_score_counts_match_the_closed_form(n, w, g):
    counts = score_counts(n, window=w, num_global=g, num_latents=4, registers=g)
    band = sum(min(i + w, n - 1) - max(i - w, 0) + 1 for i in range(n))  # N(2w+1) − w(w+1) when w < N
    assert counts[f"window ±{w} + {g} global"] == band + g * (2 * n + g)
    assert counts["full attention"] == n * n and counts[f"full + {g} registers"] == (n + g) ** 2
    assert counts["4 latents (gather + broadcast)"] == 2 * n * 4
    assert counts[f"window ±{w} + {g} global"] == int(local_global_mask(n, w, g).sum())  # the mask itself


def test_one_layer_cannot_reach_beyond_the_window_two_layers_and_latents_can():
    torch.manual_seed(0)
    x = torch.randn(1, 12, 8, dtype=torch.float64)
    one = dependence(LocalGlobalAttention(8, 2, 2, depth=1).double(), x)[0]  # how output 0 depends on each token
    two = dependence(LocalGlobalAttention(8, 2, 2, depth=2).double(), x)[0]
    latent = dependence(LatentAttention(8, 3, stages=("gather", "broadcast")).double(), x)[0]
    assert (one[3:] == 0).all() and (one[:3] > 0).all()  # the globals' inputs carry nothing from the tokens
    assert (two > 0).all() and (latent > 0).all()


def test_local_global_refuses_causal_mask_and_maps():
    m = LocalGlobalAttention(8, 1, 1)
    with pytest.raises(ValueError, match="cannot be causal"):
        m(torch.randn(1, 5, 8), causal=True)
    with pytest.raises(ValueError, match="no mask, no maps"):
        m(torch.randn(1, 5, 8), return_maps=True)
