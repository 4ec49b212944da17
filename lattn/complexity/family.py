"""Cost formulas of the latent-attention family (:mod:`lattn.family`), built on :mod:`lattn.complexity.costs`.

Same conventions: matmul FLOPs only, 2 per multiply-add, exactly what :func:`~lattn.complexity.flop_counter` counts
(checked in tests/test_family_costs.py against the real modules, fast and teaching paths). Each attention inside a
module is priced as a gather stage of nq latents over nk tokens (core = scores + weighted sums; projections = q, k,
v, out); the feed-forward MLPs and Slot Attention's GRU are Costs of their own whose FLOPs count as
projection_flops (all other nn.Linear-type work) and whose hidden activations are not listed in ``tensors``.
:func:`~lattn.complexity.total_cost` adds the parts up, so a module's peak_bytes is that of its largest attention.
D = heads·d_head; the FLOPs depend on D only, not on how it is split into heads — except Luna causal's teaching
path, whose N×N×l products are per head, and Nyströmformer's m × m pseudo-inverse, computed per head.

Every formula takes the two lengths of its mechanism (N and its M, l, k or seeds) and ``**sizes``: the other
fields of :class:`~lattn.complexity.Shape` (``batch``, ``heads``, ``d_head``, ``dtype``), validated there.
"""

from __future__ import annotations

from typing import Any

from ..checks import check_int
from .costs import Cost, Shape, _check_path, latent_stage_cost, matrix_bytes, total_cost

__all__ = [
    "isab_cost",
    "linformer_cost",
    "luna_causal_cost",
    "luna_cost",
    "mab_cost",
    "nystrom_cost",
    "perceiver_ar_cost",
    "perceiver_cost",
    "perceiver_io_cost",
    "pma_cost",
    "slot_attention_cost",
]


def _shape(sizes: dict[str, Any], **lengths: int) -> Shape:
    """The Shape of a family formula: its two lengths (tokens first, then latents), checked under their own names."""
    check_int(**lengths)
    n, m = lengths.values()
    return Shape(seq_len=n, num_latents=m, **sizes)


def _attention(nq: int, nk: int, shape: Shape, path: str) -> Cost:
    """One multi-head cross-attention (nq queries over nk keys/values) of a family module, priced as a gather
    stage with nq latents reading nk tokens (batch, heads, d_head and dtype from ``shape``)."""
    return latent_stage_cost("gather", shape.replace(seq_len=nk, num_latents=nq), path=path)


def _mlp(rows: int, shape: Shape, mult: int) -> Cost:
    """A D → mult·D → D MLP on ``rows`` rows: two matmuls of 2·rows·D·mult·D FLOPs each."""
    check_int(mult=mult)
    return Cost(core_flops=0, projection_flops=4 * shape.batch * rows * mult * shape.dim**2)


def _latent_blocks(m: int, depth: int, ff_mult: int, shape: Shape, path: str) -> list[Cost]:
    """``depth`` pre-norm latent self-attention blocks (MHA + MLP) over m latents."""
    check_int(depth=depth, minimum=0)
    return [_attention(m, m, shape, path), _mlp(m, shape, ff_mult)] * depth


def perceiver_cost(n: int, m: int, *, depth: int = 1, ff_mult: int = 4, path: str = "fast", **sizes: Any) -> Cost:
    """:class:`~lattn.family.Perceiver`: gather (m latents over n tokens) + MLP + depth latent blocks.

    core = 4·B·D·(N·M + depth·M²): the O(N·M + L·M²) of the paper. Example: N=50,176 pixels, M=512 → the gather
    is 98× cheaper than one N×N self-attention.
    """
    shape = _shape(sizes, n=n, m=m)
    parts = [_attention(m, n, shape, path), _mlp(m, shape, ff_mult)]
    return total_cost(parts + _latent_blocks(m, depth, ff_mult, shape, path))


def perceiver_io_cost(
    n: int, m: int, *, num_outputs: int | None = None, depth: int = 1, ff_mult: int = 4, path: str = "fast",
    **sizes: Any,
) -> Cost:  # fmt: skip
    """:class:`~lattn.family.PerceiverIO`: the encoder + O output queries reading the m latents (+ MLP).

    ``num_outputs=None`` means the tokens are the queries (O = N). Adds 4·B·O·M·D to the core.
    """
    o = n if num_outputs is None else num_outputs
    check_int(num_outputs=o)
    shape = _shape(sizes, n=n, m=m)
    encoder = perceiver_cost(n, m, depth=depth, ff_mult=ff_mult, path=path, **sizes)
    return total_cost([encoder, _attention(o, m, shape, path), _mlp(o, shape, ff_mult)])


def perceiver_ar_cost(n: int, m: int, *, depth: int = 1, ff_mult: int = 4, path: str = "fast", **sizes: Any) -> Cost:
    """:class:`~lattn.family.PerceiverAR`: min(n, m) latents gather over all n tokens under a block-causal mask.

    The mask zeroes about M²/2 of the M×N scores, but the kernels still compute the full M×N rectangle, and so do
    the formula and the counter.
    """
    shape = _shape(sizes, n=n, m=m)
    mq = min(n, m)
    parts = [_attention(mq, n, shape, path), _mlp(mq, shape, ff_mult)]
    return total_cost(parts + _latent_blocks(mq, depth, ff_mult, shape, path))


def mab_cost(nq: int, nk: int, *, feedforward: bool = True, ff_mult: int = 4, path: str = "fast", **sizes: Any) -> Cost:
    """:class:`~lattn.family.MAB` (Set Transformer): nq queries attend to nk elements, + the row-wise MLP."""
    shape = _shape(sizes, nk=nk, nq=nq)
    parts = [_attention(nq, nk, shape, path)]
    return total_cost(parts + ([_mlp(nq, shape, ff_mult)] if feedforward else []))


def isab_cost(n: int, m: int, *, feedforward: bool = True, path: str = "fast", **sizes: Any) -> Cost:
    """:class:`~lattn.family.ISAB`: MAB(I, X) then MAB(X, H): core 8·B·N·M·D, linear in the set size N."""
    gather = mab_cost(m, n, feedforward=feedforward, path=path, **sizes)  # H = MAB(I, X)
    return total_cost([gather, mab_cost(n, m, feedforward=feedforward, path=path, **sizes)])  # + MAB(X, H)


def pma_cost(n: int, k: int, *, path: str = "fast", **sizes: Any) -> Cost:
    """:class:`~lattn.family.PMA`: the row-wise MLP (×4) on the n elements, then MAB(S, ·) with k seeds."""
    shape = _shape(sizes, n=n, k=k)
    return total_cost([_mlp(n, shape, 4), mab_cost(k, n, path=path, **sizes)])


def luna_cost(n: int, l: int, *, path: str = "fast", **sizes: Any) -> Cost:  # noqa: E741 — the paper's l
    """:class:`~lattn.family.Luna`: pack (l over n) + unpack (n over l): core 8·B·N·l·D."""
    shape = _shape(sizes, n=n, l=l)
    return total_cost([_attention(l, n, shape, path), _attention(n, l, shape, path)])


def luna_causal_cost(n: int, l: int, *, path: str = "fast", **sizes: Any) -> Cost:  # noqa: E741 — the paper's l
    """:class:`~lattn.family.LunaCausal`: projections 2·B·D²·(5N + l) (packing keys, q, k, v, out; packing queries).

    fast path (running sums): core 6·B·N·l·D — packing scores, logits and read-out, each N·l·D multiply-adds; the
    outer products φ_j ⊗ k_j, φ_j ⊗ v_j and the cumulative sums are elementwise (N·l·D each, not counted), and
    they are the memory: two (B, H, N, l, d_head) running sums.
    teaching path (explicit N×N): core 2·B·N·l·D + 4·B·N²·D + 4·B·H·N²·l — quadratic, as it shows every pair.
    """
    shape = _shape(sizes, n=n, l=l)
    _check_path(path)
    B, H, D, s = shape.batch, shape.heads, shape.dim, shape.itemsize
    proj = 2 * B * D * D * (5 * n + l)
    inputs = {"q, k, v (B,H,N,d_head)": 3 * B * n * D * s}
    tensors = {f"packing weights (B,H,N,{l})": B * H * n * l * s}
    if path == "fast":
        core = 6 * B * n * l * D
        tensors[f"running sums 2×(B,H,N,{l},d_head)"] = 2 * B * n * l * D * s
    else:
        core = 2 * B * n * l * D + 4 * B * n * n * D + 4 * B * H * n * n * l
        tensors["scores and effective map 2×(B,H,N,N)"] = 2 * matrix_bytes(n, n, batch=B, heads=H, dtype=shape.dtype)
    tensors["output (B,H,N,d_head)"] = B * n * D * s
    return Cost(core_flops=core, projection_flops=proj, inputs=inputs, tensors=tensors)


def slot_attention_cost(n: int, m: int, *, iters: int = 3, mlp_mult: int = 2, dim: int = 64, **sizes: Any) -> Cost:
    """:class:`~lattn.family.SlotAttention` (one head of width ``dim``): k, v of the inputs once, then per round
    the slots' queries, the N×M map and the weighted means (core 4·B·N·M·D), a GRU (12·B·M·D²) and the MLP.

    The map is always explicit (softmax over slots, renormalised over inputs: no fused kernel), so one path;
    ``sizes``: ``batch`` and ``dtype``.
    """
    check_int(iters=iters)
    shape = _shape({**sizes, "d_head": dim}, n=n, m=m)
    B, s = shape.batch, shape.itemsize
    inputs = Cost(core_flops=0, projection_flops=2 * 2 * B * n * dim * dim)  # to_k, to_v
    one_round = Cost(
        core_flops=4 * B * n * m * dim,  # logits k·qᵀ and the weighted means
        projection_flops=2 * B * m * dim * dim,  # to_q
        inputs={"k, v (B,N,D)": 2 * B * n * dim * s, "q (B,M,D)": B * m * dim * s},
        tensors={f"weights (B,N,{m}) float32": matrix_bytes(n, m, batch=B), "updates (B,M,D)": B * m * dim * s},
    )
    gru = Cost(core_flops=0, projection_flops=2 * 2 * B * m * dim * 3 * dim)  # input and hidden matmuls, 3 gates
    return total_cost([inputs] + [one_round, gru, _mlp(m, shape, mlp_mult)] * iters)


def linformer_cost(n: int, k: int, *, path: str = "fast", **sizes: Any) -> Cost:
    """:class:`~lattn.family.Linformer`: q, k, v, out on N rows (8·B·N·D²); core = the two sequence projections
    E·K, F·V (4·B·k·N·D) + attention over k projected keys (4·B·N·k·D): 8·B·N·k·D, linear in N."""
    shape = _shape(sizes, n=n, k=k)
    _check_path(path)
    B, H, D, s = shape.batch, shape.heads, shape.dim, shape.itemsize
    inputs = {"q, k, v (B,H,N,d_head)": 3 * B * n * D * s}
    tensors = {f"projected k, v (B,H,{k},d_head)": 2 * B * k * D * s}
    if path == "teaching":
        tensors[f"weights (B,H,N,{k}) float32"] = matrix_bytes(n, k, batch=B, heads=H)
    tensors["output (B,H,N,d_head)"] = B * n * D * s
    return Cost(core_flops=8 * B * n * k * D, projection_flops=8 * B * n * D * D, inputs=inputs, tensors=tensors)


def nystrom_cost(n: int, m: int, *, iterations: int = 6, path: str = "fast", **sizes: Any) -> Cost:
    """:class:`~lattn.family.Nystromformer` with m landmarks (m ≥ N: N landmarks): O(N·m + m³).

    core = 12·B·N·m·D + 4·B·m²·D + 8·T·B·H·m³: the segment means Q̃, K̃ (4·B·N·m·D), the gather B̃·V and the
    broadcast F̃·(Z·B̃V) (4·B·N·m·D each), the landmark kernel's scores and Z·(B̃V) (2·B·m²·D each) and T
    pseudo-inverse steps of four m × m matmuls per head. Projections q, k, v, out: 8·B·N·D². The teaching path
    also forms the N×N map F̃·Z·B̃ it returns: + 2·B·H·N·m² + 2·B·H·N²·m. Example: N = 4096, m = 64, D = 256,
    H = 4: core ≈ 0.86 GFLOPs against full attention's 17.2 GFLOPs.
    """
    check_int(iterations=iterations, minimum=0)
    shape = _shape(sizes, n=n, m=m)
    _check_path(path)
    m = min(n, m)
    B, H, D, s = shape.batch, shape.heads, shape.dim, shape.itemsize
    core = 12 * B * n * m * D + 4 * B * m * m * D + 8 * iterations * B * H * m**3
    inputs = {"q, k, v (B,H,N,d_head)": 3 * B * n * D * s}
    tensors = {
        f"landmarks Q̃, K̃ 2×(B,H,{m},d_head)": 2 * B * m * D * s,
        f"kernel, Z 2×(B,H,{m},{m})": 2 * matrix_bytes(m, m, batch=B, heads=H, dtype=shape.map_dtype),
        f"B̃·V (B,H,{m},d_head)": B * m * D * s,
    }
    if path == "teaching":
        core += 2 * B * H * n * m * m + 2 * B * H * n * n * m
        tensors[f"F̃, B̃ 2×(B,H,N,{m})"] = 2 * matrix_bytes(n, m, batch=B, heads=H, dtype=shape.map_dtype)
        tensors["approximated map (B,H,N,N)"] = matrix_bytes(n, n, batch=B, heads=H, dtype=shape.map_dtype)
    tensors["output (B,H,N,d_head)"] = B * n * D * s
    return Cost(core_flops=core, projection_flops=8 * B * n * D * D, inputs=inputs, tensors=tensors)
