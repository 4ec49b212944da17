"""lattn — latent attention, built up from standard attention, one mechanism per module.

The map of the house (data flows one way: tasks → mechanisms → models → viz → widgets → notebooks)::

    attention.py    THE attention layer `Attention` (self/cross, fast/teaching path, masks, KV cache) and
                    MultiHeadAttention, the O(N²) baseline; which mechanisms keep their own core, and why      nb 00
    latent.py       LatentAttention: write / gather / broadcast, gather and broadcast through `Attention`;
                    LatentMaps, the one maps type of every latent mechanism                                     nb 01
    masks.py        who may see whom (causal, band, window + global, padding) and the one masked softmax
    checks.py       the input checks every public entry point shares (clear errors naming the argument)
    analysis.py     singular values, best rank-M approximations, token→token dependence, latent roles        nb 01, 03
    complexity/     cost formulas (FLOPs, bytes) on one shape dataclass; measuring instruments               nb 02
    bench/          `python -m lattn.bench`: timings, reported as ratios, never asserted                     nb 02, 05
    tasks.py        seeded synthetic tasks (cluster majority, key-value retrieval, positional copy)          nb 03
    tagger.py       the Tagger and its mixers (latent, full, stacked full, window, none)                      nb 03
    train.py        the one training loop `fit`, its History, `train` and `evaluate`                          nb 03, 06
    stats.py        verdicts from a few seeds: means, a 95 % Welch interval, "A beats B" / "within noise"   nb 03
    records.py      queries over result records (select, per-seed values, bands)                            nb 03
    experiments/    `python -m lattn.experiments`: longer runs whose small results ship in lattn/data        nb 03, 06
    family/         Perceiver (IO, AR), Set Transformer (MAB, ISAB, PMA), Luna (+ causal), Slot, Linformer,  nb 04
                    Nyströmformer, causal linear attention, window + global tokens; the registry and the comparison
    mla/            DeepSeek's Multi-head Latent Attention: config + presets, cache + accounting, the layer    nb 05
                    (modes auto = expanded prefill + absorbed decode, naive, absorbed), absorption_gap
    rope.py         RoPE application, frequencies, YaRN scaling as DeepSeek ships it, pair layouts          nb 05
    norm.py         RMSNorm (MLA's latents, DeepSeek's blocks)                                               nb 05
    blocks.py       the pre-norm Transformer block around any mechanism                                      nb 06
    lm.py, lm_data.py, lm_cost.py  the tiny character LM: training, generation, checkpoints; corpus; speed, memory  nb 06
    viz/            figures (arrays in, figures out; no widgets), one module per lesson; diagram.py: token ↔ latent schematics from
                    data; flow.py: the same drawn with a model's real attention weights
    widgets/        one explorer per lesson: controls wired to compute and viz (no maths, no drawing)
    exercises/      self-checks with hints, one module per lesson
    display.py      what a kernel shows: widget bundles, progress bars; notebooks.py: the executor and cleaner

One calling convention for every mechanism: ``forward(x, *, mask=None, causal=False, return_maps=False, …)``,
keyword-only after the tokens ``x``; class attributes say what a module is (``is_causal``, ``returns_tokens``,
``stages``); modules with a decoding state have ``new_cache(batch, max_len)`` and take ``cache=``/``start_pos=``.

Glossary (the words used in code, docs and notebooks):

* **tokens** ``x`` (B, N, D): the input sequence; N is the sequence length, D the width.
* **latents** (M, D): M ≪ N learned tokens in the middle (``num_latents``); the bottleneck.
* **heads** H, head width ``d_head = D // H``.
* **write** map (B, H, N, M): tokens query latents, softmax over latents; latents take the weighted mean.
* **gather** map (B, H, M, N): latents query tokens, softmax over tokens.
* **broadcast** map (B, H, N, M): tokens query latents, softmax over latents; the output.
* **effective map** broadcast @ gather (B, H, N, N): the gather→broadcast path of one head; rank ≤ M.
  A diagnostic: the write path and the mixing of heads add to the layer's real dependence.
* **mask** (B, N) bool: True = a real token that may be attended to.
* the **family** (:mod:`lattn.family`): Perceiver (IO, AR), Set Transformer (ISAB, PMA), Luna (and causal Luna),
  Slot Attention, Linformer — published architectures as choices of write / gather / broadcast; with
  ``return_maps=True`` each returns ``(out, LatentMaps)`` (full attention: its (B, H, N, N) tensor).
* MLA (DeepSeek): ``d_c`` (per-token latent width), ``d_rope``, ``w_dkv``, ``w_uk``, ``w_uv`` — a latent along the
  *feature* axis that shrinks the KV cache, not latent tokens.
"""

import os

# Idle OpenMP threads sleep instead of spinning: with the small matrices of this course, spinning threads on a busy
# 2-core machine (a notebook kernel beside JupyterLab and a browser) slow torch down by 10-60x. Only takes effect
# when lattn is imported before torch; the test suite and `make lab` set it in the environment too.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .attention import Attention, MultiHeadAttention, fused_attention, scaled_dot_product
from .latent import STAGES, LatentAttention, LatentMaps

__version__ = "0.1.0"

__all__ = [
    "STAGES",
    "Attention",
    "LatentAttention",
    "LatentMaps",
    "MultiHeadAttention",
    "fused_attention",
    "scaled_dot_product",
]
