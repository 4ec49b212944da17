"""What attention costs: analytic FLOPs and memory of full vs latent attention, checked against PyTorch's own counters.

Full attention scores every token against every token, so its cost grows with N²; latent attention routes the N
tokens through M learned latents in three stages (write, gather, broadcast), each an N×M cross-attention, so its
cost grows with N·M. This module writes both costs down as formulas in B, H, N, M, d_head and dtype, and provides
the two instruments the formulas are checked against.

Conventions:

* **FLOPs** count matrix multiplications only, 2 per multiply-add, exactly as
  :class:`torch.utils.flop_counter.FlopCounterMode` does. Softmax, scaling, masking, renormalising and residual
  additions are elementwise O(N·M) or O(N·D) work that neither the formulas nor the counter include.
* The **attention core** is the attention itself — scores q·kᵀ and the weighted sum of the values; the **whole
  module** adds the ``nn.Linear`` projections (q, k, v, out; bias additions are not counted).
  :func:`without_projections` turns a real module into its core, so the counter can check both.
* **Memory** is the bytes of the intermediates that must exist at the same time at a stage's peak: the projected
  q, k, v, the output and — on a path that materialises it — the float32 weight map. It is what any
  implementation of that path needs (a lower bound); :func:`peak_bytes` measures what PyTorch's eager code really
  holds (more: e.g. the teaching path keeps the scores and the weights alive together).

Example (B=1, H=4, d_head=64, N=16,384, M=64)::

    >>> full_attention_cost(16_384, heads=4).core_flops / total_cost(latent_attention_cost(16_384, 64, heads=4)).core_flops
    85.33…   # = N / (3·M): three N×M stages instead of one N×N
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from .latent import STAGES, check_stages

__all__ = [
    "PATHS",
    "Cost",
    "count_flops",
    "crossover_n",
    "flop_counter",
    "full_attention_cost",
    "latent_attention_cost",
    "latent_stage_cost",
    "matrix_bytes",
    "measured_flops",
    "peak_bytes",
    "total_cost",
    "without_projections",
]

PATHS = ("fast", "teaching")  # fast = fused torch SDPA, no maps kept; teaching = explicit float32 maps

# Rows of (queries, keys, values, output) of each latent stage, as "n" (tokens) or "m" (latents).
_STAGE_ROWS = {
    "write": ("n", "m", "n", "m"),  # tokens query latents; each latent takes a weighted mean of token values
    "gather": ("m", "n", "n", "m"),  # latents query tokens
    "broadcast": ("n", "m", "m", "n"),  # tokens query latents and read back the output
}


@dataclass(frozen=True)
class Cost:
    """The cost of one attention computation (one stage, or a sequence of stages via :func:`total_cost`)."""

    core_flops: int  # scores q·kᵀ and the weighted sum of values (matmul FLOPs, 2 per multiply-add)
    projection_flops: int  # the nn.Linear layers q, k, v, out (bias additions not counted, as by the counter)
    inputs: dict[str, int] = field(default_factory=dict)  # name → bytes of q, k, v (made by the projections)
    tensors: dict[str, int] = field(default_factory=dict)  # name → bytes of what the core makes: weights, output
    kept: tuple[str, ...] = ()  # names in `tensors` that outlive the stage (maps returned by the teaching path)

    @property
    def flops(self) -> int:
        """Whole-module FLOPs: core + projections."""
        return self.core_flops + self.projection_flops

    @property
    def core_bytes(self) -> int:
        """Bytes the attention core itself must hold at its peak (its inputs q, k, v aside)."""
        return sum(self.tensors.values())

    @property
    def peak_bytes(self) -> int:
        """Bytes of all intermediates of the stage that must exist at once: q, k, v and the core's."""
        return sum(self.inputs.values()) + self.core_bytes


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_path(path: str) -> None:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")


def _itemsize(dtype: torch.dtype) -> int:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float32), got {dtype!r}")
    return torch.empty((), dtype=dtype).element_size()


def matrix_bytes(rows: int, cols: int, *, batch: int = 1, heads: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a (batch, heads, rows, cols) tensor. Example: one float32 16,384×16,384 map is 1 GiB."""
    _check_sizes(rows=rows, cols=cols, batch=batch, heads=heads)
    return batch * heads * rows * cols * _itemsize(dtype)


def _cross_attention_cost(
    nq: int,
    nk: int,
    nv: int,
    nout: int,
    *,
    batch: int,
    heads: int,
    dim_head: int,
    dtype: torch.dtype,
    explicit: bool,
    keep_map: bool,
    label: str = "",
) -> Cost:
    """One attention with nq query rows, nk key rows, nv value rows, nout output rows (the map is nq×nk).

    Either nv = nk (the usual weighted sum of values, out rows = nq) or nv = nq (the write stage: the map is
    transposed, each of the nk latents takes a weighted mean over the nq tokens, out rows = nk). ``explicit``: the
    float32 map is materialised; ``keep_map``: it is returned, so it outlives the stage.
    """
    B, H, dh = batch, heads, dim_head
    D = H * dh
    s = _itemsize(dtype)
    core = 2 * B * H * nq * nk * dh  # scores (B, H, nq, nk)
    core += 2 * B * H * nq * nk * dh  # weighted sum: (nq×nk) map times (nk or nq)×dh values
    proj = 2 * B * D * D * (nq + nk + nv + nout)  # to_q, to_k, to_v, to_out
    inputs = {f"{label}{name} (B,H,{rows},dh)": B * rows * D * s for name, rows in zip("qkv", (nq, nk, nv))}
    map_dtype = torch.float64 if dtype == torch.float64 else torch.float32  # softmax in float32 (or wider)
    weights = f"{label}weights (B,H,{nq},{nk}) {str(map_dtype).removeprefix('torch.')}"
    tensors = {weights: matrix_bytes(nq, nk, batch=B, heads=H, dtype=map_dtype)} if explicit else {}
    tensors[f"{label}output (B,H,{nout},dh)"] = B * nout * D * s
    return Cost(core, proj, inputs, tensors, (weights,) if keep_map else ())


def full_attention_cost(
    n: int,
    *,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """Multi-head self-attention over n tokens (:class:`~lattn.attention.MultiHeadAttention`).

    core = 4·B·H·N²·dh (two N×N matmuls per head), projections = 8·B·N·D² (four D×D layers on N rows).
    The teaching path must hold the (B, H, N, N) float32 weights; the fused fast path streams over keys and never
    stores them, so its memory is O(N·D).
    """
    _check_sizes(n=n, batch=batch, heads=heads, dim_head=dim_head)
    _check_path(path)
    teaching = path == "teaching"
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype}
    return _cross_attention_cost(n, n, n, n, **sizes, explicit=teaching, keep_map=teaching)


def latent_stage_cost(
    stage: str,
    n: int,
    m: int,
    *,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """One stage of :class:`~lattn.latent.LatentAttention` between n tokens and m latents.

    Every stage is an N×M cross-attention: core = 4·B·H·N·M·dh = 4·B·N·M·D, projections = 4·B·D²·(N + M).
    Only the teaching path holds a (B, H, N, M) float32 map: gather and broadcast use the fused kernel on the fast
    path, and the write stage streams its tokens in blocks (a block's map, not the whole one, exists at a time).
    """
    (stage,) = check_stages(stage)
    _check_sizes(n=n, m=m, batch=batch, heads=heads, dim_head=dim_head)
    _check_path(path)
    rows = [n if r == "n" else m for r in _STAGE_ROWS[stage]]
    teaching = path == "teaching"
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype}
    return _cross_attention_cost(*rows, **sizes, explicit=teaching, keep_map=teaching, label=f"{stage}: ")


def latent_attention_cost(
    n: int,
    m: int,
    *,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
    stages: tuple[str, ...] = STAGES,
) -> dict[str, Cost]:
    """Per-stage costs of :class:`~lattn.latent.LatentAttention`; combine them with :func:`total_cost`."""
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype, "path": path}
    return {s: latent_stage_cost(s, n, m, **sizes) for s in check_stages(stages)}


def total_cost(costs: Mapping[str, Cost] | Iterable[Cost], *, core_only: bool = False) -> Cost:
    """Stages run one after another: FLOPs add up; memory peaks at the stage whose own peak, plus what earlier
    stages keep (the maps the teaching path returns), is largest. Those are the tensors of the result.

    ``core_only``: find the peak of the attention core alone (q, k, v not counted, as when they are views of the
    input); the result's ``core_bytes`` is then the core's peak.
    """
    parts = list(costs.values()) if isinstance(costs, Mapping) else list(costs)
    if not parts:
        raise ValueError("total_cost needs at least one Cost")
    moments = []  # (inputs, tensors) alive during each stage
    kept: dict[str, int] = {}
    for c in parts:
        moments.append((c.inputs, {**kept, **c.tensors}))
        kept.update({name: c.tensors[name] for name in c.kept})
    inputs, tensors = max(moments, key=lambda m: (0 if core_only else sum(m[0].values())) + sum(m[1].values()))
    flops = sum(c.core_flops for c in parts), sum(c.projection_flops for c in parts)
    return Cost(*flops, dict(inputs), tensors, tuple(kept))


def crossover_n(
    m: int,
    *,
    heads: int = 1,
    dim_head: int = 64,
    whole_module: bool = False,
    stages: tuple[str, ...] = STAGES,
    batch: int = 1,
) -> int:
    """Smallest N at which latent attention needs fewer FLOPs than full attention.

    Attention cores: 4·N²·D vs 3·4·N·M·D, so N > 3M. Whole modules also pay 12·N·D² + 12·M·D² for the latent
    projections vs 8·N·D² for full attention, which moves the crossover up. Example: M=64, D=256 → 193 (cores),
    540 (whole modules).
    """
    _check_sizes(m=m, heads=heads, dim_head=dim_head, batch=batch)
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head}

    def latent_wins(n: int) -> bool:
        full = full_attention_cost(n, **sizes)
        latent = total_cost(latent_attention_cost(n, m, stages=stages, **sizes))
        return (latent.flops < full.flops) if whole_module else (latent.core_flops < full.core_flops)

    # full - latent is a quadratic in N with a positive leading term: once latent wins, it keeps winning.
    hi = 1
    while not latent_wins(hi):
        hi *= 2
    lo = hi // 2  # latent does not win at lo (or lo = 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if latent_wins(mid) else (mid, hi)
    return hi


# --- the instruments --------------------------------------------------------------------------------------------


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
        inputs = {id(t.untyped_storage()) for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, Tensor) or t.device.type == "meta":
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


# --- the latent-attention family (lattn.family) -----------------------------------------------------------------
#
# Same conventions as above: matmul FLOPs only, 2 per multiply-add, exactly what flop_counter() counts (checked in
# tests/test_family.py against the real modules, fast and teaching paths). Each attention inside a module is priced
# as a gather stage of nq latents over nk tokens (core = scores + weighted sums; projections = q, k, v, out); the
# feed-forward MLPs and Slot Attention's GRU are Costs of their own whose FLOPs count as projection_flops (all other
# nn.Linear-type work) and whose hidden activations are not listed in ``tensors``. total_cost() adds the parts up,
# so a module's peak_bytes is that of its largest attention. D = heads·dim_head; the FLOPs depend on D only, not on
# how it is split into heads — except Luna causal's teaching path, whose N×N×l products are per head.

__all__ += [
    "isab_cost",
    "linformer_cost",
    "luna_causal_cost",
    "luna_cost",
    "mab_cost",
    "perceiver_ar_cost",
    "perceiver_cost",
    "perceiver_io_cost",
    "pma_cost",
    "slot_attention_cost",
]


def _family_attention(
    nq: int, nk: int, *, batch: int, heads: int, dim_head: int, dtype: torch.dtype, path: str
) -> Cost:
    """One multi-head cross-attention (nq queries over nk keys/values) of a family module.

    It has the shape of a gather stage with nq latents reading nk tokens, so that is how it is priced.
    """
    return latent_stage_cost("gather", nk, nq, batch=batch, heads=heads, dim_head=dim_head, dtype=dtype, path=path)


def _mlp_cost(rows: int, *, batch: int, dim: int, mult: int) -> Cost:
    """A dim → mult·dim → dim MLP on ``rows`` rows: two matmuls of 2·rows·dim·mult·dim FLOPs each."""
    _check_sizes(mult=mult)
    return Cost(core_flops=0, projection_flops=4 * batch * rows * mult * dim * dim)


def _latent_blocks(m: int, depth: int, ff_mult: int, sizes: dict) -> list[Cost]:
    """``depth`` pre-norm latent self-attention blocks (MHA + MLP) over m latents."""
    if not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer ≥ 0, got {depth!r}")
    dim = sizes["heads"] * sizes["dim_head"]
    block = [_family_attention(m, m, **sizes), _mlp_cost(m, batch=sizes["batch"], dim=dim, mult=ff_mult)]
    return block * depth


def perceiver_cost(
    n: int,
    m: int,
    *,
    depth: int = 1,
    ff_mult: int = 4,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.Perceiver`: gather (m latents over n tokens) + MLP + depth latent blocks.

    core = 4·B·D·(N·M + depth·M²): the O(N·M + L·M²) of the paper. Example: N=50,176 pixels, M=512 → the gather
    is 98× cheaper than one N×N self-attention.
    """
    _check_sizes(n=n, m=m, batch=batch, heads=heads, dim_head=dim_head)
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype, "path": path}
    dim = heads * dim_head
    parts = [_family_attention(m, n, **sizes), _mlp_cost(m, batch=batch, dim=dim, mult=ff_mult)]
    return total_cost(parts + _latent_blocks(m, depth, ff_mult, sizes))


def perceiver_io_cost(
    n: int,
    m: int,
    *,
    num_outputs: int | None = None,
    depth: int = 1,
    ff_mult: int = 4,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.PerceiverIO`: the encoder + O output queries reading the m latents (+ MLP).

    ``num_outputs=None`` means the tokens are the queries (O = N). Adds 4·B·O·M·D to the core.
    """
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype, "path": path}
    o = n if num_outputs is None else num_outputs
    _check_sizes(num_outputs=o)
    encoder = perceiver_cost(n, m, depth=depth, ff_mult=ff_mult, **sizes)
    decoder = [_family_attention(o, m, **sizes), _mlp_cost(o, batch=batch, dim=heads * dim_head, mult=ff_mult)]
    return total_cost([encoder, *decoder])


def perceiver_ar_cost(
    n: int,
    m: int,
    *,
    depth: int = 1,
    ff_mult: int = 4,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.PerceiverAR`: min(n, m) latents gather over all n tokens under a block-causal mask.

    The mask zeroes about M²/2 of the M×N scores, but the kernels still compute the full M×N rectangle, and so do
    the formula and the counter.
    """
    _check_sizes(n=n, m=m, batch=batch, heads=heads, dim_head=dim_head)
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype, "path": path}
    mq = min(n, m)
    parts = [_family_attention(mq, n, **sizes), _mlp_cost(mq, batch=batch, dim=heads * dim_head, mult=ff_mult)]
    return total_cost(parts + _latent_blocks(mq, depth, ff_mult, sizes))


def mab_cost(
    nq: int,
    nk: int,
    *,
    feedforward: bool = True,
    ff_mult: int = 4,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.MAB` (Set Transformer): nq queries attend to nk elements, + the row-wise MLP."""
    _check_sizes(nq=nq, nk=nk, batch=batch, heads=heads, dim_head=dim_head)
    parts = [_family_attention(nq, nk, batch=batch, heads=heads, dim_head=dim_head, dtype=dtype, path=path)]
    if feedforward:
        parts.append(_mlp_cost(nq, batch=batch, dim=heads * dim_head, mult=ff_mult))
    return total_cost(parts)


def isab_cost(
    n: int,
    m: int,
    *,
    feedforward: bool = True,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.ISAB`: MAB(I, X) then MAB(X, H): core 8·B·N·M·D, linear in the set size N."""
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype, "path": path}
    gather = mab_cost(m, n, feedforward=feedforward, **sizes)  # H = MAB(I, X)
    return total_cost([gather, mab_cost(n, m, feedforward=feedforward, **sizes)])  # + MAB(X, H)


def pma_cost(
    n: int,
    k: int,
    *,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.PMA`: the row-wise MLP (×4) on the n elements, then MAB(S, ·) with k seeds."""
    _check_sizes(n=n, k=k, batch=batch, heads=heads, dim_head=dim_head)
    rff = _mlp_cost(n, batch=batch, dim=heads * dim_head, mult=4)
    return total_cost([rff, mab_cost(k, n, batch=batch, heads=heads, dim_head=dim_head, dtype=dtype, path=path)])


def luna_cost(
    n: int,
    l: int,  # noqa: E741 — the paper's name for the packed length
    *,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.Luna`: pack (l over n) + unpack (n over l): core 8·B·N·l·D."""
    _check_sizes(n=n, l=l, batch=batch, heads=heads, dim_head=dim_head)
    sizes = {"batch": batch, "heads": heads, "dim_head": dim_head, "dtype": dtype, "path": path}
    return total_cost([_family_attention(l, n, **sizes), _family_attention(n, l, **sizes)])


def luna_causal_cost(
    n: int,
    l: int,  # noqa: E741 — the paper's name for the packed length
    *,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.LunaCausal`: projections 2·B·D²·(5N + l) (packing keys, q, k, v, out; packing queries).

    fast path (running sums): core 6·B·N·l·D — packing scores, logits and read-out, each N·l·D multiply-adds; the
    outer products φ_j ⊗ k_j, φ_j ⊗ v_j and the cumulative sums are elementwise (N·l·D each, not counted), and
    they are the memory: two (B, H, N, l, dh) running sums.
    teaching path (explicit N×N): core 2·B·N·l·D + 4·B·N²·D + 4·B·H·N²·l — quadratic, as it shows every pair.
    """
    _check_sizes(n=n, l=l, batch=batch, heads=heads, dim_head=dim_head)
    _check_path(path)
    B, H, D = batch, heads, heads * dim_head
    s = _itemsize(dtype)
    proj = 2 * B * D * D * (5 * n + l)
    inputs = {"q, k, v (B,H,N,dh)": 3 * B * n * D * s}
    tensors = {f"packing weights (B,H,N,{l})": B * H * n * l * s}
    if path == "fast":
        core = 6 * B * n * l * D
        tensors[f"running sums 2×(B,H,N,{l},dh)"] = 2 * B * n * l * D * s
    else:
        core = 2 * B * n * l * D + 4 * B * n * n * D + 4 * B * H * n * n * l
        tensors["scores and effective map 2×(B,H,N,N)"] = 2 * matrix_bytes(n, n, batch=B, heads=H, dtype=dtype)
    tensors["output (B,H,N,dh)"] = B * n * D * s
    return Cost(core_flops=core, projection_flops=proj, inputs=inputs, tensors=tensors)


def slot_attention_cost(
    n: int,
    m: int,
    *,
    iters: int = 3,
    mlp_mult: int = 2,
    batch: int = 1,
    dim: int = 64,
    dtype: torch.dtype = torch.float32,
) -> Cost:
    """:class:`~lattn.family.SlotAttention` (one head of width ``dim``): k, v of the inputs once, then per round
    the slots' queries, the N×M map and the weighted means (core 4·B·N·M·D), a GRU (12·B·M·D²) and the MLP.

    The map is always explicit (softmax over slots, renormalised over inputs: no fused kernel), so one path.
    """
    _check_sizes(n=n, m=m, iters=iters, batch=batch, dim=dim)
    s = _itemsize(dtype)
    inputs = Cost(core_flops=0, projection_flops=2 * 2 * batch * n * dim * dim)  # to_k, to_v
    one_round = Cost(
        core_flops=4 * batch * n * m * dim,  # logits k·qᵀ and the weighted means
        projection_flops=2 * batch * m * dim * dim,  # to_q
        inputs={"k, v (B,N,D)": 2 * batch * n * dim * s, "q (B,M,D)": batch * m * dim * s},
        tensors={f"weights (B,N,{m}) float32": matrix_bytes(n, m, batch=batch), "updates (B,M,D)": batch * m * dim * s},
    )
    gru = Cost(core_flops=0, projection_flops=2 * 2 * batch * m * dim * 3 * dim)  # input and hidden matmuls, 3 gates
    mlp = _mlp_cost(m, batch=batch, dim=dim, mult=mlp_mult)
    return total_cost([inputs] + [one_round, gru, mlp] * iters)


def linformer_cost(
    n: int,
    k: int,
    *,
    batch: int = 1,
    heads: int = 1,
    dim_head: int = 64,
    dtype: torch.dtype = torch.float32,
    path: str = "fast",
) -> Cost:
    """:class:`~lattn.family.Linformer`: q, k, v, out on N rows (8·B·N·D²); core = the two sequence projections
    E·K, F·V (4·B·k·N·D) + attention over k projected keys (4·B·N·k·D): 8·B·N·k·D, linear in N."""
    _check_sizes(n=n, k=k, batch=batch, heads=heads, dim_head=dim_head)
    _check_path(path)
    B, H, D = batch, heads, heads * dim_head
    s = _itemsize(dtype)
    inputs = {"q, k, v (B,H,N,dh)": 3 * B * n * D * s}
    tensors = {f"projected k, v (B,H,{k},dh)": 2 * B * k * D * s}
    if path == "teaching":
        tensors[f"weights (B,H,N,{k}) float32"] = matrix_bytes(n, k, batch=B, heads=H)
    tensors["output (B,H,N,dh)"] = B * n * D * s
    return Cost(core_flops=8 * B * n * k * D, projection_flops=8 * B * n * D * D, inputs=inputs, tensors=tensors)
