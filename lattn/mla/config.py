"""The sizes of one MLA layer (:class:`MLAConfig`) and DeepSeek's published configurations (:data:`PRESETS`),
their YaRN context extension included.

Field names follow the DeepSeek-V2 paper's symbols (``d_c``, ``d_rope`` for d_h^R) except the head width, which is
``d_head`` everywhere in lattn (the paper's d_h; ``qk_nope_head_dim`` = ``v_head_dim`` in a checkpoint's
config.json). The cache accounting itself lives in :mod:`lattn.mla.cache`; the layer in :mod:`lattn.mla.layer`.
Example: ``MLAConfig.preset("DeepSeek-V3")`` caches d_c + d_rope = 512 + 64 = 576 values per token per layer.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from torch import Tensor

from ..checks import check_int
from ..rope import YaRN, check_rope_theta, rope_frequencies
from .cache import cache_bytes, kv_elements_per_token

__all__ = ["PRESETS", "MLAConfig"]


@dataclass(frozen=True)
class MLAConfig:
    """Sizes of one MLA layer (and the layer count, for whole-model cache accounting).

    Example: ``MLAConfig.preset("DeepSeek-V3")`` caches d_c + d_rope = 576 values per token per layer.
    """

    dim: int  # d: width of the tokens entering and leaving the layer
    heads: int  # n_h: attention heads
    d_head: int  # the paper's d_h: per-head size of the position-free query/key part and of the value
    d_c: int  # KV compression rank (kv_lora_rank): width of the cached latent c_KV
    d_rope: int  # d_h^R: per-head rotary query part and the one shared rotary key (even: RoPE rotates pairs)
    d_cq: int = 0  # query compression rank (q_lora_rank); 0 = queries straight from the tokens
    layers: int = 1  # transformer layers, only used to account for a whole model's cache
    rope_theta: float = 10000.0  # RoPE base: pair i turns by position · theta^(-2i/d_rope)
    name: str = "custom"  # label for tables and plots
    rope_scaling: YaRN | None = None  # YaRN context extension as DeepSeek's configs set it; None = plain RoPE

    def __post_init__(self) -> None:
        sizes = ("dim", "heads", "d_head", "d_c", "d_rope", "layers")
        check_int(**{f"MLAConfig.{f}": getattr(self, f) for f in sizes})
        check_int(**{"MLAConfig.d_cq (0 = no query compression)": self.d_cq}, minimum=0)
        if self.d_rope % 2:
            raise ValueError(f"MLAConfig.d_rope must be even (RoPE rotates pairs of features), got {self.d_rope}")
        theta = self.rope_theta
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta):
            raise TypeError(f"MLAConfig.rope_theta must be a finite number > 0, got {theta!r} ({type(theta).__name__})")
        if not theta > 0:
            raise ValueError(f"MLAConfig.rope_theta must be > 0, got {theta}")
        if self.rope_scaling is not None:
            if not isinstance(self.rope_scaling, YaRN):
                raise TypeError(
                    f"MLAConfig.rope_scaling must be a lattn.rope.YaRN or None, got {self.rope_scaling!r}: "
                    "read a config.json block with YaRN.from_config(...)"
                )
            check_rope_theta(theta, "MLAConfig.rope_theta")

    @property
    def softmax_scale(self) -> float:
        """1/√(d_head + d_rope) (eq. 18), times YaRN's mscale² when ``rope_scaling`` is set.
        DeepSeek-V2/V3 without YaRN: 192^-0.5 ≈ 0.0722; with their YaRN: ≈ 0.1147 (V2) and ≈ 0.1352 (V3)."""
        scale = (self.d_head + self.d_rope) ** -0.5
        return scale if self.rope_scaling is None else scale * self.rope_scaling.softmax_factor

    def rope_frequencies(self) -> Tensor:
        """The d_rope/2 inverse frequencies of the rotary parts (float64), YaRN-corrected when it is set."""
        return rope_frequencies(self.d_rope, self.rope_theta, self.rope_scaling)

    def without_yarn(self) -> MLAConfig:
        """The same sizes with plain RoPE (``rope_scaling=None``): the model as pre-trained, before the extension."""
        return dataclasses.replace(self, rope_scaling=None)

    @classmethod
    def preset(cls, name: str) -> MLAConfig:
        """One of :data:`PRESETS`: ``"DeepSeek-V2"``, ``"DeepSeek-V2-Lite"``, ``"DeepSeek-V3"``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
        return PRESETS[name]

    def scaled(self, width: float = 0.125, heads: float = 1.0, layers: int | None = None) -> MLAConfig:
        """A smaller copy for CPU experiments that keeps the preset's ratios.

        ``d_head``, ``d_c``, ``d_rope`` and ``d_cq`` are multiplied by ``width``, ``heads`` by ``heads`` and ``dim``
        by both (so n_h·d_head / dim stays); sizes are rounded, ``d_rope`` to an even number ≥ 2. With ``heads=1``
        the cache ratios to MHA stay exactly those of the preset.
        Example: DeepSeek-V2-Lite scaled by 0.125 → dim 256, 16 heads, d_head 16, d_c 64, d_rope 8.
        """
        if not (width > 0 and heads > 0):
            raise ValueError(f"scaled() needs width > 0 and heads > 0, got width={width}, heads={heads}")

        def size(v: int, f: float) -> int:
            return max(1, round(v * f))

        return dataclasses.replace(
            self,
            dim=size(self.dim, width * heads),
            heads=size(self.heads, heads),
            d_head=size(self.d_head, width),
            d_c=size(self.d_c, width),
            d_rope=max(2, 2 * round(self.d_rope * width / 2)),
            d_cq=size(self.d_cq, width) if self.d_cq else 0,
            layers=self.layers if layers is None else layers,
            name=f"{self.name} ×{width:g}" + (f", heads ×{heads:g}" if heads != 1 else ""),
        )

    def kv_elements_per_token(self, kind: str = "MLA", n_groups: int | None = None) -> int:
        """Cached values per token per layer for this layer's sizes laid out as ``kind`` (one of
        :data:`~lattn.mla.cache.KV_KINDS`)."""
        return kv_elements_per_token(
            kind, heads=self.heads, d_head=self.d_head, d_c=self.d_c, d_rope=self.d_rope, n_groups=n_groups
        )

    def kv_cache_bytes(
        self, kind: str = "MLA", *, context: int, batch: int = 1, bits: float = 16, n_groups: int | None = None
    ) -> float:
        """Bytes of the whole model's cache (all ``layers``) at ``context`` tokens, ``batch`` sequences, ``bits``
        per element."""
        per_token = self.kv_elements_per_token(kind, n_groups)
        return cache_bytes(per_token, context=context, batch=batch, layers=self.layers, bits=bits)

    def equivalent_gqa_groups(self) -> float:
        """The GQA group count whose cache equals MLA's: (d_c + d_rope) / (2·d_head). DeepSeek-V2: 576/256 = 2.25."""
        return (self.d_c + self.d_rope) / (2 * self.d_head)


# rope_scaling of the shipped config.json files: 4,096 → 163,840 tokens (max_position_embeddings), beta 32 / 1
# fmt: off
_V2_YARN = YaRN(factor=40, original_max_position_embeddings=4096, beta_fast=32, beta_slow=1, mscale=0.707,
                mscale_all_dim=0.707)
_V3_YARN = YaRN(factor=40, original_max_position_embeddings=4096, beta_fast=32, beta_slow=1, mscale=1.0,
                mscale_all_dim=1.0)
PRESETS: dict[str, MLAConfig] = {
    "DeepSeek-V2": MLAConfig(
        dim=5120, heads=128, d_head=128, d_c=512, d_rope=64, d_cq=1536, layers=60, name="DeepSeek-V2",
        rope_scaling=_V2_YARN,
    ),
    "DeepSeek-V2-Lite": MLAConfig(
        dim=2048, heads=16, d_head=128, d_c=512, d_rope=64, d_cq=0, layers=27, name="DeepSeek-V2-Lite",
        rope_scaling=_V2_YARN,
    ),
    "DeepSeek-V3": MLAConfig(
        dim=7168, heads=128, d_head=128, d_c=512, d_rope=64, d_cq=1536, layers=61, name="DeepSeek-V3",
        rope_scaling=_V3_YARN,
    ),
}
# fmt: on
