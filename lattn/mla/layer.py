"""The MLA layer, :class:`MultiHeadLatentAttention`: DeepSeek-V2/V3's attention with decoupled RoPE and a KV cache,
in three modes that compute the same function.

Like multi-head attention, but the keys and values of every token are re-created from one small latent vector
c_KV (eq. 9-11), and position enters through a separate rotary part (eq. 12-17). Two computations of the same
scores exist (matrix associativity, ``q_C·(W_UK·c) = (q_C·W_UK)·c``):

* **expanded** (``naive``): up-project every token's latent into per-head keys and values, then ordinary
  multi-head attention — few multiply-adds per key (d_head + d_rope), many bytes per key (H copies);
* **absorbed**: fold W_UK into the query and W_UV after the read; every head attends over the shared latent rows
  [c_KV; k_R] — multi-query attention, few bytes per key (d_c + d_rope) but more multiply-adds (H·(d_c + d_rope)).

``mode="auto"`` (the default) does what inference engines do: it caches the latent (d_c + d_rope per token) and
picks the computation by the call's shape — a prompt or a chunk of more than one token is expanded (prefill is
bound by arithmetic), a single decoding token is absorbed (decode is bound by reading the cache).
``mode="naive"`` (caches per-head keys and values) and ``mode="absorbed"`` (absorbs every call) are for teaching and
comparison. The module's own core (:meth:`MultiHeadLatentAttention.attend`) and not
:class:`lattn.attention.Attention`: its scores scale by 1/√(d_head + d_rope) whatever width they run over, and one
key can serve all heads. The config lives in :mod:`lattn.mla.config`, the cache in :mod:`lattn.mla.cache`.

    >>> mla = MultiHeadLatentAttention(MLAConfig.preset("DeepSeek-V2-Lite").scaled(0.125))
    >>> cache = mla.new_cache(batch=2, max_len=64)
    >>> y = mla(torch.randn(2, 10, mla.config.dim), cache=cache)  # prefill, positions 0..9, expanded: (2, 10, dim)
    >>> y = mla(torch.randn(2, 1, mla.config.dim), cache=cache)   # decode at position 10, absorbed: (2, 1, dim)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import fused_attention, merge_heads, scaled_dot_product, split_heads
from ..checks import _shape, check_dtype, check_int, check_mask, check_tokens
from ..masks import causal_mask, key_padding, masked_softmax, upcast
from ..norm import RMSNorm
from ..rope import apply_rope
from .cache import LAYOUTS, MLACache
from .config import MLAConfig

__all__ = ["MODES", "PREFILL_BLOCK", "MultiHeadLatentAttention", "allowed_keys"]

MODES = ("auto", "naive", "absorbed")  # auto: latent cache, expanded prefill, absorbed decode (the default)
PREFILL_BLOCK = 128  # queries per block when a chunk needs an explicit mask (after a cached prefix, or padding)


def allowed_keys(past: int, mask: Tensor | None, n: int, device: torch.device) -> Tensor:
    """(B|1, 1, n, past + n) bool: query i (at position past + i) may see key j ≤ past + i, and only real keys
    (``mask`` (B, past + n), True = real token)."""
    allowed = causal_mask(n, start_pos=past, device=device)[None, None]  # (1, 1, n, L)
    return allowed if mask is None else allowed & key_padding(mask)


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
    * ``return_maps=True`` takes the teaching path (explicit softmax, float32 for half inputs) and also returns the
      weights (B, H, N, start_pos + N) (without a cache: (B, H, N, N)).

    ``mode`` (settable, one of :data:`MODES`): ``"auto"`` (default: caches c_KV and k_R, expands a prompt or chunk,
    absorbs a single token), ``"naive"`` (caches per-head K and V, always expands) or ``"absorbed"`` (caches c_KV and
    k_R, always absorbs). All three use the same weights and give the same output; :meth:`path` says which
    computation a call takes.
    """

    is_causal = True  # always causal; causal=True is accepted and changes nothing
    returns_tokens = True
    stages = ()  # no latent tokens: MLA's latent runs along the feature axis (one c_KV per token)

    def __init__(self, config: MLAConfig, *, mode: str = "auto") -> None:
        super().__init__()
        if not isinstance(config, MLAConfig):
            raise TypeError(f"config must be an MLAConfig, got {type(config).__name__}")
        self.config = c = config
        self.mode = mode
        H = c.heads
        # queries (eq. 12-14): optionally through a compressed c_Q; q_C is position-free, q_R gets RoPE
        self.w_dq = nn.Linear(c.dim, c.d_cq, bias=False) if c.d_cq else None  # W_DQ
        self.q_norm = RMSNorm(c.d_cq) if c.d_cq else None
        q_in = c.d_cq or c.dim
        self.w_uq = nn.Linear(q_in, H * c.d_head, bias=False)  # W_UQ (W_Q without query compression)
        self.w_qr = nn.Linear(q_in, H * c.d_rope, bias=False)  # W_QR
        # keys and values (eq. 9-11, 15): one latent per token, one shared rotary key per token
        self.w_dkv = nn.Linear(c.dim, c.d_c, bias=False)  # W_DKV
        self.kv_norm = RMSNorm(c.d_c)
        self.w_kr = nn.Linear(c.dim, c.d_rope, bias=False)  # W_KR
        self.w_uk = nn.Linear(c.d_c, H * c.d_head, bias=False)  # W_UK
        self.w_uv = nn.Linear(c.d_c, H * c.d_head, bias=False)  # W_UV
        self.w_o = nn.Linear(H * c.d_head, c.dim, bias=False)  # W_O (eq. 19)
        self._inv_freq: Tensor | None = None  # YaRN's rotary frequencies, computed on first use

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(
                f"mode must be one of {MODES}, got {value!r} (auto: the default, expanded prefill and absorbed decode)"
            )
        self._mode = value

    def path(self, n: int) -> str:
        """The computation a call of ``n`` tokens takes: ``"naive"`` (expanded) or ``"absorbed"``."""
        if self.mode == "auto":
            return "naive" if n > 1 else "absorbed"
        return self.mode

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
        buffers = {name: torch.zeros(shape, **opts) for name, shape in shapes.items()}
        return MLACache(self.mode, buffers, self.config.d_rope)

    def cache_shapes(self, batch: int, max_len: int) -> dict[str, tuple[int, ...]]:
        """The buffer shapes of a cache for the current mode: {"kv": (B, L, d_c + d_rope)} (latent layout: auto,
        absorbed), {"k": (B, H, L, d_head + d_rope), "v": (B, H, L, d_head)} (per-head layout: naive)."""
        c = self.config
        if LAYOUTS[self.mode] == "latent":
            return {"kv": (batch, max_len, c.d_c + c.d_rope)}
        return {"k": (batch, c.heads, max_len, c.d_head + c.d_rope), "v": (batch, c.heads, max_len, c.d_head)}

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
        """q_C (B, H, N, d_head) and the rotated q_R (B, H, N, d_rope) (eq. 12-14)."""
        H = self.config.heads
        h = self.q_norm(self.w_dq(x)) if self.w_dq is not None else x  # c_Q (B, N, d_cq) or h (B, N, dim)
        q_c = split_heads(self.w_uq(h), H)  # (B, H, N, d_head)
        q_r = self.rope(split_heads(self.w_qr(h), H), positions)  # (B, H, N, d_rope)
        return q_c, q_r

    def latents(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """The per-token latent c_KV (B, N, d_c) and the shared rotated key k_R (B, N, d_rope) (eq. 9, 15)."""
        c_kv = self.kv_norm(self.w_dkv(x))  # (B, N, d_c)
        k_r = self.rope(self.w_kr(x), positions)  # (B, N, d_rope)
        return c_kv, k_r

    def expand(self, c_kv: Tensor, k_r: Tensor) -> tuple[Tensor, Tensor]:
        """Per-head keys and values from latents c_KV (B, L, d_c) and rotated keys k_R (B, L, d_rope) (eq. 10-11,
        16-17): k = [W_UK·c_KV; k_R] (B, H, L, d_head + d_rope), the one rotary key copied into every head, and
        v = W_UV·c_KV (B, H, L, d_head)."""
        c = self.config
        B, L, _ = c_kv.shape
        k_c = split_heads(self.w_uk(c_kv), c.heads)  # (B, H, L, d_head)
        v = split_heads(self.w_uv(c_kv), c.heads)  # (B, H, L, d_head)
        return torch.cat([k_c, k_r[:, None].expand(B, c.heads, L, c.d_rope)], dim=-1), v

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
        c, N = self.config, x.shape[1]
        if mask is not None:
            x = x.masked_fill(~mask[..., None], 0)  # padded tokens reach no product, whatever they hold (even NaN)
        positions = torch.arange(start_pos, start_pos + N, device=x.device)  # (N,)
        q_c, q_r = self.queries(x, positions)  # (B, H, N, d_head), (B, H, N, d_rope)
        c_kv, k_r = self.latents(x, positions)  # (B, N, d_c), (B, N, d_rope)
        past = start_pos if cache is not None else 0  # keys before the chunk that the chunk may see
        kv = None  # the latent rows [c_KV; k_R] of every visible token, once they are concatenated
        if cache is not None and LAYOUTS[self.mode] == "latent":  # [c_KV; k_R] is what is cached
            (kv,) = cache.write(start_pos, kv=torch.cat([c_kv, k_r], dim=-1))  # (B, L, d_c + d_rope)
        if self.path(N) == "naive":  # per-head keys and values, [q_C; q_R]·[k_C; k_R] per head (eq. 16-18)
            if kv is not None:  # auto with a cache: expand every visible token, the cached ones included
                c_kv, k_r = kv.split([c.d_c, c.d_rope], dim=-1)  # (B, L, d_c), (B, L, d_rope)
            k, v = self.expand(c_kv, k_r)  # (B, H, L, d_head + d_rope), (B, H, L, d_head); auto: for this call only
            if cache is not None and self.mode == "naive":  # the per-head layout caches them
                k, v = cache.write(start_pos, k=k, v=v)  # (B, H, L, ·)
            read, maps = self.attend(torch.cat([q_c, q_r], dim=-1), k, v, past=past, mask=mask, maps=return_maps)
        else:  # W_UK folded into the query, W_UV applied after the read: one shared key and value per token
            kv = torch.cat([c_kv, k_r], dim=-1) if kv is None else kv  # (B, L, d_c + d_rope)
            w_uk = self.w_uk.weight.view(c.heads, c.d_head, c.d_c)  # (H, d_head, d_c)
            q_lat = torch.einsum("bhnd,hdc->bhnc", q_c, w_uk)  # (B, H, N, d_c): q_C·W_UK, the absorbed query
            key, value = kv[:, None], kv[:, None, :, : c.d_c]  # (B, 1, L, d_c + d_rope), (B, 1, L, d_c)
            o_lat, maps = self.attend(torch.cat([q_lat, q_r], dim=-1), key, value, past=past, mask=mask,
                                      maps=return_maps)  # fmt: skip  # (B, H, N, d_c): averaged latents
            w_uv = self.w_uv.weight.view(c.heads, c.d_head, c.d_c)  # (H, d_head, d_c)
            read = torch.einsum("bhnc,hdc->bhnd", o_lat, w_uv)  # (B, H, N, d_head)
        out = self.w_o(merge_heads(read))  # (B, N, dim)  eq. 19
        if mask is not None:
            out = out.masked_fill(~mask[..., None], 0)  # padded positions output zeros
        return (out, maps) if return_maps else out

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, *, past: int, mask: Tensor | None, maps: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """softmax(q·kᵀ/√(d_head + d_rope))·v for n queries at positions past … past + n − 1, each seeing the keys
        j ≤ its position (and, with a padding ``mask`` (B, L), only real keys): q (B, H, n, e); k (B, h, L, e) and
        v (B, h, L, dv) with h = H (per-head keys) or 1 (one key shared by all heads) → (B, H, n, dv), weights.

        The one dispatch of every call, by its shape (memory grows like L, never n·L, except with ``maps``):

        * ``maps=True`` (the teaching path): the explicit mask and softmax, weights returned (B, H, n, L);
        * one new token without padding (decode): it sees the whole cache, two matmuls and a softmax, no mask;
        * a causal block from position 0 without padding (a prompt, a training sequence): torch's fused kernel with
          ``is_causal``, no mask is built at all;
        * otherwise (a chunk after a cached prefix, padding): blocks of :data:`PREFILL_BLOCK` queries, each with its
          own (block × keys-it-may-see) mask through the fused kernel; one shared key is folded into the query axis,
          so the cache is read once for all heads.
        """
        B, H, n, e = q.shape
        scale = self.config.softmax_scale
        if maps:
            return scaled_dot_product(q, k, v, allowed_keys(past, mask, n, q.device), scale=scale)
        if n == 1 and mask is None:
            weights = masked_softmax((q @ k.transpose(-1, -2)) * scale)  # (B, H, 1, L), float32 for half inputs
            return (weights @ upcast(v)).to(q.dtype), None  # (B, H, 1, dv)
        dv = v.shape[-1]
        # NOTE: torch's memory-efficient kernels need values as wide as the keys; with narrower values it falls back
        # to materialising the n×L scores. Zero columns added to v give zero output columns, dropped at the end.
        v = F.pad(v, (0, e - dv)) if dv < e else v  # (B, h, L, e)
        if past == 0 and mask is None:
            k, v = k.expand(B, H, *k.shape[2:]), v.expand(B, H, *v.shape[2:])  # views: no copy per head
            return fused_attention(q, k, v, causal=True, scale=scale)[..., :dv], None
        out = q.new_empty(B, H, n, dv)
        for s in range(0, n, PREFILL_BLOCK):
            t = min(n, s + PREFILL_BLOCK)  # queries s … t − 1, at positions past + s …, see keys 0 … past + t − 1
            allowed = allowed_keys(past + s, mask[:, : past + t] if mask is not None else None, t - s, q.device)
            qb, kb, vb = q[:, :, s:t], k[:, :, : past + t], v[:, :, : past + t]
            if kb.shape[1] == 1 and H > 1:  # one key for all heads: fold the heads into the query axis, row h·m + i
                m, L = t - s, past + t
                folded = allowed.expand(B, H, m, L).reshape(B, 1, H * m, L)
                read = fused_attention(qb.reshape(B, 1, H * m, e), kb, vb, folded, scale=scale).view(B, H, m, e)
            else:
                read = fused_attention(qb, kb, vb, allowed, scale=scale)
            out[:, :, s:t] = read[..., :dv]
        return out, None

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
