"""The instruments the cost formulas are checked against: torch's FLOP counter (taught the CPU fused attention
kernel) and a tracker of the bytes PyTorch really holds. Wall-clock timing lives in :mod:`lattn.bench`.

Public torch APIs only, plus ``TorchDispatchMode`` (the documented way to intercept operators); the pytree
helpers of ``torch.utils._pytree`` are private and differ between torch versions, so :func:`_tensors` walks the
arguments itself.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "flop_counter", "measured_flops", "peak_bytes", "without_projections"]


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's own SDPA formula (two batched matmuls), applied to the CPU flash kernel the stock counter skips."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_counter(display: bool = False) -> FlopCounterMode:
    """A :class:`~torch.utils.flop_counter.FlopCounterMode` that also counts the CPU fused attention kernel.

    NOTE: torch 2.13's counter knows the CUDA SDPA kernels but not ``_scaled_dot_product_flash_attention_for_cpu``,
    so on the CPU a fused attention would count 0. We map that kernel to torch's own ``sdpa_flop_count``.
    """
    cpu_flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    mapping = {} if cpu_flash is None else {cpu_flash: _sdpa_flops}
    return FlopCounterMode(display=display, custom_mapping=mapping)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of ``fn()`` as counted by :func:`flop_counter` (run once; forward ops only are counted).

    NOTE: not under ``torch.no_grad()``: the counter's module tracker fails on views of parameters made there.
    """
    with flop_counter() as counter:
        fn()
    return counter.get_total_flops()


def without_projections(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every ``nn.Linear`` replaced by ``nn.Identity``: its attention core.

    The copy runs the module's own forward code (fast or teaching path), so its FLOPs are exactly the core's.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    core = copy.deepcopy(module)
    for name, child in list(core.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.Linear):
                if sub.in_features != sub.out_features:
                    raise ValueError(f"{name}.{attr} maps {sub.in_features}→{sub.out_features}; need a square Linear")
                setattr(child, attr, nn.Identity())
    return core


def measured_flops(module: nn.Module, x: Tensor, **forward_kwargs: object) -> dict[str, int]:
    """Counted FLOPs of one forward pass: ``{"core", "projections", "total"}``.

    ``total`` runs ``module`` itself, ``core`` its :func:`without_projections` copy; projections is the difference.
    """
    total = count_flops(lambda: module(x, **forward_kwargs))
    core = count_flops(lambda: without_projections(module)(x, **forward_kwargs))
    return {"core": core, "projections": total - core, "total": total}


def _tensors(obj: object) -> Iterator[Tensor]:
    """Every tensor in an operator's arguments or result (nested tuples, lists and dicts)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


class _LiveBytes(TorchDispatchMode):
    """Adds up the bytes of every storage an op creates and subtracts them when the storage is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}  # id(storage) → bytes
        self.now = self.peak = 0

    def _free(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            if t.device.type == "meta":
                continue
            storage = t.untyped_storage()
            key = id(storage)
            if key in inputs or key in self.live:  # a view or an in-place result: no new memory
                continue
            self.live[key] = storage.nbytes()
            self.now += storage.nbytes()
            weakref.finalize(storage, self._free, key)
            self.peak = max(self.peak, self.now)
        return out


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes of the tensors created while ``fn()`` runs (inputs and parameters excluded), without gradients.

    Counts every tensor an operator returns until it is freed; scratch buffers private to a kernel (e.g. the tiles
    of a fused attention) are invisible to it.
    """
    mode = _LiveBytes()
    with torch.no_grad(), mode:
        fn()
    return mode.peak
