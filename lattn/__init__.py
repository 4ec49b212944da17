"""lattn — latent attention, built up from standard attention, one mechanism per module.

Glossary (the words used in code, docs and notebooks):

* **tokens** ``x`` (B, N, D): the input sequence; N is the sequence length, D the width.
* **latents** (M, D): M ≪ N learned tokens in the middle (``num_latents``); the bottleneck.
* **heads** H, head size ``dh = D // H``.
* **write** map (B, H, N, M): tokens query latents, softmax over latents; latents take the weighted mean.
* **gather** map (B, H, M, N): latents query tokens, softmax over tokens.
* **broadcast** map (B, H, N, M): tokens query latents, softmax over latents; the output.
* **effective map** broadcast @ gather (B, H, N, N): how tokens reach tokens through the latents; rank ≤ M.
* **mask** (B, N) bool: True = a real token that may be attended to.
* the **family** (:mod:`lattn.family`): Perceiver (IO, AR), Set Transformer (ISAB, PMA), Luna (and causal Luna),
  Slot Attention, Linformer — published architectures as choices of write / gather / broadcast.
* MLA (DeepSeek): ``d_c`` (per-token latent width), ``d_rope``, ``w_dkv``, ``w_uk``, ``w_uv`` — a latent along the
  *feature* axis that shrinks the KV cache, not latent tokens.
"""

import os

# Idle OpenMP threads sleep instead of spinning: with the small matrices of this course, spinning threads on a busy
# 2-core machine (a notebook kernel beside JupyterLab and a browser) slow torch down by 10-60x. Only takes effect
# when lattn is imported before torch; the test suite and `make lab` set it in the environment too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .attention import MultiHeadAttention, fused_attention, scaled_dot_product
from .latent import STAGES, LatentAttention, LatentMaps

__version__ = "0.1.0"

__all__ = [
    "STAGES",
    "LatentAttention",
    "LatentMaps",
    "MultiHeadAttention",
    "fused_attention",
    "scaled_dot_product",
]
