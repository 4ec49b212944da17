"""Nyströmformer against the paper's formula written out here in float64, and the properties it must have.

The reference below uses nothing of lattn's Nyströmformer: segment means by reshape-and-mean (the way the authors'
code computes them, with their extension for N not divisible by m), softmax from torch, the pseudo-inverse by the
paper's iteration from Z₀ = Aᵀ / (‖A‖₁‖A‖∞) with ``torch.linalg.matrix_norm``, and the product F̃ · Z · (B̃ · V).
Also: with m = N (every token its own landmark) and enough iterations it is exact softmax attention, checked against
:class:`~lattn.attention.MultiHeadAttention` with the same weights; the iteration converges to ``torch.linalg.pinv``;
padding (a landmark averages only real tokens); the refusal of ``causal=True`` and the measured future leak.
"""

import copy
import math

import pytest
import torch
from conftest import assert_close

from lattn.attention import MultiHeadAttention
from lattn.family import Nystromformer
from lattn.family.compare import MECHANISMS, Sizes, future_leak
from lattn.family.nystrom import pinv_iterative, segment_ids

ITERATIONS = 6  # the paper's count, the module's default


def reference(module: Nystromformer, x: torch.Tensor, iterations: int = ITERATIONS) -> torch.Tensor:
    """softmax(Q K̃ᵀ/√d) · pinv₆(softmax(Q̃ K̃ᵀ/√d)) · softmax(Q̃ Kᵀ/√d) · V, then W_O (float64, no mask)."""
    B, N, D = x.shape
    H = module.heads
    dh, m = D // H, min(module.num_landmarks, N)

    def heads(layer):  # (B, H, N, dh)
        y = x @ layer.weight.double().T + layer.bias.double()
        return y.reshape(B, N, H, dh).permute(0, 2, 1, 3)

    q, k, v = heads(module.to_q), heads(module.to_k), heads(module.to_v)

    def landmarks(t):  # segment means: N // m tokens per segment, the last segments one longer when m ∤ N
        short = N // m
        num_short = (short + 1) * m - N
        first = t[:, :, : num_short * short].reshape(B, H, num_short, short, dh).mean(-2)
        rest = t[:, :, num_short * short :].reshape(B, H, m - num_short, short + 1, dh).mean(-2)
        return torch.cat([first, rest], dim=2)  # (B, H, m, dh)

    q_l, k_l = landmarks(q), landmarks(k)
    f = torch.softmax(q @ k_l.transpose(-1, -2) / math.sqrt(dh), -1)  # F̃ (B, H, N, m)
    a = torch.softmax(q_l @ k_l.transpose(-1, -2) / math.sqrt(dh), -1)  # A (B, H, m, m)
    b = torch.softmax(q_l @ k.transpose(-1, -2) / math.sqrt(dh), -1)  # B̃ (B, H, m, N)
    norms = torch.linalg.matrix_norm(a, ord=1) * torch.linalg.matrix_norm(a, ord=float("inf"))  # (B, H)
    z = a.transpose(-1, -2) / norms[..., None, None]
    eye = torch.eye(m, dtype=x.dtype)
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    heads_out = f @ (z @ (b @ v))  # (B, H, N, dh)
    merged = heads_out.permute(0, 2, 1, 3).reshape(B, N, D)
    return merged @ module.to_out.weight.double().T + module.to_out.bias.double()


@pytest.mark.parametrize(
    "n, m, heads", [(12, 4, 2), (10, 4, 2), (9, 9, 3), (5, 8, 1)], ids=["m|N", "m∤N", "m=N", "m>N"]
)
@pytest.mark.parametrize("return_maps", [False, True], ids=["fast", "teaching"])
def test_float64_equals_the_papers_formula(n, m, heads, return_maps):
    torch.manual_seed(n + m)
    module = Nystromformer(12, m, heads=heads).double()
    x = torch.randn(2, n, 12, dtype=torch.float64)
    out = module(x, return_maps=return_maps)
    out = out[0] if return_maps else out
    assert_close(out, reference(module, x), 1e-12, f"Nyströmformer vs the paper's formula, N={n}, m={m}")


def test_every_token_its_own_landmark_is_exact_attention_once_z_converges():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 16, dtype=torch.float64)
    module = Nystromformer(16, 16, heads=2).double()
    full = MultiHeadAttention(16, 2).double()
    full.load_state_dict(module.state_dict())  # the same to_q, to_k, to_v, to_out
    errors = []
    for iterations in (6, 12, 24):
        module.pinv_iterations = iterations
        errors.append((module(x) - full(x)).abs().max().item())
    assert errors[0] > errors[1] > errors[2], f"the error must fall with the iterations: {errors}"
    assert errors[2] < 1e-10, f"m = N, 24 iterations: max |diff| {errors[2]:.1e} from exact attention"
    module.num_landmarks = 40  # m > N: still every token its own landmark
    assert_close(module(x), full(x), 1e-10, "m > N")


def test_iteration_converges_to_the_pseudo_inverse():
    torch.manual_seed(1)
    a = torch.softmax(3 * torch.randn(4, 6, 6, dtype=torch.float64), -1)
    assert_close(pinv_iterative(a, 40), torch.linalg.pinv(a), 1e-9, "invertible softmax maps")
    singular = a.clone()
    singular[:, 2, :], singular[:, :, 2] = 0, 0  # a missing landmark: its row and column are zero
    z = pinv_iterative(singular, 60)
    assert_close(z, torch.linalg.pinv(singular), 1e-9, "a zero row and column")
    assert z[:, 2].abs().max() == 0 and z[:, :, 2].abs().max() == 0
    assert_close(pinv_iterative(a, 0), a.transpose(-1, -2) / (a.sum(-2).amax(-1) * 1.0)[..., None, None], 1e-15, "Z₀")


def test_segments():
    assert segment_ids(8, 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert segment_ids(7, 3).tolist() == [0, 0, 1, 1, 2, 2, 2]  # short segments first, as the authors' extension
    assert segment_ids(10, 4).tolist() == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3]
    assert segment_ids(5, 5).tolist() == list(range(5))
    with pytest.raises(ValueError, match="at least m tokens"):
        segment_ids(3, 4)


def test_maps_are_the_three_factors():
    torch.manual_seed(2)
    module = Nystromformer(8, 3, heads=2).double()
    x = torch.randn(1, 9, 8, dtype=torch.float64)
    out, maps = module(x, return_maps=True)
    assert maps.gather.shape == (1, 2, 3, 9) and maps.broadcast.shape == (1, 2, 9, 3)
    assert_close(maps.gather.sum(-1), torch.ones(1, 2, 3, dtype=torch.float64), 1e-12, "B̃ rows: softmax over tokens")
    assert_close(maps.broadcast.sum(-1), torch.ones(1, 2, 9, dtype=torch.float64), 1e-12, "F̃ rows: over landmarks")
    z = maps.extra["pseudo-inverse Z"]
    assert_close(maps.effective(), maps.broadcast @ z @ maps.gather, 1e-12, "effective = F̃ Z B̃")
    assert torch.linalg.matrix_rank(maps.effective()[0, 0]) <= 3, "rank ≤ m"
    v = module.split(module.to_v(x))
    assert_close(module.merge(maps.effective() @ v), out, 1e-12, "the approximated map applied to V is the output")
    assert maps.extra["segment means"][0, 0].tolist()[0][:3] == [1 / 3] * 3
    assert maps.write is None


def test_padding_takes_no_part_and_whole_padded_segments_drop_their_landmarks():
    torch.manual_seed(3)
    module = Nystromformer(8, 4, heads=2).double()
    x = torch.randn(2, 12, 8, dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 9:] = False  # the last segment (tokens 9–11) is all padding
    mask[1, 4] = False  # one token of segment 1
    bad = x.clone()
    bad[~mask] = float("nan")
    out = module(x, mask=mask)
    assert torch.equal(module(bad, mask=mask), out), "a NaN in a padded token changes nothing"
    assert out[~mask].abs().max() == 0, "padded positions output zeros"
    assert_close(module(x, mask=mask, return_maps=True)[0], out, 1e-12, "fast = teaching with a mask")
    fewer = copy.deepcopy(module)
    fewer.num_landmarks = 3  # 9 real tokens, segments of 3: the same landmarks, one fewer
    assert_close(out[:1, :9], fewer(x[:1, :9]), 1e-12, "whole padded segment = one landmark fewer")
    _, maps = module(x, mask=mask, return_maps=True)
    assert maps.gather[0, :, 3].abs().max() == 0 and maps.broadcast[0, :, :, 3].abs().max() == 0
    assert maps.gather[1, :, :, 4].abs().max() == 0, "no landmark reads a padded token"


def test_not_causal_refused_and_the_future_leaks():
    module = Nystromformer(8, 3, heads=2)
    with pytest.raises(ValueError, match="Nystromformer cannot be causal: each landmark is the mean"):
        module(torch.randn(1, 6, 8), causal=True)
    mech = MECHANISMS["nystrom"]
    assert not mech.causal and mech.stages == ("gather", "broadcast")
    built = mech.build(Sizes(dim=8, heads=2, num_latents=3))
    x = torch.randn(1, 9, 8, generator=torch.Generator().manual_seed(4))
    assert future_leak(mech, built, x) > 1e-4, "changing the last token moves earlier outputs"
