"""Nyströmformer (Xiong et al. 2021, arXiv:2102.03902): full attention's N×N map approximated through m landmarks.

Like :class:`~lattn.family.Linformer` it keeps full attention's projections and squeezes the map through a short
array, but its m **landmarks are computed from the tokens**: the means of m contiguous segments of the queries and of
the keys, Q̃ and K̃ (m × d_head). Nothing about them is learned and no length is fixed. Three softmax maps through
the landmarks stand in for S = softmax(Q Kᵀ/√d) (N × N), the paper's Nyström form::

    Ŝ = softmax(Q K̃ᵀ/√d) · Z · softmax(Q̃ Kᵀ/√d),    Z ≈ softmax(Q̃ K̃ᵀ/√d)⁺  (Moore–Penrose pseudo-inverse)
          F̃ (N × m)        (m × m)    B̃ (m × N)

and out = F̃ · (Z · (B̃ · V)) is computed right to left, so no N×N matrix is formed: O(N·m + m³) per head. In the
course's words B̃·V is a **gather** (landmark queries read the tokens, softmax over tokens) and F̃ a **broadcast**
(tokens read the landmark keys, softmax over landmarks), with the m × m correction Z in between; Ŝ has rank ≤ m.
With m = N every token is its own landmark, Ŝ = S·Z·S and, once Z has converged to S⁺ (S·S⁺·S = S), Ŝ = S: exact
attention (tests/test_family_nystrom.py measures it).

Z comes from the paper's iteration (Razavi et al. 2014), ``pinv_iterations = 6`` steps as the paper and the authors'
code use, from Z₀ = Aᵀ / (‖A‖₁‖A‖∞) per matrix: see :func:`pinv_iterative`. Differences from the authors' code,
each on purpose: Z₀'s scale is computed per (sequence, head) — the paper's formula and their later "exact" option;
their default takes one maximum over the whole batch, so one sequence's output would depend on the others. No
depthwise-convolution skip on V (the paper adds one *beside* the approximation). N not divisible by m: short
segments first, then ⌈N/m⌉-long ones, as in the authors' T2T-ViT extension. m > N: every token is its own landmark.
Padding (``mask``): a landmark is the mean of the *real* tokens of its segment and a segment with none gives no
landmark (the authors' code averages the zeroed padded rows in), padded keys and values reach no product, padded
positions output zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..attention import Attention, attend, drop_padded
from ..checks import check_int
from ..latent import LatentMaps
from ..masks import masked_softmax, upcast
from ._common import check_input, refuse_causal

__all__ = ["Nystromformer", "pinv_iterative", "segment_ids", "segment_means"]


def segment_ids(n: int, m: int) -> Tensor:
    """(N,) long: the segment of each of N tokens split into m contiguous segments (m ≤ N).

    Equal segments of N/m tokens when m divides N; otherwise the first (⌊N/m⌋ + 1)·m − N segments hold ⌊N/m⌋ tokens
    and the rest ⌊N/m⌋ + 1. Example: N = 7, m = 3 → [0, 0, 1, 1, 2, 2, 2].
    """
    check_int(n=n, m=m)
    if m > n:
        raise ValueError(f"m={m} segments need at least m tokens, got n={n}")
    short, num_short = n // m, (n // m + 1) * m - n  # num_short = m when m divides n
    j = torch.arange(n)
    edge = num_short * short  # the tokens of the short segments come first
    return torch.where(j < edge, j // short, num_short + (j - edge) // (short + 1))


def segment_means(n: int, m: int, mask: Tensor | None = None, *, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B | 1, m, N): row s averages the tokens of segment s (:func:`segment_ids`); with a padding ``mask`` (B, N)
    only its real tokens, and a segment without any gets an all-zero row (no landmark). ``P @ Q`` = Q̃."""
    member = (segment_ids(n, m)[None, :] == torch.arange(m)[:, None]).to(dtype)[None]  # (1, m, N)
    if mask is not None:
        member = member.to(mask.device) * mask[:, None, :].to(dtype)  # (B, m, N)
    return member / member.sum(-1, keepdim=True).clamp(min=1)


def pinv_iterative(a: Tensor, iterations: int = 6) -> Tensor:
    """Moore–Penrose pseudo-inverse of square matrices a (…, m, m) by the iteration Nyströmformer uses:

        Z_{j+1} = ¼ Z_j (13 I − A Z_j (15 I − A Z_j (7 I − A Z_j))),    Z₀ = Aᵀ / (‖A‖₁ ‖A‖∞)

    (‖·‖₁ the largest column sum, ‖·‖∞ the largest row sum of |A|, per matrix). Z₀ makes every eigenvalue of A Z₀
    lie in [0, 1]; a step takes an eigenvalue s = 1 − r to 1 − (¾r³ + ¼r⁴) (third order near 1) and multiplies a
    small one by about 13/4, so a few steps suffice when A is well conditioned and more are needed when it is
    nearly singular. An all-zero row and column of A (a missing landmark) stay zero in Z. Four m × m matmuls per step.
    """
    check_int(iterations=iterations, minimum=0)
    if not isinstance(a, Tensor) or not a.is_floating_point() or a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        got = tuple(a.shape) if isinstance(a, Tensor) else type(a).__name__
        raise TypeError(f"a must be a floating tensor of square matrices (…, m, m), got {got}")
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    norm_1 = a.abs().sum(-2).amax(-1)  # (…,) largest column sum
    norm_inf = a.abs().sum(-1).amax(-1)  # (…,) largest row sum (1 for a softmax map)
    z = a.transpose(-1, -2) / (norm_1 * norm_inf).clamp(min=torch.finfo(a.dtype).tiny)[..., None, None]
    for _ in range(iterations):
        az = a @ z  # (…, m, m)
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


class Nystromformer(Attention):
    """Nyström self-attention with m landmarks (segment means of Q and K): (B, N, D) → (B, N, D), any N.

    Args: dim, num_landmarks (m; m ≥ N means every token is its own landmark), heads, pinv_iterations (6, as the
    paper).

    ``forward(x, *, mask (B, N) | None, causal=False, return_maps=False)``. Maps: ``gather`` = B̃ =
    softmax(Q̃ Kᵀ/√d) (B, H, m, N), ``broadcast`` = F̃ = softmax(Q K̃ᵀ/√d) (B, H, N, m), ``effective_map`` = F̃·Z·B̃
    (B, H, N, N), the approximated attention map; ``extra``: ``"landmark kernel"`` softmax(Q̃ K̃ᵀ/√d) and
    ``"pseudo-inverse Z"`` (B, H, m, m), ``"segment means"`` (B, 1, m, N). The teaching path forms the N×N map only
    to return it; the output is computed right to left on both paths.
    """

    stages = ("gather", "broadcast")
    is_causal = False
    causal_note = "each landmark is the mean of a whole segment of queries and keys, the future included."
    returns_tokens = True

    def __init__(self, dim: int, num_landmarks: int, *, heads: int = 1, pinv_iterations: int = 6) -> None:
        super().__init__(dim, heads=heads)  # to_q, to_k, to_v, to_out
        check_int(num_landmarks=num_landmarks)
        check_int(pinv_iterations=pinv_iterations, minimum=0)
        self.num_landmarks, self.pinv_iterations = num_landmarks, pinv_iterations

    def forward(
        self, x: Tensor, *, mask: Tensor | None = None, causal: bool = False, return_maps: bool = False
    ) -> Tensor | tuple[Tensor, LatentMaps]:
        refuse_causal(self, causal)
        check_input(self, x, mask)
        B, N, D = x.shape
        m = min(self.num_landmarks, N)
        q, k, v = (self.split(f(x)) for f in (self.to_q, self.to_k, self.to_v))  # (B, H, N, d_head) each
        keys = landmarks = None  # which keys / landmarks exist: all of them without a mask
        if mask is not None:
            q, k, v = drop_padded(q, mask), drop_padded(k, mask), drop_padded(v, mask)  # padded rows reach no product
            keys = mask[:, None, None, :]  # (B, 1, 1, N)
        seg = segment_means(N, m, mask, dtype=x.dtype).to(x.device)  # (B | 1, m, N)
        if mask is not None:
            landmarks = (seg.sum(-1) > 0)[:, None, None, :]  # (B, 1, 1, m): segments with a real token
        q_l = torch.einsum("bsn,bhnd->bhsd", seg, q)  # Q̃ (B, H, m, d_head): segment means
        k_l = torch.einsum("bsn,bhnd->bhsd", seg, k)  # K̃ (B, H, m, d_head)
        gathered, gmap = attend(q_l, k, v, keys, return_maps=return_maps)  # B̃·V (B, H, m, d_head), B̃ | None
        scores = torch.einsum("bhsd,bhtd->bhst", upcast(q_l), upcast(k_l)) / self.d_head**0.5  # (B, H, m, m)
        kernel = masked_softmax(scores, landmarks)  # A = softmax(Q̃ K̃ᵀ/√d), float32 for half inputs
        if landmarks is not None:  # a missing landmark reads nothing: zero rows (its column is masked above)
            rows = landmarks.transpose(-1, -2)  # (B, 1, m, 1)
            kernel, gathered = kernel * rows, gathered * rows
            gmap = None if gmap is None else gmap * rows
        z = pinv_iterative(kernel, self.pinv_iterations)  # Z ≈ A⁺ (B, H, m, m)
        core = (z @ upcast(gathered)).to(x.dtype)  # Z·B̃·V (B, H, m, d_head)
        read, bmap = attend(q, k_l, core, landmarks, return_maps=return_maps)  # F̃·Z·B̃·V (B, H, N, d_head), F̃ | None
        out = self.merge(read)  # (B, N, D)
        if mask is not None:
            out = out.masked_fill(~mask[..., None], 0)  # padded positions output zeros
        if not return_maps:
            return out
        if mask is not None:  # padded queries read nothing: their rows of the map are zeros, as in every family map
            bmap = bmap.masked_fill(~mask[:, None, :, None], 0)
        extra = {"landmark kernel": kernel, "pseudo-inverse Z": z, "segment means": seg[:, None].expand(B, 1, m, N)}
        effective = bmap @ z @ gmap  # (B, H, N, N): the approximated attention map, for display only
        return out, LatentMaps(gather=gmap, broadcast=bmap, effective_map=effective, extra=extra)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_landmarks={self.num_landmarks}, heads={self.heads}, iters={self.pinv_iterations}"
