"""DeepSeek Multi-head Latent Attention (MLA): like multi-head attention, but the keys and values of every token are
re-created from one small *latent vector* ``c_KV`` (width ``d_c``) — a latent along the feature axis, not latent tokens.

The compute stays O(N²) (every query still scores every earlier key); what shrinks is the KV cache kept while
generating. Three ideas, each a step in :class:`MultiHeadLatentAttention` (equation numbers of DeepSeek-V2,
arXiv:2405.04434; presets from DeepSeek-V3, arXiv:2412.19437):

* **low-rank KV compression** (eq. 9-11): ``c_KV = RMSNorm(W_DKV·h)``; ``k_C = W_UK·c_KV``; ``v_C = W_UV·c_KV``.
* **decoupled RoPE** (eq. 14-17): position enters through a separate rotary part — per-head ``q_R`` and one key
  ``k_R`` shared by all heads — so ``W_UK`` stays free of position and can be absorbed.
* **absorption** (matrix associativity): ``q_C·k_C = (q_C·W_UK)·c_KV``, so the cache holds only ``c_KV`` and ``k_R``
  (``d_c + d_rope`` values per token and layer) and MLA becomes multi-query attention over one 576-wide shared key.

Two modes compute the same function: ``naive`` caches full per-head keys and values (no memory saved), ``absorbed``
(the default) caches only the latent. A prompt goes through torch's fused causal kernel (memory ∝ N, no N×N scores);
a chunk after a cached prefix or a padded batch runs in blocks of :data:`PREFILL_BLOCK` queries.
The presets carry DeepSeek's shipped YaRN ``rope_scaling`` (:mod:`lattn.rope`): it changes the rotary frequencies and
multiplies the softmax scale by mscale²; ``config.without_yarn()`` is the model as pre-trained.
Example: DeepSeek-V2 caches 512 + 64 = 576 values per token per layer, 34,560 over its 60 layers, where multi-head
attention with the same heads would cache 1,966,080.

    >>> mla = MultiHeadLatentAttention(MLAConfig.preset("DeepSeek-V2-Lite").scaled(0.125))
    >>> cache = mla.new_cache(batch=2, max_len=64)
    >>> y = mla(torch.randn(2, 10, mla.config.dim), cache=cache)  # prefill, positions 0..9: (2, 10, dim)
    >>> y = mla(torch.randn(2, 1, mla.config.dim), cache=cache)   # decode at position cache.length = 10: (2, 1, dim)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import fused_attention, merge_heads, scaled_dot_product, split_heads
from .checks import _shape, check_dtype, check_int, check_mask, check_tokens
from .masks import causal_mask, key_padding
from .rope import YaRN, rope_frequencies

__all__ = [
    "KV_KINDS",
    "MODES",
    "PREFILL_BLOCK",
    "PRESETS",
    "MLACache",
    "MLAConfig",
    "MultiHeadLatentAttention",
    "RMSNorm",
    "YaRN",
    "absorption_gap",
    "apply_rope",
    "kv_cache_bytes",
    "kv_elements_per_token",
    "largest_divisor_at_most",
]

MODES = ("naive", "absorbed")
KV_KINDS = ("MHA", "GQA", "MQA", "MLA naive", "MLA")  # the cache layouts the accounting knows
PREFILL_BLOCK = 128  # queries per block when a chunk needs an explicit mask (after a cached prefix, or padding)


def _allowed(past: int, mask: Tensor | None, n: int, device: torch.device) -> Tensor:
    """(B|1, 1, n, past + n) bool: query i (at position past + i) may see key j ≤ past + i, and only real keys
    (``mask`` (B, past + n), True = real token)."""
    allowed = causal_mask(n, start_pos=past, device=device)[None, None]  # (1, 1, n, L)
    return allowed if mask is None else allowed & key_padding(mask)


# --- configuration ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MLAConfig:
    """Sizes of one MLA layer (and the layer count, for whole-model cache accounting).

    Example: ``MLAConfig.preset("DeepSeek-V3")`` caches d_c + d_rope = 576 values per token per layer.
    """

    dim: int  # d: width of the tokens entering and leaving the layer
    heads: int  # n_h: attention heads
    d_h: int  # per-head size of the position-free query/key part and of the value
    d_c: int  # KV compression rank (kv_lora_rank): width of the cached latent c_KV
    d_rope: int  # d_h^R: per-head rotary query part and the one shared rotary key (even: RoPE rotates pairs)
    d_cq: int = 0  # query compression rank (q_lora_rank); 0 = queries straight from the tokens
    layers: int = 1  # transformer layers, only used to account for a whole model's cache
    rope_theta: float = 10000.0  # RoPE base: pair i turns by position · theta^(-2i/d_rope)
    name: str = "custom"  # label for tables and plots
    rope_scaling: YaRN | None = None  # YaRN context extension as DeepSeek's configs set it; None = plain RoPE

    def __post_init__(self) -> None:
        check_int(**{f"MLAConfig.{f}": getattr(self, f) for f in ("dim", "heads", "d_h", "d_c", "d_rope", "layers")})
        check_int(**{"MLAConfig.d_cq (0 = no query compression)": self.d_cq}, minimum=0)
        if self.d_rope % 2:
            raise ValueError(f"MLAConfig.d_rope must be even (RoPE rotates pairs of features), got {self.d_rope}")
        if not self.rope_theta > 0:
            raise ValueError(f"MLAConfig.rope_theta must be > 0, got {self.rope_theta}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, YaRN):
            raise TypeError(f"MLAConfig.rope_scaling must be a lattn.rope.YaRN or None, got {self.rope_scaling!r}")

    @property
    def softmax_scale(self) -> float:
        """1/√(d_h + d_rope) (eq. 18), times YaRN's mscale² when ``rope_scaling`` is set.
        DeepSeek-V2/V3 without YaRN: 192^-0.5 ≈ 0.0722; with their YaRN: ≈ 0.1147 (V2) and ≈ 0.1352 (V3)."""
        scale = (self.d_h + self.d_rope) ** -0.5
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

        ``d_h``, ``d_c``, ``d_rope`` and ``d_cq`` are multiplied by ``width``, ``heads`` by ``heads`` and ``dim`` by
        both (so n_h·d_h / dim stays); sizes are rounded, ``d_rope`` to an even number ≥ 2. With ``heads=1`` the
        cache ratios to MHA stay exactly those of the preset.
        Example: DeepSeek-V2-Lite scaled by 0.125 → dim 256, 16 heads, d_h 16, d_c 64, d_rope 8.
        """
        if not (width > 0 and heads > 0):
            raise ValueError(f"scaled() needs width > 0 and heads > 0, got width={width}, heads={heads}")

        def size(v: int, f: float) -> int:
            return max(1, round(v * f))

        return dataclasses.replace(
            self,
            dim=size(self.dim, width * heads),
            heads=size(self.heads, heads),
            d_h=size(self.d_h, width),
            d_c=size(self.d_c, width),
            d_rope=max(2, 2 * round(self.d_rope * width / 2)),
            d_cq=size(self.d_cq, width) if self.d_cq else 0,
            layers=self.layers if layers is None else layers,
            name=f"{self.name} ×{width:g}" + (f", heads ×{heads:g}" if heads != 1 else ""),
        )

    def kv_elements_per_token(self, kind: str = "MLA", n_groups: int | None = None) -> int:
        """Cached values per token per layer for this layer's sizes laid out as ``kind`` (one of :data:`KV_KINDS`)."""
        return kv_elements_per_token(
            kind, heads=self.heads, d_h=self.d_h, d_c=self.d_c, d_rope=self.d_rope, n_groups=n_groups
        )

    def kv_cache_bytes(
        self, kind: str = "MLA", *, context: int, batch: int = 1, bits: float = 16, n_groups: int | None = None
    ) -> float:
        """Bytes of the whole model's cache (all ``layers``) at ``context`` tokens, ``batch`` sequences, ``bits``
        per element."""
        per_token = self.kv_elements_per_token(kind, n_groups)
        return _cache_bytes(per_token, context=context, batch=batch, layers=self.layers, bits=bits)

    def equivalent_gqa_groups(self) -> float:
        """The GQA group count whose cache equals MLA's: (d_c + d_rope) / (2·d_h). DeepSeek-V2: 576/256 = 2.25."""
        return (self.d_c + self.d_rope) / (2 * self.d_h)


# rope_scaling of the shipped config.json files: 4,096 → 163,840 tokens (max_position_embeddings), beta 32 / 1
# fmt: off
_V2_YARN = YaRN(factor=40, original_max_position_embeddings=4096, beta_fast=32, beta_slow=1, mscale=0.707,
                mscale_all_dim=0.707)
_V3_YARN = YaRN(factor=40, original_max_position_embeddings=4096, beta_fast=32, beta_slow=1, mscale=1.0,
                mscale_all_dim=1.0)
PRESETS: dict[str, MLAConfig] = {
    "DeepSeek-V2": MLAConfig(
        dim=5120, heads=128, d_h=128, d_c=512, d_rope=64, d_cq=1536, layers=60, name="DeepSeek-V2",
        rope_scaling=_V2_YARN,
    ),
    "DeepSeek-V2-Lite": MLAConfig(
        dim=2048, heads=16, d_h=128, d_c=512, d_rope=64, d_cq=0, layers=27, name="DeepSeek-V2-Lite",
        rope_scaling=_V2_YARN,
    ),
    "DeepSeek-V3": MLAConfig(
        dim=7168, heads=128, d_h=128, d_c=512, d_rope=64, d_cq=1536, layers=61, name="DeepSeek-V3",
        rope_scaling=_V3_YARN,
    ),
}
# fmt: on


# --- KV-cache accounting ----------------------------------------------------------------------------------------------
def kv_elements_per_token(
    kind: str, *, heads: int, d_h: int, d_c: int = 0, d_rope: int = 0, n_groups: int | None = None
) -> int:
    """Values cached per token per layer (DeepSeek-V2 Table 1, plus MLA's naive layout).

    * ``MHA``: a key and a value per head, 2·heads·d_h.
    * ``GQA``: heads share keys/values in ``n_groups`` groups, 2·n_groups·d_h.   ``MQA``: one key/value, 2·d_h.
    * ``MLA naive``: full per-head keys (d_h + d_rope) and values (d_h), heads·(2·d_h + d_rope).
    * ``MLA`` (absorbed): the latent and the shared rotary key, d_c + d_rope.
    Example: heads=128, d_h=128, d_c=512, d_rope=64 → MHA 32,768; MLA naive 40,960; MLA 576.
    """
    check_int(heads=heads, d_h=d_h)
    check_int(d_c=d_c, d_rope=d_rope, minimum=0)
    if kind == "MHA":
        return 2 * heads * d_h
    if kind == "GQA":
        if n_groups is None or not 1 <= n_groups <= heads or heads % n_groups:
            raise ValueError(f"GQA needs n_groups dividing heads={heads} (1 ≤ n_groups ≤ heads), got {n_groups}")
        return 2 * n_groups * d_h
    if kind == "MQA":
        return 2 * d_h
    if kind in ("MLA", "MLA naive"):
        if d_c < 1:
            raise ValueError(f"{kind} needs d_c ≥ 1, got {d_c}")
        return d_c + d_rope if kind == "MLA" else heads * (2 * d_h + d_rope)
    raise ValueError(f"unknown cache kind {kind!r}; choose one of {list(KV_KINDS)}")


def _cache_bytes(per_token: int, *, context: int, batch: int, layers: int, bits: float) -> float:
    check_int(context=context, batch=batch, layers=layers, minimum=0)
    if not bits > 0:
        raise ValueError(f"bits per element must be > 0 (e.g. 16 for BF16, 6 for a quantised cache), got {bits}")
    return per_token * context * batch * layers * bits / 8


def kv_cache_bytes(
    kind: str,
    *,
    context: int,
    batch: int = 1,
    layers: int = 1,
    bits: float = 16,
    heads: int,
    d_h: int,
    d_c: int = 0,
    d_rope: int = 0,
    n_groups: int | None = None,
) -> float:
    """Bytes of a KV cache: elements per token per layer × context × batch × layers × bits / 8.

    Example: DeepSeek-V2-Lite's MLA cache at 4,096 tokens in BF16: 576·4096·27·2 B = 127.4 MB.
    """
    per_token = kv_elements_per_token(kind, heads=heads, d_h=d_h, d_c=d_c, d_rope=d_rope, n_groups=n_groups)
    return _cache_bytes(per_token, context=context, batch=batch, layers=layers, bits=bits)


def largest_divisor_at_most(heads: int, n: int) -> int:
    """The largest GQA group count ≤ ``n`` that divides ``heads`` (groups must be equal). Example: (128, 12) → 8."""
    check_int(heads=heads, n=n)
    return max(g for g in range(1, min(n, heads) + 1) if heads % g == 0)


# --- building blocks -------------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """x / rms(x) · weight over the last axis (computed in float32 for half inputs), as on c_KV and c_Q."""

    def __init__(self, width: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def apply_rope(
    x: Tensor, positions: Tensor, theta: float = 10000.0, *, inv_freq: Tensor | None = None, magnitude: float = 1.0
) -> Tensor:
    """Rotary position embedding: rotate feature pair (i, i + d/2) of the token at position p by p·theta^(-2i/d).

    x: (…, N, d) with d even; positions: (N,) integer positions. Returns (…, N, d). Angles are computed in float64,
    so a rotation is exact to the working precision. Property: ``rope(q, i)·rope(k, j)`` depends only on j − i.
    ``inv_freq`` (d/2,) replaces theta^(-2i/d) (e.g. YaRN's, :func:`lattn.rope.rope_frequencies`); ``magnitude``
    multiplies cos and sin (YaRN's rope_magnitude). Pairs are (i, i + d/2); DeepSeek's code pairs (2i, 2i + 1):
    see :func:`lattn.rope.interleaved_to_halves`.
    """
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"apply_rope needs an even last dimension, got shape {_shape(x)}")
    if positions.shape != (x.shape[-2],):
        raise ValueError(f"positions must have shape (N,) = ({x.shape[-2]},) to match x {_shape(x)}")
    if inv_freq is None:
        inv_freq = theta ** -(torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d)  # (d/2,)
    elif inv_freq.shape != (d // 2,):
        raise ValueError(f"inv_freq must have shape (d/2,) = ({d // 2},), got {tuple(inv_freq.shape)}")
    angles = positions.to(torch.float64)[:, None] * inv_freq.to(device=x.device, dtype=torch.float64)  # (N, d/2)
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    cos, sin = angles.cos(), angles.sin()
    if magnitude != 1.0:
        cos, sin = cos * magnitude, sin * magnitude
    cos, sin = cos.to(work), sin.to(work)
    x1, x2 = x.to(work).chunk(2, dim=-1)  # (…, N, d/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


# --- the KV cache -----------------------------------------------------------------------------------------------------
class MLACache:
    """Preallocated per-layer KV cache.

    * ``absorbed``: ``kv`` (B, L, d_c + d_rope) — the latent c_KV in the first d_c columns and the shared rotary key
      k_R in the last d_rope: one shared key per token, whose first d_c columns also serve as the value.
    * ``naive``: ``k`` (B, H, L, d_h + d_rope) and ``v`` (B, H, L, d_h) — full per-head keys and values, laid out
      as multi-head attention caches usually are.

    ``length`` counts the tokens written so far; ``nbytes`` is the memory really allocated.
    Make one with :meth:`MultiHeadLatentAttention.new_cache`.
    """

    def __init__(self, mode: str, buffers: dict[str, Tensor], d_rope: int) -> None:
        self.mode = mode
        self.buffers = buffers
        self.d_rope = d_rope  # width of the rotary key, to split the absorbed buffer
        self.seq_axis = 1 if mode == "absorbed" else 2  # the axis of the buffers that runs over positions
        self.length = 0

    @property
    def batch(self) -> int:
        return next(iter(self.buffers.values())).shape[0]

    @property
    def max_len(self) -> int:
        return next(iter(self.buffers.values())).shape[self.seq_axis]

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.buffers.values())).dtype

    @property
    def elements_per_token(self) -> int:
        """Values held per token (per sequence): d_c + d_rope absorbed, H·(2·d_h + d_rope) naive."""
        return sum(b.numel() for b in self.buffers.values()) // (self.batch * self.max_len)

    @property
    def nbytes(self) -> int:
        """Bytes allocated by the buffers (all max_len slots)."""
        return sum(b.nbytes for b in self.buffers.values())

    @property
    def c_kv(self) -> Tensor:
        """The cached latents (B, length, d_c) (absorbed mode only)."""
        return self._filled("kv")[..., : -self.d_rope]

    @property
    def k_rope(self) -> Tensor:
        """The cached shared rotary keys (B, length, d_rope) (absorbed mode only)."""
        return self._filled("kv")[..., -self.d_rope :]

    def _filled(self, name: str) -> Tensor:
        if name not in self.buffers:
            raise ValueError(f"a {self.mode}-mode cache holds {list(self.buffers)}, not {name!r}")
        return self.buffers[name].narrow(self.seq_axis, 0, self.length)

    def check(self, x: Tensor, start_pos: int, mode: str) -> None:
        """Raise a clear error unless ``x`` (B, N, D) can be written at ``start_pos``."""
        B, N = x.shape[:2]
        if mode != self.mode:
            raise ValueError(f"this cache was made for mode={self.mode!r} but the module runs mode={mode!r}")
        if B != self.batch:
            raise ValueError(f"x has batch {B} but the cache was allocated for batch {self.batch}")
        if x.dtype != self.dtype:
            raise TypeError(f"x has dtype {x.dtype} but the cache holds {self.dtype}; make both the same")
        if start_pos > self.length:
            raise ValueError(
                f"start_pos={start_pos} would leave a gap: the cache holds {self.length} tokens "
                f"(write at start_pos ≤ {self.length})"
            )
        if start_pos + N > self.max_len:
            raise ValueError(
                f"cache overflow: writing {N} tokens at start_pos={start_pos} needs {start_pos + N} slots, "
                f"the cache has max_len={self.max_len}"
            )

    def write(self, start_pos: int, **parts: Tensor) -> list[Tensor]:
        """Store each part (positions on ``seq_axis``, n of them) at positions [start_pos, start_pos + n); return
        every buffer's filled prefix (start_pos + n positions), in the order given. Writing before ``length``
        overwrites (e.g. to decode again from an earlier position)."""
        n = next(iter(parts.values())).shape[self.seq_axis]
        views = []
        for name, part in parts.items():
            buf = self.buffers[name]
            buf.narrow(self.seq_axis, start_pos, n).copy_(part)
            views.append(buf.narrow(self.seq_axis, 0, start_pos + n))
        self.length = start_pos + n
        return views


# --- the module -------------------------------------------------------------------------------------------------------
class MultiHeadLatentAttention(nn.Module):
    """Causal multi-head latent attention (DeepSeek-V2/V3) with decoupled RoPE and a KV cache.

    ``forward(x (B, N, dim), *, mask=None, causal=False, return_maps=False, cache=None, start_pos=None)
    → (B, N, dim)``: the N tokens sit at positions start_pos … start_pos + N − 1 and each sees itself and the
    tokens before it. MLA is always causal (a decoder layer); ``causal`` is accepted only for the package's uniform
    calling convention and changes nothing.

    * ``cache`` (from :meth:`new_cache`): decoding. ``start_pos`` defaults to ``cache.length`` (prefill, then one
      token per call, needs no bookkeeping); the chunk also attends to the start_pos tokens cached before it. A
      ``start_pos`` below ``cache.length`` rewinds (later positions are overwritten); above it is a ValueError.
    * without a cache, ``start_pos`` (default 0) only shifts the rotary positions, which changes nothing but
      rounding (RoPE scores depend on offsets only).
    * ``mask`` (B, N) bool, True = a real token (no cache): padded tokens take no part at all (they are zeroed
      before any product) and their outputs are zero. A NaN in a real token does spread to later tokens.
    * ``return_maps=True`` takes the teaching path (explicit float32 softmax) and also returns the weights
      (B, H, N, start_pos + N) (without a cache: (B, H, N, N)).

    ``mode`` (settable): ``"absorbed"`` (default, caches c_KV and k_R) or ``"naive"`` (caches per-head K and V).
    Both modes use the same weights and give the same output.
    """

    is_causal = True  # always causal; causal=True is accepted and changes nothing
    returns_tokens = True
    stages = ()  # no latent tokens: MLA's latent runs along the feature axis (one c_KV per token)

    def __init__(self, config: MLAConfig, *, mode: str = "absorbed") -> None:
        super().__init__()
        if not isinstance(config, MLAConfig):
            raise TypeError(f"config must be an MLAConfig, got {type(config).__name__}")
        self.config = c = config
        self.mode = mode
        H = c.heads
        # queries (eq. 12-14): optionally through a compressed c_Q; q_C is position-free, q_R gets RoPE
        self.w_dq = nn.Linear(c.dim, c.d_cq, bias=False) if c.d_cq else None
        self.q_norm = RMSNorm(c.d_cq) if c.d_cq else None
        q_in = c.d_cq or c.dim
        self.w_uq = nn.Linear(q_in, H * c.d_h, bias=False)  # W_UQ (W_Q without query compression)
        self.w_qr = nn.Linear(q_in, H * c.d_rope, bias=False)  # W_QR
        # keys and values (eq. 9-11, 15): one latent per token, one shared rotary key per token
        self.w_dkv = nn.Linear(c.dim, c.d_c, bias=False)  # W_DKV
        self.kv_norm = RMSNorm(c.d_c)
        self.w_kr = nn.Linear(c.dim, c.d_rope, bias=False)  # W_KR
        self.w_uk = nn.Linear(c.d_c, H * c.d_h, bias=False)  # W_UK
        self.w_uv = nn.Linear(c.d_c, H * c.d_h, bias=False)  # W_UV
        self.w_o = nn.Linear(H * c.d_h, c.dim, bias=False)  # W_O (eq. 19)
        self._inv_freq: Tensor | None = None  # YaRN's rotary frequencies, computed on first use

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {value!r}")
        self._mode = value

    # --- caches ----------------------------------------------------------------------------------------------------
    def new_cache(
        self, batch: int, max_len: int, *, dtype: torch.dtype | None = None, device: torch.device | None = None
    ) -> MLACache:
        """An empty cache for ``batch`` sequences of up to ``max_len`` tokens, laid out for the current mode
        (dtype/device default to the module's weights)."""
        check_int(batch=batch, max_len=max_len)
        w = self.w_o.weight
        opts = {"dtype": dtype or w.dtype, "device": device or w.device}
        shapes = self.cache_shapes(batch, max_len)
        return MLACache(
            self.mode, {name: torch.zeros(shape, **opts) for name, shape in shapes.items()}, self.config.d_rope
        )

    def cache_shapes(self, batch: int, max_len: int) -> dict[str, tuple[int, ...]]:
        """The buffer shapes of a cache for the current mode: {"kv": (B, L, d_c + d_rope)} when absorbed,
        {"k": (B, H, L, d_h + d_rope), "v": (B, H, L, d_h)} when naive."""
        c = self.config
        if self.mode == "absorbed":
            return {"kv": (batch, max_len, c.d_c + c.d_rope)}
        return {"k": (batch, c.heads, max_len, c.d_h + c.d_rope), "v": (batch, c.heads, max_len, c.d_h)}

    # --- the steps -------------------------------------------------------------------------------------------------
    def rope(self, t: Tensor, positions: Tensor) -> Tensor:
        """RoPE on rotary parts t (…, N, d_rope) at ``positions`` (N,), with the config's YaRN scaling if any."""
        c = self.config
        if c.rope_scaling is None:
            return apply_rope(t, positions, c.rope_theta)
        if self._inv_freq is None or self._inv_freq.device != t.device:
            self._inv_freq = c.rope_frequencies().to(t.device)  # float64, computed once per device
        return apply_rope(t, positions, inv_freq=self._inv_freq, magnitude=c.rope_scaling.rope_magnitude)

    def queries(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """q_C (B, H, N, d_h) and the rotated q_R (B, H, N, d_rope) (eq. 12-14)."""
        H = self.config.heads
        h = self.q_norm(self.w_dq(x)) if self.w_dq is not None else x  # c_Q (B, N, d_cq) or h (B, N, dim)
        q_c = split_heads(self.w_uq(h), H)  # (B, H, N, d_h)
        q_r = self.rope(split_heads(self.w_qr(h), H), positions)  # (B, H, N, d_rope)
        return q_c, q_r

    def latents(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """The per-token latent c_KV (B, N, d_c) and the shared rotated key k_R (B, N, d_rope) (eq. 9, 15)."""
        c_kv = self.kv_norm(self.w_dkv(x))  # (B, N, d_c)
        k_r = self.rope(self.w_kr(x), positions)  # (B, N, d_rope)
        return c_kv, k_r

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        causal: bool = False,
        return_maps: bool = False,
        cache: MLACache | None = None,
        start_pos: int | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """x (B, N, dim) at positions start_pos … → (B, N, dim) (and the weights with ``return_maps``)."""
        start_pos = self._check(x, mask, cache, start_pos)
        N = x.shape[1]
        if mask is not None:
            x = x.masked_fill(~mask[..., None], 0)  # padded tokens reach no product, whatever they hold (even NaN)
        positions = torch.arange(start_pos, start_pos + N, device=x.device)  # (N,)
        q_c, q_r = self.queries(x, positions)  # (B, H, N, d_h), (B, H, N, d_rope)
        c_kv, k_r = self.latents(x, positions)  # (B, N, d_c), (B, N, d_rope)
        past = start_pos if cache is not None else 0  # keys before the chunk that the chunk may see
        attend_heads = self._attend_naive if self.mode == "naive" else self._attend_absorbed
        read, maps = attend_heads(q_c, q_r, c_kv, k_r, cache, start_pos, past, mask, return_maps)  # (B, H, N, d_h)
        out = self.w_o(merge_heads(read))  # (B, N, dim)  eq. 19
        if mask is not None:
            out = out.masked_fill(~mask[..., None], 0)  # padded positions output zeros
        return (out, maps) if return_maps else out

    def _attend_naive(
        self,
        q_c: Tensor,
        q_r: Tensor,
        c_kv: Tensor,
        k_r: Tensor,
        cache: MLACache | None,
        start_pos: int,
        past: int,
        mask: Tensor | None,
        return_maps: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Up-project every token's key and value (eq. 10-11, 16-17) and run ordinary multi-head attention."""
        c = self.config
        B, N, _ = c_kv.shape
        k_c = split_heads(self.w_uk(c_kv), c.heads)  # (B, H, N, d_h)
        v = split_heads(self.w_uv(c_kv), c.heads)  # (B, H, N, d_h)
        k_r = k_r[:, None].expand(B, c.heads, N, c.d_rope)  # one rotary key copied into every head
        k = torch.cat([k_c, k_r], dim=-1)  # (B, H, N, d_h + d_rope)
        if cache is not None:
            k, v = cache.write(start_pos, k=k, v=v)  # (B, H, L, ·)
        q = torch.cat([q_c, q_r], dim=-1)  # (B, H, N, d_h + d_rope)
        if return_maps:  # the teaching path: explicit mask and weights, scale 1/√(d_h + d_rope) (eq. 18)
            return scaled_dot_product(q, k, v, _allowed(past, mask, N, q.device), scale=c.softmax_scale)
        return self._causal(q, k, v, past, mask), None  # (B, H, N, d_h)

    def _attend_absorbed(
        self,
        q_c: Tensor,
        q_r: Tensor,
        c_kv: Tensor,
        k_r: Tensor,
        cache: MLACache | None,
        start_pos: int,
        past: int,
        mask: Tensor | None,
        return_maps: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Fold W_UK into the queries and W_UV into the output; attend over the cached latents directly:
        multi-query attention with one shared (d_c + d_rope)-wide key and d_c-wide value per token.

        Its own core, not :func:`~lattn.attention.attend`: the scores run over d_c + d_rope features but scale by
        1/√(d_h + d_rope), and one key serves all heads (folded into the query axis, so the cache is read once).
        """
        c = self.config
        B, H, N, _ = q_c.shape
        w_uk = self.w_uk.weight.view(H, c.d_h, c.d_c)  # (H, d_h, d_c)
        w_uv = self.w_uv.weight.view(H, c.d_h, c.d_c)  # (H, d_h, d_c)
        q_lat = torch.einsum("bhnd,hdc->bhnc", q_c, w_uk)  # (B, H, N, d_c): q_C·W_UK, the absorbed query
        kv = torch.cat([c_kv, k_r], dim=-1)  # (B, N, d_c + d_rope)
        if cache is not None:
            (kv,) = cache.write(start_pos, kv=kv)  # (B, L, d_c + d_rope)
        q = torch.cat([q_lat, q_r], dim=-1)  # (B, H, N, d_c + d_rope)
        key, value = kv[:, None], kv[:, None, :, : c.d_c]  # (B, 1, L, d_c + d_rope), (B, 1, L, d_c)
        maps = None
        if return_maps:
            allowed = _allowed(past, mask, N, q.device)
            o_lat, maps = scaled_dot_product(q, key, value, allowed, scale=c.softmax_scale)  # (B, H, N, d_c)
        else:
            o_lat = self._causal(q, key, value, past, mask)  # (B, H, N, d_c)
        return torch.einsum("bhnc,hdc->bhnd", o_lat, w_uv), maps  # (B, H, N, d_h): W_UV applied after attention

    def _causal(self, q: Tensor, k: Tensor, v: Tensor, past: int, mask: Tensor | None) -> Tensor:
        """Fast path for queries at positions past … past + n − 1 that see every key j ≤ their position (and, with a
        padding ``mask`` (B, L), only real keys): q (B, H, n, e), k (B, h, L, e), v (B, h, L, dv) with h = H or 1 (one
        key for all heads) → (B, H, n, dv). Memory grows like O(L), never O(n·L):

        * one new token (decode): it sees the whole cache, no mask (:meth:`_attention`);
        * a causal block from position 0 without padding (a prompt, a training sequence): torch's fused kernel with
          ``is_causal``, no mask is built at all;
        * otherwise (a chunk after a cached prefix, padding): blocks of :data:`PREFILL_BLOCK` queries, each with
          its own (block × keys-it-may-see) mask; a block never reads the keys after its last query.
        """
        B, H, n, e = q.shape
        dv = v.shape[-1]
        if n == 1 and mask is None:
            return self._attention(q, k, v, None)
        # NOTE: torch's memory-efficient kernels need values as wide as the keys; with narrower values it falls back
        # to materialising the n×L scores. Zero columns added to v give zero output columns, dropped at the end.
        v = F.pad(v, (0, e - dv)) if dv < e else v  # (B, h, L, e)
        if past == 0 and mask is None:
            k, v = k.expand(B, H, *k.shape[2:]), v.expand(B, H, *v.shape[2:])  # views: no copy per head
            return fused_attention(q, k, v, causal=True, scale=self.config.softmax_scale)[..., :dv]
        out = q.new_empty(B, H, n, dv)
        for s in range(0, n, PREFILL_BLOCK):
            t = min(n, s + PREFILL_BLOCK)  # queries s … t − 1, at positions past + s …, see keys 0 … past + t − 1
            allowed = _allowed(past + s, mask[:, : past + t] if mask is not None else None, t - s, q.device)
            read = self._attention(q[:, :, s:t], k[:, :, : past + t], v[:, :, : past + t], allowed)
            out[:, :, s:t] = read[..., :dv]
        return out

    def _attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """softmax(q·kᵀ/√(d_h + d_rope))·v: q (B, H, n, e), k (B, h, L, e), v (B, h, L, dv) with h = H or 1 → (B, H, n, dv).

        With a mask (a block of queries): torch's fused kernel; one key for all heads (h = 1) is folded into the
        query axis, so the cache is read once for all heads. A single new token (decode, mask None): two matmuls and
        a softmax, the same code for both modes (as in DeepSeek's reference), so a benchmark compares the cache
        layouts and not two different kernels; it keeps float64 exact and runs the softmax of half inputs in float32.
        """
        scale = self.config.softmax_scale
        if mask is not None:
            B, H, n, e = q.shape
            if k.shape[1] == 1 and H > 1:  # fold the heads into the query axis: row h·n + i
                L = k.shape[2]
                folded = mask.expand(B, H, n, L).reshape(B, 1, H * n, L)
                return fused_attention(q.reshape(B, 1, H * n, e), k, v, folded, scale=scale).view(B, H, n, -1)
            return fused_attention(q, k, v, mask, scale=scale)
        scores = (q @ k.transpose(-1, -2)) * scale  # (B, H, n, L)
        weights = scores.softmax(-1, dtype=torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype)
        return weights.to(v.dtype) @ v  # (B, H, n, dv)

    def _check(self, x: Tensor, mask: Tensor | None, cache: MLACache | None, start_pos: int | None) -> int:
        """Raise a clear error for bad input; return the start position to use (default: the cache's length)."""
        check_tokens(x, self.config.dim)
        if x.shape[1] < 1:
            raise ValueError(f"x must hold at least one token, got shape {_shape(x)}")
        check_dtype(x, self)
        check_mask(mask, x)
        if cache is not None and not isinstance(cache, MLACache):
            raise TypeError(f"cache must be an MLACache (see new_cache), got {type(cache).__name__}")
        if start_pos is None:
            start_pos = 0 if cache is None else cache.length
        check_int(start_pos=start_pos, minimum=0)
        if cache is not None:
            if mask is not None:
                raise ValueError("a cache is for decoding whole sequences: pass no mask with it")
            cache.check(x, start_pos, self.mode)
            expected = self.cache_shapes(cache.batch, cache.max_len)
            got = {k: tuple(b.shape) for k, b in cache.buffers.items()}
            if got != expected:
                raise ValueError(f"cache buffers {got} do not fit this module's config (expected {expected})")
        return start_pos


# --- why RoPE is decoupled --------------------------------------------------------------------------------------------
def absorption_gap(rope: str, *, d_h: int = 8, d_c: int = 16, n: int = 6, seed: int = 0) -> float:
    """Largest |exact − absorbed| attention score for one head, in float64, when position enters in different ways.

    Exact scores use up-projected keys k_j = W_UK·c_j; the absorbed shortcut folds W_UK into the query once and
    scores the cached latents directly: (q_i·W_UK)·c_j.

    * ``"none"``: no RoPE → associativity makes the two equal (gap ~1e-15).
    * ``"on_key"``: RoPE on the up-projected key, k_j = R_j·W_UK·c_j, and on the query → the rotation R_j of the
      key position sits between W_UK and c_j, so no single absorbed query works: the gap is large.
    * ``"decoupled"``: position-free q_C·k_C plus a separate rotary part q_R·k_R (k_R cached as is) → equal again.
    """
    if rope not in ("none", "on_key", "decoupled"):
        raise ValueError(f"rope must be 'none', 'on_key' or 'decoupled', got {rope!r}")
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d_h, generator=g, dtype=torch.float64)  # query parts q_C (n, d_h)
    c = torch.randn(n, d_c, generator=g, dtype=torch.float64)  # cached latents c_KV (n, d_c)
    w_uk = torch.randn(d_h, d_c, generator=g, dtype=torch.float64) / math.sqrt(d_c)  # W_UK (d_h, d_c)
    pos = torch.arange(n)
    k = c @ w_uk.T  # (n, d_h) the up-projected keys
    if rope == "on_key":
        exact = apply_rope(q, pos) @ apply_rope(k, pos).T  # (n, n)
        absorbed = (apply_rope(q, pos) @ w_uk) @ c.T  # the best a cache of c alone allows
    else:
        exact = q @ k.T  # (n, n)
        absorbed = (q @ w_uk) @ c.T  # (n, n): q_lat·c_KV
        if rope == "decoupled":  # q = [q_C; q_R], k = [k_C; k_R] (eq. 16-17); k_R is cached, q_R is the query's own
            q_r = apply_rope(torch.randn(n, 4, generator=g, dtype=torch.float64), pos)  # (n, d_rope)
            k_r = apply_rope(torch.randn(n, 4, generator=g, dtype=torch.float64), pos)  # (n, d_rope)
            exact = torch.cat([q, q_r], -1) @ torch.cat([k, k_r], -1).T  # (n, n)
            absorbed = absorbed + q_r @ k_r.T
    return float((exact - absorbed).abs().max())
