"""Speed and memory of the tiny character LM of :mod:`lattn.lm` (notebook 06).

:func:`speed` times training and generation on this machine (wall clock, on one thread, repeated: it varies with
the load, so compare medians and ratios measured in one run); :func:`decode_step_ops` and :func:`forward_ops`
count the tensor operations of one cached decode step and of one uncached forward pass (they do not depend on the
load); :func:`decode_state_bytes` and :func:`prefill_peak_bytes` measure memory on real tensors; :func:`cache_bytes`
adds up what decoding states hold.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .blocks import Block
from .checks import check_int
from .lm import CharLM, LMConfig, generate, train_lm
from .lm_data import CharCorpus

__all__ = ["cache_bytes", "decode_state_bytes", "decode_step_ops", "forward_ops", "prefill_peak_bytes", "speed"]


def cache_bytes(caches: list[Any]) -> int:
    """Bytes held by decoding states (all layers, all allocated slots): what decoding keeps besides the weights."""
    unknown = sorted({type(c).__name__ for c in caches if not hasattr(c, "nbytes")})
    if unknown:
        raise TypeError(f"a decoding state knows its own nbytes; {', '.join(unknown)} does not")
    return sum(c.nbytes for c in caches)


def speed(
    model: CharLM,
    corpus: CharCorpus,
    *,
    steps: int = 3,
    batch_size: int = 32,
    new_tokens: int = 100,
    repeats: int = 5,
    threads: int = 1,
) -> dict:
    """Wall-clock throughput on this machine, each measured ``repeats`` times (lists, in the order run):
    ``train`` tokens/s (``steps`` steps on a copy of the model, the model itself is untouched), ``generate`` and
    ``generate_uncached`` tokens/s (greedy, one sequence, ``new_tokens`` from one character; the same as
    ``generate`` when the model has no decoding state). Plus two counts that do not depend on the load:
    ``step_ops``, the tensor operations of one cached decode step (None without a decoding state), and
    ``forward_ops``, those of one uncached forward over ``new_tokens`` characters (what each uncached step reruns,
    at most ``context``).

    Runs on ``threads`` threads (then restores the setting): at these sizes each operation is too small to gain
    from a second thread, and when another program keeps the other core busy, an operation split over two threads
    waits for it: on the course's 2-core machine that slowed generation ten- to thirtyfold, unevenly across models."""
    check_int(steps=steps, batch_size=batch_size, new_tokens=new_tokens, repeats=repeats, threads=threads)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out: dict[str, Any] = {"train": [], "generate": [], "generate_uncached": []}
        for _ in range(repeats):
            h = train_lm(copy.deepcopy(model), corpus, steps, batch_size=batch_size, progress=False)
            out["train"].append(h.tokens_per_s)
        prompt = corpus.val[:1][None]  # (1, 1)
        for _ in range(repeats):
            for name, cached in (("generate", True), ("generate_uncached", False)):
                start = time.perf_counter()
                generate(model, prompt, new_tokens, use_cache=cached)
                out[name].append(new_tokens / (time.perf_counter() - start))
    finally:
        torch.set_num_threads(before)
    out["step_ops"] = decode_step_ops(model, prompt) if model.can_cache else None
    out["forward_ops"] = forward_ops(model, min(new_tokens, model.config.context))
    return out


def _count_ops(run: Callable[[], Any]) -> int:
    """Tensor operations (calls through torch's dispatcher) that ``run()`` makes."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.calls += 1
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), _Count() as count:
        run()
    return count.calls


def decode_step_ops(model: CharLM, prompt: Tensor) -> int:
    """Tensor operations (calls through torch's dispatcher) of one cached decode step after ``prompt`` (1, T). At
    tiny widths much of a step's time is the fixed cost of launching each operation, not its arithmetic."""
    model.eval()
    cache = model.new_cache(prompt.shape[0])
    with torch.no_grad():
        model(prompt, cache=cache)  # prefill
    return _count_ops(lambda: model(prompt[:, -1:], cache=cache))  # one new character


def forward_ops(model: CharLM, length: int) -> int:
    """Tensor operations of one forward pass without a cache over ``length`` characters (1 ≤ length ≤ context):
    what generation without a cache runs for every new character."""
    check_int(length=length)
    if length > model.config.context:
        raise ValueError(f"length must be ≤ the model's context {model.config.context}, got {length}")
    model.eval()
    ids = torch.zeros(1, length, dtype=torch.long)
    return _count_ops(lambda: model(ids))


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
