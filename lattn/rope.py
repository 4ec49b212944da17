"""Rotary position embedding (RoPE) details that matter to run DeepSeek's MLA exactly: YaRN context extension and the
layout of the rotated feature pairs.

* :class:`YaRN` — ``rope_scaling`` of type ``"yarn"`` as DeepSeek-V2/V3's ``config.json`` define it (Peng et al. 2023,
  arXiv:2309.00071). It changes two things: the rotation frequencies (slow pairs are interpolated by ``factor``, fast
  pairs kept, a linear ramp between) and the attention logits' scale (× mscale², mscale = 0.1·m·ln(factor) + 1).
* :func:`rope_frequencies` — the inverse frequencies of the d/2 rotated pairs, plain or YaRN, in float64.
* :func:`interleaved_to_halves` / :func:`halves_to_interleaved` — DeepSeek's code rotates *adjacent* pairs
  (2i, 2i + 1); :func:`lattn.mla.apply_rope` rotates pair (i, i + d/2). The two are the same function up to a fixed
  permutation of the rotary features, so permuting the output rows of the rotary weights (W_QR, W_KR) converts a
  checkpoint from one layout to the other without changing any output.

Example: ``YaRN(factor=40, mscale=0.707, mscale_all_dim=0.707).softmax_factor`` ≈ 1.5896 (DeepSeek-V2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .checks import check_int

__all__ = ["YaRN", "get_mscale", "halves_to_interleaved", "interleaved_to_halves", "rope_frequencies"]


def get_mscale(factor: float, m: float = 1.0) -> float:
    """YaRN's magnitude factor 0.1·m·ln(factor) + 1 for a context extended ``factor`` times (1 when factor ≤ 1).
    Example: get_mscale(40, 1.0) = 1.3689 (DeepSeek-V3), get_mscale(40, 0.707) = 1.2608 (DeepSeek-V2)."""
    return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


@dataclass(frozen=True)
class YaRN:
    """YaRN RoPE scaling, with the field names of DeepSeek's ``rope_scaling`` (read one with :meth:`from_config`).

    The pairs that turn fewer than ``beta_slow`` times over the original context are slow: their frequency is divided
    by ``factor`` (interpolation, so a position up to factor × the original context looks like one the model saw).
    Pairs that turn more than ``beta_fast`` times keep theirs (extrapolation: they encode local order). A linear ramp
    over the pair index joins the two. The softmax scale is multiplied by ``softmax_factor`` and the rotated parts by
    ``rope_magnitude`` (1 when ``mscale == mscale_all_dim``, as in every DeepSeek config). As in the Hugging Face
    modelling code, both apply at every position (DeepSeek-V3's own inference script applies them only when it is
    configured for more than ``original_max_position_embeddings`` tokens).
    """

    factor: float  # s: the context is extended s times (DeepSeek: 40, 4,096 → 163,840)
    original_max_position_embeddings: int = 4096  # the context the model was pre-trained with
    beta_fast: float = 32.0  # pairs turning more often than this over the original context are kept
    beta_slow: float = 1.0  # pairs turning less often than this are interpolated
    mscale: float = 1.0  # m of the rotary magnitude (with mscale_all_dim)
    mscale_all_dim: float = 0.0  # m of the softmax scale (0: the scale is unchanged)
    type: str = "yarn"

    def __post_init__(self) -> None:
        if self.type != "yarn":
            raise ValueError(f"only rope_scaling type 'yarn' is supported, got {self.type!r}")
        check_int(**{"YaRN.original_max_position_embeddings": self.original_max_position_embeddings})
        if not self.factor >= 1:
            raise ValueError(f"YaRN.factor must be ≥ 1 (how many times the context grows), got {self.factor}")
        if not self.beta_fast > self.beta_slow > 0:
            raise ValueError(f"YaRN needs beta_fast > beta_slow > 0, got {self.beta_fast} and {self.beta_slow}")
        if not (self.mscale >= 0 and self.mscale_all_dim >= 0):
            raise ValueError(f"YaRN mscale values must be ≥ 0, got {self.mscale} and {self.mscale_all_dim}")

    @classmethod
    def from_config(cls, rope_scaling: dict[str, Any]) -> YaRN:
        """From a ``config.json`` ``rope_scaling`` dict; keys it does not use (e.g. ``rope_type``) are ignored."""
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in rope_scaling.items() if k in names})

    @property
    def softmax_factor(self) -> float:
        """What the softmax scale is multiplied by: mscale(factor, mscale_all_dim)² (1 if mscale_all_dim = 0)."""
        return get_mscale(self.factor, self.mscale_all_dim) ** 2 if self.mscale_all_dim else 1.0

    @property
    def rope_magnitude(self) -> float:
        """What cos and sin are multiplied by: mscale(factor, mscale) / mscale(factor, mscale_all_dim)."""
        return get_mscale(self.factor, self.mscale) / get_mscale(self.factor, self.mscale_all_dim)

    def correction_range(self, d: int, theta: float = 10000.0) -> tuple[int, int]:
        """(low, high) pair indices of the ramp for d rotary features: pair i turns
        L_orig / (2π·theta^(2i/d)) times over the original context; ``low`` is where that is beta_fast (rounded down),
        ``high`` where it is beta_slow (rounded up), clipped to [0, d − 1]. DeepSeek's d = 64: (10, 23)."""

        def pair_at(turns: float) -> float:  # solve L_orig / (2π·turns) = theta^(2i/d) for i
            return d * math.log(self.original_max_position_embeddings / (turns * 2 * math.pi)) / (2 * math.log(theta))

        return max(math.floor(pair_at(self.beta_fast)), 0), min(math.ceil(pair_at(self.beta_slow)), d - 1)


def rope_frequencies(d: int, theta: float = 10000.0, yarn: YaRN | None = None) -> Tensor:
    """Inverse frequencies (d/2,) float64: pair i turns by position · theta^(-2i/d), or with ``yarn`` by
    position · (ramp_i · theta^(-2i/d) / factor + (1 − ramp_i) · theta^(-2i/d)), ramp_i = clamp((i − low) / (high −
    low), 0, 1) rising from 0 (kept) to 1 (interpolated) over :meth:`YaRN.correction_range`."""
    check_int(d=d)
    if d % 2:
        raise ValueError(f"RoPE needs an even number of features, got {d}")
    base = theta ** -(torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    if yarn is None:
        return base
    low, high = yarn.correction_range(d, theta)
    ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / max(high - low, 1e-3)).clamp(0, 1)  # (d/2,)
    return base / yarn.factor * ramp + base * (1 - ramp)


# --- pair layouts -----------------------------------------------------------------------------------------------------
def _layout_order(d: int) -> Tensor:
    """Index map from halves to interleaved: halves feature k comes from interleaved feature order[k]
    (first the even features 0, 2, …, then the odd 1, 3, …)."""
    if d % 2 or d < 2:
        raise ValueError(f"a rotary part needs an even width ≥ 2, got {d}")
    return torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])


def _permute_rows(weight: Tensor, d_rope: int, order: Tensor) -> Tensor:
    if weight.dim() not in (1, 2) or weight.shape[0] % d_rope:
        raise ValueError(f"weight rows ({tuple(weight.shape)}) must be whole blocks of d_rope = {d_rope}")
    blocks = weight.reshape(weight.shape[0] // d_rope, d_rope, *weight.shape[1:])  # (heads, d_rope, in)
    return blocks[:, order].reshape(weight.shape)


def interleaved_to_halves(weight: Tensor, d_rope: int) -> Tensor:
    """Rotary weight rows from DeepSeek's layout (pairs (2i, 2i + 1)) to lattn's (pairs (i, i + d/2)).

    ``weight`` (n·d_rope, in) or (n·d_rope,): n blocks of d_rope rows (one per head for W_QR, one for W_KR); in each
    block the rows are reordered even ones first, then odd ones. Example (d_rope = 4): rows 0 1 2 3 → 0 2 1 3.
    """
    return _permute_rows(weight, d_rope, _layout_order(d_rope))


def halves_to_interleaved(weight: Tensor, d_rope: int) -> Tensor:
    """The inverse of :func:`interleaved_to_halves`: lattn's rotary rows into DeepSeek's layout."""
    return _permute_rows(weight, d_rope, torch.argsort(_layout_order(d_rope)))
