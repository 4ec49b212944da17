"""Speed and memory of the tiny character LM of :mod:`lattn.lm` (notebook 06).

:func:`speed` times training and generation on this machine (wall clock: it varies with the load, so compare ratios
measured in one run); :func:`decode_step_ops` counts the tensor operations of one cached decode step;
:func:`decode_state_bytes` and :func:`prefill_peak_bytes` measure memory on real tensors (they do not depend on the
load); :func:`cache_bytes` adds up what decoding states hold.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import Tensor

from .blocks import Block
from .checks import check_int
from .lm import CharLM, LMConfig, generate, train_lm
from .lm_data import CharCorpus

__all__ = ["cache_bytes", "decode_state_bytes", "decode_step_ops", "prefill_peak_bytes", "speed"]


def cache_bytes(caches: list[Any]) -> int:
    """Bytes held by decoding states (all layers, all allocated slots): what decoding keeps besides the weights."""
    unknown = sorted({type(c).__name__ for c in caches if not hasattr(c, "nbytes")})
    if unknown:
        raise TypeError(f"a decoding state knows its own nbytes; {', '.join(unknown)} does not")
    return sum(c.nbytes for c in caches)


def speed(
    model: CharLM, corpus: CharCorpus, *, steps: int = 3, batch_size: int = 32, new_tokens: int = 100, repeats: int = 3
) -> dict:
    """Wall-clock throughput on this machine, each the fastest of ``repeats`` runs (on a busy machine the fastest
    is the least disturbed): ``train`` tokens/s (``steps`` steps on a copy of the model, the model itself is
    untouched), ``generate`` and ``generate_uncached`` tokens/s (greedy, one sequence, from one character; the same
    as ``generate`` when the model has no decoding state); and ``step_ops``, the number of tensor operations (torch
    dispatcher calls) of one cached decode step — None without a decoding state."""
    check_int(steps=steps, batch_size=batch_size, new_tokens=new_tokens, repeats=repeats)
    runs = (
        train_lm(copy.deepcopy(model), corpus, steps, batch_size=batch_size, progress=False) for _ in range(repeats)
    )
    out = {"train": max(h.tokens_per_s for h in runs)}
    prompt = corpus.val[:1][None]  # (1, 1)
    for name, cached in (("generate", True), ("generate_uncached", False)):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            generate(model, prompt, new_tokens, use_cache=cached)
            best = min(best, time.perf_counter() - start)
        out[name] = new_tokens / best
    out["step_ops"] = decode_step_ops(model, prompt) if model.can_cache else None
    return out


@torch.no_grad()
def decode_step_ops(model: CharLM, prompt: Tensor) -> int:
    """Tensor operations (calls through torch's dispatcher) of one cached decode step after ``prompt`` (1, T). At
    tiny widths much of a step's time is the fixed cost of launching each operation, not its arithmetic."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.calls += 1
            return func(*args, **(kwargs or {}))

    model.eval()
    cache = model.new_cache(prompt.shape[0])
    model(prompt, cache=cache)  # prefill
    with _Count() as count:
        model(prompt[:, -1:], cache=cache)  # one new character
    return count.calls


def decode_state_bytes(config: LMConfig, context: int) -> int | None:
    """Bytes of the decoding state of all ``config.layers`` blocks after ``context`` tokens, float32 — measured on
    the real cache tensors. None for attention without a decoding state (the naive latent decoder)."""
    check_int(context=context)
    layers = [config.attention() for _ in range(config.layers)]
    if not hasattr(layers[0], "new_cache"):
        return None
    return cache_bytes([attn.new_cache(1, context) for attn in layers])


def prefill_peak_bytes(config: LMConfig, context: int) -> int:
    """Peak bytes of the tensors one block creates while reading ``context`` tokens at once (a prompt, or one
    training sequence), batch 1, float32, no gradients (:func:`lattn.complexity.peak_bytes`: kernel scratch space,
    e.g. inside fused attention, is not seen)."""
    from .complexity import peak_bytes

    check_int(context=context)
    block = Block(config.attention(), mlp_mult=config.mlp_mult)
    x = torch.randn(1, context, config.dim)
    return peak_bytes(lambda: block(x))
