"""Rotary position embedding (RoPE): the rotation itself and the details that matter to run DeepSeek's MLA exactly —
YaRN context extension and the layout of the rotated feature pairs.

* :func:`apply_rope` — rotate feature pair (i, i + d/2) of the token at position p by p·θ_i.
* :func:`rope_frequencies` — the inverse frequencies θ_i of the d/2 rotated pairs, plain or YaRN, in float64.
* :class:`YaRN` — ``rope_scaling`` of type ``"yarn"`` as DeepSeek-V2/V3's ``config.json`` and Hugging Face's
  ``_compute_yarn_parameters`` define it (Peng et al. 2023, arXiv:2309.00071). It changes the rotation frequencies
  (slow pairs are interpolated by ``factor``, fast pairs kept, a linear ramp between), the magnitude of cos and sin
  (``rope_magnitude``) and the attention logits' scale (× mscale², mscale = 0.1·m·ln(factor) + 1).
* :func:`interleaved_to_halves` / :func:`halves_to_interleaved` — DeepSeek's code rotates *adjacent* pairs
  (2i, 2i + 1); :func:`apply_rope` rotates pair (i, i + d/2). The two are the same function up to a fixed
  permutation of the rotary features, so permuting the output rows of the rotary weights (W_QR, W_KR) converts a
  checkpoint from one layout to the other without changing any output.

Unlike :mod:`lattn.mla`, nothing here knows about attention: these are functions of positions and features.
Example: ``YaRN(factor=40, mscale=0.707, mscale_all_dim=0.707).softmax_factor`` ≈ 1.5896 (DeepSeek-V2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from .checks import _shape, check_int
from .masks import upcast

__all__ = [
    "YaRN",
    "apply_rope",
    "get_mscale",
    "halves_to_interleaved",
    "interleaved_to_halves",
    "rope_frequencies",
]


def get_mscale(factor: float, m: float = 1.0) -> float:
    """YaRN's magnitude factor 0.1·m·ln(factor) + 1 for a context extended ``factor`` times (1 when factor ≤ 1).
    Example: get_mscale(40, 1.0) = 1.3689 (DeepSeek-V3), get_mscale(40, 0.707) = 1.2608 (DeepSeek-V2)."""
    return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


def _check_number(name: str, value: object, *, optional: bool = False) -> None:
    """TypeError unless a real number (bools and strings refused; None too unless ``optional``); ValueError unless
    finite."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        allowed = "a finite number or None (not set)" if optional else "a finite number"
        raise TypeError(f"YaRN.{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        raise ValueError(f"YaRN.{name} must be finite, got {value}: give the number the config.json holds")


def check_rope_theta(theta: float, name: str = "rope_theta") -> None:
    """YaRN's correction range divides by ln(theta): refuse theta ≤ 1 (and non-numbers) by name."""
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta):
        raise TypeError(f"{name} must be a finite number > 1 with YaRN, got {theta!r} ({type(theta).__name__})")
    if theta <= 1:
        raise ValueError(
            f"{name} must be > 1 with YaRN rope_scaling (the correction range divides by ln({name})), got {theta}: "
            "use the base of the checkpoint (DeepSeek: 10000) or rope_scaling=None"
        )


@dataclass(frozen=True)
class YaRN:
    """YaRN RoPE scaling, with the field names of DeepSeek's ``rope_scaling`` (read one with :meth:`from_config`).

    The pairs that turn fewer than ``beta_slow`` times over the original context are slow: their frequency is divided
    by ``factor`` (interpolation, so a position up to factor × the original context looks like one the model saw).
    Pairs that turn more than ``beta_fast`` times keep theirs (extrapolation: they encode local order). A linear ramp
    over the pair index joins the two. The softmax scale is multiplied by ``softmax_factor`` and cos and sin by
    ``rope_magnitude`` (1 when ``mscale == mscale_all_dim``, as in every DeepSeek config). As in the Hugging Face
    modelling code, both apply at every position (DeepSeek-V3's own inference script applies them only when it is
    configured for more than ``original_max_position_embeddings`` tokens).
    """

    factor: float  # s: the context is extended s times (DeepSeek: 40, 4,096 → 163,840)
    original_max_position_embeddings: int = 4096  # the context the model was pre-trained with
    beta_fast: float = 32.0  # pairs turning more often than this over the original context are kept
    beta_slow: float = 1.0  # pairs turning less often than this are interpolated
    mscale: float | None = None  # m of the rotary magnitude (used with mscale_all_dim); None = not set
    mscale_all_dim: float | None = None  # m of the softmax scale; None or 0 = the scale is unchanged
    attention_factor: float | None = None  # overrides the cos/sin magnitude (Hugging Face's key); None = derived
    truncate: bool = True  # floor/ceil the correction range to whole pairs (Hugging Face's `truncate: false` skips it)
    type: str = "yarn"

    def __post_init__(self) -> None:
        if self.type != "yarn":
            raise ValueError(f"YaRN.type must be 'yarn' (the only rope_scaling supported), got {self.type!r}")
        check_int(**{"YaRN.original_max_position_embeddings": self.original_max_position_embeddings})
        for name in ("factor", "beta_fast", "beta_slow"):
            _check_number(name, getattr(self, name))
        for name in ("mscale", "mscale_all_dim", "attention_factor"):
            _check_number(name, getattr(self, name), optional=True)
        if not isinstance(self.truncate, bool):
            raise TypeError(
                f"YaRN.truncate must be True or False, got {self.truncate!r} ({type(self.truncate).__name__})"
            )
        if self.factor < 1:
            raise ValueError(f"YaRN.factor must be ≥ 1 (how many times the context grows), got {self.factor}")
        if not self.beta_fast > self.beta_slow > 0:
            raise ValueError(
                f"YaRN needs beta_fast > beta_slow > 0, got beta_fast={self.beta_fast} and beta_slow={self.beta_slow}"
            )
        for name in ("mscale", "mscale_all_dim"):
            if (getattr(self, name) or 0) < 0:
                raise ValueError(f"YaRN.{name} must be ≥ 0 (or None: not set), got {getattr(self, name)}")
        if self.attention_factor is not None and self.attention_factor <= 0:
            raise ValueError(f"YaRN.attention_factor must be > 0 (or None: derived), got {self.attention_factor}")

    @classmethod
    def from_config(cls, rope_scaling: dict[str, Any]) -> YaRN:
        """From a ``config.json`` ``rope_scaling`` dict, read as Hugging Face reads it: ``rope_type`` or ``type`` must
        be "yarn"; a key set to None counts as not set; a key that would change the result but has no place here
        (e.g. ``rope_theta``: pass it to MLAConfig) is refused by name, never dropped."""
        if not isinstance(rope_scaling, dict):
            raise TypeError(f"rope_scaling must be a dict (config.json's block), got {type(rope_scaling).__name__}")
        names = {f.name for f in fields(cls)} - {"type"}
        kinds = {rope_scaling[k] for k in ("type", "rope_type") if rope_scaling.get(k) is not None}
        if kinds - {"yarn"}:
            raise ValueError(f"rope_scaling type must be 'yarn' (the only one supported), got {sorted(kinds)}")
        unknown = sorted(set(rope_scaling) - names - {"type", "rope_type"})
        if unknown:
            raise ValueError(
                f"YaRN.from_config does not know the key(s) {unknown}, which may change the result; it reads "
                f"{sorted(names)} (rope_theta belongs to MLAConfig.rope_theta): remove or move them"
            )
        if rope_scaling.get("factor") is None:
            raise ValueError("YaRN.from_config needs 'factor' (how many times the context grows), got none")
        return cls(**{k: v for k, v in rope_scaling.items() if k in names and v is not None})

    @property
    def softmax_factor(self) -> float:
        """What the softmax scale is multiplied by: mscale(factor, mscale_all_dim)² (1 if mscale_all_dim is unset
        or 0), as DeepSeek's modelling code does."""
        return get_mscale(self.factor, self.mscale_all_dim) ** 2 if self.mscale_all_dim else 1.0

    @property
    def rope_magnitude(self) -> float:
        """What cos and sin are multiplied by (Hugging Face's ``attention_factor``): the given ``attention_factor``;
        else mscale(factor, mscale) / mscale(factor, mscale_all_dim) when both are set and non-zero; else
        mscale(factor, 1)."""
        if self.attention_factor is not None:
            return float(self.attention_factor)
        if self.mscale and self.mscale_all_dim:
            return get_mscale(self.factor, self.mscale) / get_mscale(self.factor, self.mscale_all_dim)
        return get_mscale(self.factor)

    def correction_range(self, d: int, theta: float = 10000.0) -> tuple[float, float]:
        """(low, high) pair indices of the ramp for d rotary features: pair i turns L_orig / (2π·theta^(2i/d)) times
        over the original context; ``low`` is where that is beta_fast (rounded down), ``high`` where it is beta_slow
        (rounded up; both left as they are with ``truncate=False``), then clipped, low ≥ 0 and high ≤ d − 1 (the
        published code's bound). DeepSeek's d = 64: (10, 23); d = 128: (20, 46)."""
        check_int(d=d)
        check_rope_theta(theta, "theta")

        def pair_at(turns: float) -> float:  # solve L_orig / (2π·turns) = theta^(2i/d) for i
            return d * math.log(self.original_max_position_embeddings / (turns * 2 * math.pi)) / (2 * math.log(theta))

        low, high = pair_at(self.beta_fast), pair_at(self.beta_slow)
        if self.truncate:
            low, high = math.floor(low), math.ceil(high)
        return max(low, 0), min(high, d - 1)


def rope_frequencies(d: int, theta: float = 10000.0, yarn: YaRN | None = None) -> Tensor:
    """Inverse frequencies (d/2,) float64: pair i turns by position · theta^(-2i/d), or with ``yarn`` by
    position · (ramp_i · theta^(-2i/d) / factor + (1 − ramp_i) · theta^(-2i/d)), ramp_i = clamp((i − low) / (high −
    low), 0, 1) rising from 0 (kept) to 1 (interpolated) over :meth:`YaRN.correction_range` (high − low = 0.001 when
    they are equal). As in DeepSeek's and Hugging Face's code, a range that clipping leaves with high < low (a tiny
    original context: every pair turns fewer than beta_slow times) keeps every pair."""
    check_int(d=d)
    if d % 2:
        raise ValueError(f"RoPE needs an even number of features, got {d}")
    base = theta ** -(torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    if yarn is None:
        return base
    low, high = yarn.correction_range(d, theta)
    span = high - low if high != low else 0.001  # NOTE: negative when high < low: the ramp is then 0 for pairs ≥ 0
    ramp = ((torch.arange(d // 2, dtype=torch.float64) - low) / span).clamp(0, 1)  # (d/2,)
    return base / yarn.factor * ramp + base * (1 - ramp)


def apply_rope(
    x: Tensor, positions: Tensor, theta: float = 10000.0, *, inv_freq: Tensor | None = None, magnitude: float = 1.0
) -> Tensor:
    """Rotary position embedding: rotate feature pair (i, i + d/2) of the token at position p by p·theta^(-2i/d).

    x: (…, N, d) with d even; positions: (N,) integer positions. Returns (…, N, d). Angles are computed in float64,
    so a rotation is exact to the working precision (half inputs rotate in float32). Property:
    ``rope(q, i)·rope(k, j)`` depends only on j − i. ``inv_freq`` (d/2,) replaces theta^(-2i/d) (e.g. YaRN's,
    :func:`rope_frequencies`); ``magnitude`` multiplies cos and sin (:attr:`YaRN.rope_magnitude`). Pairs are
    (i, i + d/2); DeepSeek's code pairs (2i, 2i + 1): see :func:`interleaved_to_halves`.
    """
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"apply_rope needs an even last dimension, got shape {_shape(x)}")
    if positions.shape != (x.shape[-2],):
        raise ValueError(f"positions must have shape (N,) = ({x.shape[-2]},) to match x {_shape(x)}")
    if inv_freq is None:
        inv_freq = rope_frequencies(d, theta)  # (d/2,)
    elif inv_freq.shape != (d // 2,):
        raise ValueError(f"inv_freq must have shape (d/2,) = ({d // 2},), got {tuple(inv_freq.shape)}")
    angles = positions.to(torch.float64)[:, None] * inv_freq.to(device=x.device, dtype=torch.float64)  # (N, d/2)
    cos, sin = angles.cos(), angles.sin()
    if magnitude != 1.0:
        cos, sin = cos * magnitude, sin * magnitude
    xw = upcast(x)  # the working dtype: float32 for half inputs
    cos, sin = cos.to(xw.dtype), sin.to(xw.dtype)
    x1, x2 = xw.chunk(2, dim=-1)  # (…, N, d/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


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
