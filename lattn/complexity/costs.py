"""Cost formulas of full and latent attention: FLOPs and bytes as functions of one :class:`Shape`.

Pure arithmetic, no tensors are made: :mod:`lattn.complexity.instruments` holds the counters these formulas are
checked against, :mod:`lattn.complexity.family` the formulas of the latent-attention family built on these.

Example (B=1, H=4, d_head=64, N=16,384, M=64)::

    >>> shape = Shape(seq_len=16_384, num_latents=64, heads=4)
    >>> full_attention_cost(shape).core_flops / total_cost(latent_attention_cost(shape)).core_flops
    85.33…   # = N / (3·M): three N×M stages instead of one N×N
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..checks import check_int
from ..latent import STAGES, check_stages

__all__ = [
    "CORE_METHODS",
    "MODULE_METHODS",
    "PATHS",
    "Cost",
    "Shape",
    "cost_curves",
    "created_bytes",
    "crossover_n",
    "full_attention_cost",
    "human_bytes",
    "latent_attention_cost",
    "latent_stage_cost",
    "matrix_bytes",
    "method_cost",
    "total_cost",
]

PATHS = ("fast", "teaching")  # fast = fused torch SDPA, no maps kept; teaching = explicit float32 maps
CORE_METHODS = ("full-sdpa", "full-explicit", "latent-fast", "latent-teaching")  # attention cores, one per path
MODULE_METHODS = ("mha-module", "latent-module")  # whole modules (projections included), fast paths

# Rows of (queries, keys, values, output) of each latent stage, as "n" (tokens) or "m" (latents).
_STAGE_ROWS = {
    "write": ("n", "m", "n", "m"),  # tokens query latents; each latent takes a weighted mean of token values
    "gather": ("m", "n", "n", "m"),  # latents query tokens
    "broadcast": ("n", "m", "m", "n"),  # tokens query latents and read back the output
}


@dataclass(frozen=True, kw_only=True)
class Shape:
    """The sizes every cost formula reads. Example: ``Shape(seq_len=16_384, num_latents=64, heads=4)``."""

    batch: int = 1  # B: sequences in the batch
    seq_len: int = 1  # N: tokens per sequence
    num_latents: int = 1  # M: latents (Luna's packed length l, Linformer's k, PMA's seeds); unused by full attention
    heads: int = 1  # H
    d_head: int = 64  # width of one head; the model width is D = H·d_head
    dtype: torch.dtype = torch.float32  # of the activations; softmax weights are float32 (float64 for float64)

    def __post_init__(self) -> None:
        check_int(batch=self.batch, seq_len=self.seq_len, num_latents=self.num_latents, heads=self.heads,
                  d_head=self.d_head)  # fmt: skip
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float32), got {self.dtype!r}")

    @property
    def dim(self) -> int:
        """D = heads · d_head."""
        return self.heads * self.d_head

    @property
    def itemsize(self) -> int:
        """Bytes per activation."""
        return _itemsize(self.dtype)

    @property
    def map_dtype(self) -> torch.dtype:
        """Dtype of an explicit softmax map: float32, or float64 for float64 inputs."""
        return torch.float64 if self.dtype == torch.float64 else torch.float32

    def replace(self, **changes: object) -> Shape:
        """A copy with some sizes changed (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Cost:
    """The cost of one attention computation (one stage, or a sequence of stages via :func:`total_cost`).

    Memory has one definition in the course — **the bytes an attention call must hold at its peak**: its inputs
    q, k, v, its output and, on a path that materialises them, the float32 maps (:attr:`peak_bytes`). The part the
    call creates itself (output and maps, q, k, v being its inputs) is :attr:`core_bytes`.
    """

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
        """Bytes the attention core creates and holds at its peak (output, maps): its inputs q, k, v aside."""
        return sum(self.tensors.values())

    @property
    def peak_bytes(self) -> int:
        """The memory the attention call must hold: q, k, v + output (+ float32 maps where kept), at its peak."""
        return sum(self.inputs.values()) + self.core_bytes

    def totals(self, whole_module: bool) -> tuple[int, int]:
        """(FLOPs, bytes): the whole module's FLOPs (``flops``) or the core's, and in both cases the memory the
        attention call must hold (``peak_bytes``; the projections' weights and the module's own input are not
        counted)."""
        return (self.flops if whole_module else self.core_flops), self.peak_bytes


def _check_shape(shape: object) -> None:
    if not isinstance(shape, Shape):
        raise TypeError(f"shape must be a lattn.complexity.Shape, e.g. Shape(seq_len=1024), got {shape!r}")


def _check_path(path: str) -> None:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")


def _itemsize(dtype: torch.dtype) -> int:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float32), got {dtype!r}")
    return torch.empty((), dtype=dtype).element_size()


def matrix_bytes(rows: int, cols: int, *, batch: int = 1, heads: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of a (batch, heads, rows, cols) tensor. Example: one float32 16,384×16,384 map is 1 GiB."""
    check_int(rows=rows, cols=cols, batch=batch, heads=heads)
    return batch * heads * rows * cols * _itemsize(dtype)


def attention_cost(
    nq: int, nk: int, nv: int, nout: int, shape: Shape, *, explicit: bool, keep_map: bool, label: str = ""
) -> Cost:
    """One attention with nq query rows, nk key rows, nv value rows, nout output rows (the map is nq×nk); batch,
    heads, d_head and dtype from ``shape``.

    Either nv = nk (the usual weighted sum of values, out rows = nq) or nv = nq (the write stage: the map is
    transposed, each of the nk latents takes a weighted mean over the nq tokens, out rows = nk). ``explicit``: the
    float32 map is materialised; ``keep_map``: it is returned, so it outlives the stage.
    """
    B, H, d_head, D, s = shape.batch, shape.heads, shape.d_head, shape.dim, shape.itemsize
    core = 2 * B * H * nq * nk * d_head  # scores (B, H, nq, nk)
    core += 2 * B * H * nq * nk * d_head  # weighted sum: (nq×nk) map times (nk or nq)×d_head values
    proj = 2 * B * D * D * (nq + nk + nv + nout)  # to_q, to_k, to_v, to_out
    inputs = {f"{label}{name} (B,H,{rows},d_head)": B * rows * D * s for name, rows in zip("qkv", (nq, nk, nv))}
    weights = f"{label}weights (B,H,{nq},{nk}) {str(shape.map_dtype).removeprefix('torch.')}"
    tensors = {weights: matrix_bytes(nq, nk, batch=B, heads=H, dtype=shape.map_dtype)} if explicit else {}
    tensors[f"{label}output (B,H,{nout},d_head)"] = B * nout * D * s
    return Cost(core, proj, inputs, tensors, (weights,) if keep_map else ())


def full_attention_cost(shape: Shape, *, path: str = "fast") -> Cost:
    """Multi-head self-attention over ``shape.seq_len`` tokens (:class:`~lattn.attention.MultiHeadAttention`).

    core = 4·B·H·N²·d_head (two N×N matmuls per head), projections = 8·B·N·D² (four D×D layers on N rows).
    The teaching path must hold the (B, H, N, N) float32 weights; the fused fast path streams over keys and never
    stores them, so its memory is O(N·D).
    """
    _check_shape(shape)
    _check_path(path)
    n, teaching = shape.seq_len, path == "teaching"
    return attention_cost(n, n, n, n, shape, explicit=teaching, keep_map=teaching)


def latent_stage_cost(stage: str, shape: Shape, *, path: str = "fast") -> Cost:
    """One stage of :class:`~lattn.latent.LatentAttention` between N tokens and M latents.

    Every stage is an N×M cross-attention: core = 4·B·H·N·M·d_head = 4·B·N·M·D, projections = 4·B·D²·(N + M).
    Only the teaching path holds a (B, H, N, M) float32 map: gather and broadcast use the fused kernel on the fast
    path, and the write stage streams its tokens in blocks (a block's map, not the whole one, exists at a time).
    """
    (stage,) = check_stages(stage)
    _check_shape(shape)
    _check_path(path)
    rows = [shape.seq_len if r == "n" else shape.num_latents for r in _STAGE_ROWS[stage]]
    teaching = path == "teaching"
    return attention_cost(*rows, shape, explicit=teaching, keep_map=teaching, label=f"{stage}: ")


def latent_attention_cost(shape: Shape, *, path: str = "fast", stages: tuple[str, ...] = STAGES) -> dict[str, Cost]:
    """Per-stage costs of :class:`~lattn.latent.LatentAttention`; combine them with :func:`total_cost`."""
    return {s: latent_stage_cost(s, shape, path=path) for s in check_stages(stages)}


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


def crossover_n(shape: Shape, *, whole_module: bool = False, stages: tuple[str, ...] = STAGES) -> int:
    """Smallest N at which latent attention needs fewer FLOPs than full attention (``shape.seq_len`` is ignored).

    Attention cores: 4·N²·D vs 3·4·N·M·D, so N > 3M. Whole modules also pay 12·N·D² + 12·M·D² for the latent
    projections vs 8·N·D² for full attention, which moves the crossover up. Example: M=64, D=256 → 193 (cores),
    540 (whole modules).
    """
    _check_shape(shape)
    stages = check_stages(stages)

    def latent_wins(n: int) -> bool:
        at = shape.replace(seq_len=n)
        full, latent = full_attention_cost(at), total_cost(latent_attention_cost(at, stages=stages))
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


def method_cost(method: str, shape: Shape) -> Cost:
    """The :class:`Cost` of one compared method (a name in :data:`CORE_METHODS` or :data:`MODULE_METHODS`).

    Its ``peak_bytes`` is the memory the attention call must hold (q, k, v, output, kept maps) — for latent
    attention at the stage where that is largest; ``core_flops``/``flops`` the core's and the whole module's FLOPs.
    """
    _check_method(method)
    path = "teaching" if method.endswith(("explicit", "teaching")) else "fast"
    if method.startswith(("full", "mha")):
        return full_attention_cost(shape, path=path)
    return total_cost(latent_attention_cost(shape, path=path))


def created_bytes(method: str, shape: Shape) -> int:
    """Bytes one call of ``method`` creates and holds at its peak beyond its inputs q, k, v — its output and the
    maps it keeps (for latent attention at the stage where that is largest): what :func:`peak_bytes` can measure
    on an attention core whose q, k, v are views of its input."""
    _check_method(method)
    path = "teaching" if method.endswith(("explicit", "teaching")) else "fast"
    if method.startswith(("full", "mha")):
        return full_attention_cost(shape, path=path).core_bytes
    return total_cost(latent_attention_cost(shape, path=path), core_only=True).core_bytes


def _check_method(method: str) -> None:
    if method not in CORE_METHODS and method not in MODULE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {[*CORE_METHODS, *MODULE_METHODS]}")


def cost_curves(shape: Shape, ns: Sequence[int], *, whole_module: bool = False) -> dict[str, list[int]]:
    """FLOPs and bytes against N (``shape`` at each N of ``ns``): ``"full"`` and ``"latent"`` are the fast paths'
    FLOPs (of the whole modules or of the cores alone), each name of :data:`CORE_METHODS` the memory its attention
    call must hold (q, k, v, output, kept maps: the same for both scopes)."""
    curves: dict[str, list[int]] = {key: [] for key in ("full", "latent", *CORE_METHODS)}
    for n in ns:
        at = shape.replace(seq_len=int(n))
        for method in CORE_METHODS:
            flops, nbytes = method_cost(method, at).totals(whole_module)
            curves[method].append(nbytes)
            if method in ("full-sdpa", "latent-fast"):
                curves[method.split("-")[0]].append(flops)
    return curves


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB'; binary units, three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
