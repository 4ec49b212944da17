"""DeepSeek Multi-head Latent Attention (MLA): like multi-head attention, but the keys and values of every token are
re-created from one small *latent vector* ``c_KV`` (width ``d_c``) — a latent along the feature axis, not latent
tokens.

The compute stays O(N²) (every query still scores every earlier key); what shrinks is the KV cache kept while
generating. Three ideas (equation numbers of DeepSeek-V2, arXiv:2405.04434; presets from DeepSeek-V3,
arXiv:2412.19437):

* **low-rank KV compression** (eq. 9-11): ``c_KV = RMSNorm(W_DKV·h)``; ``k_C = W_UK·c_KV``; ``v_C = W_UV·c_KV``.
* **decoupled RoPE** (eq. 14-17): position enters through a separate rotary part — per-head ``q_R`` and one key
  ``k_R`` shared by all heads — so ``W_UK`` stays free of position and can be absorbed.
* **absorption** (matrix associativity): ``q_C·k_C = (q_C·W_UK)·c_KV``, so the cache holds only ``c_KV`` and ``k_R``
  (``d_c + d_rope`` values per token and layer) and a decoding step is multi-query attention over one 576-wide key.

The modules, one job each:

* :mod:`lattn.mla.config` — :class:`MLAConfig` (sizes, softmax scale, YaRN) and DeepSeek's :data:`PRESETS`;
* :mod:`lattn.mla.cache` — :class:`MLACache` and the cache accounting of MHA, GQA, MQA and MLA;
* :mod:`lattn.mla.layer` — :class:`MultiHeadLatentAttention` with modes ``auto`` (the default: latent cache,
  expanded prefill, absorbed decode), ``naive`` and ``absorbed``;
* :mod:`lattn.mla.absorption` — :func:`absorption_gap`, why RoPE must be decoupled;
* RoPE (:func:`apply_rope`, :class:`YaRN`) lives in :mod:`lattn.rope`, :class:`RMSNorm` in :mod:`lattn.norm`.

Example: DeepSeek-V2 caches 512 + 64 = 576 values per token per layer, 34,560 over its 60 layers, where multi-head
attention with the same heads would cache 1,966,080.
"""

from ..norm import RMSNorm
from ..rope import YaRN, apply_rope
from .absorption import absorption_gap
from .cache import KV_KINDS, LAYOUTS, MLACache, kv_cache_bytes, kv_elements_per_token, largest_divisor_at_most
from .config import PRESETS, MLAConfig
from .layer import MODES, PREFILL_BLOCK, MultiHeadLatentAttention, allowed_keys

__all__ = [
    "KV_KINDS",
    "LAYOUTS",
    "MODES",
    "PREFILL_BLOCK",
    "PRESETS",
    "MLACache",
    "MLAConfig",
    "MultiHeadLatentAttention",
    "RMSNorm",
    "YaRN",
    "absorption_gap",
    "allowed_keys",
    "apply_rope",
    "kv_cache_bytes",
    "kv_elements_per_token",
    "largest_divisor_at_most",
]
