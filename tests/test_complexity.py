"""lattn.complexity: the FLOP formulas equal torch's FlopCounterMode on the real modules (core and whole module,
fast and teaching paths, several shapes); the memory formulas are a lower bound of the bytes PyTorch really holds
and grow as N² (full, explicit) or N (fused, latent); hand-derived cases; Shape; bad input; the benchmark's
module ratios; torch.utils.benchmark never imported."""

import dataclasses
import math
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lattn.attention import MultiHeadAttention, fused_attention, merge_heads, split_heads
from lattn.bench.complexity import module_ratios
from lattn.complexity import (
    PATHS,
    Cost,
    Shape,
    count_flops,
    created_bytes,
    crossover_n,
    full_attention_cost,
    human_bytes,
    latent_attention_cost,
    latent_stage_cost,
    matrix_bytes,
    measured_flops,
    method_cost,
    peak_bytes,
    total_cost,
    without_projections,
)
from lattn.latent import STAGES, LatentAttention

SHAPES = [  # (B, N, H, dh, M)
    (2, 37, 4, 8, 5),
    (1, 64, 2, 16, 3),
    (3, 20, 1, 12, 7),
]


def shape_of(B, N, H, dh, M, **more) -> Shape:
    """The Shape of one of SHAPES' tuples."""
    return Shape(batch=B, seq_len=N, num_latents=M, heads=H, d_head=dh, **more)


SUBSETS = [("write",), ("gather",), ("broadcast",), ("gather", "broadcast"), ("write", "gather"), STAGES]


def stock_counts(fn) -> dict[str, int]:
    """Per-operator FLOPs of ``fn()`` from torch's unmodified counter."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("path", PATHS)
def test_full_attention_flops_match_counter(shape, path):
    B, N, H, dh, _ = shape
    torch.manual_seed(0)
    mha, x = MultiHeadAttention(H * dh, H), torch.randn(B, N, H * dh)
    mask = torch.rand(B, N) > 0.2
    cost = full_attention_cost(shape_of(*shape), path=path)
    got = measured_flops(mha, x, mask=mask, return_maps=path == "teaching")
    assert got == {"core": cost.core_flops, "projections": cost.projection_flops, "total": cost.flops}
    assert cost.core_flops == 4 * B * H * N * N * dh  # hand formula: two N×N matmuls per head
    assert cost.projection_flops == 8 * B * N * (H * dh) ** 2  # four D×D layers on N rows


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stages", SUBSETS)
@pytest.mark.parametrize("path", PATHS)
def test_latent_flops_match_counter(shape, stages, path):
    B, N, H, dh, M = shape
    torch.manual_seed(1)
    la, x = LatentAttention(H * dh, M, H, stages=stages), torch.randn(B, N, H * dh)
    cost = total_cost(latent_attention_cost(shape_of(*shape), path=path, stages=stages))
    got = measured_flops(la, x, return_maps=path == "teaching")
    assert got == {"core": cost.core_flops, "projections": cost.projection_flops, "total": cost.flops}


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_teaching_path_matches_the_stock_counter_operator_by_operator(shape):
    """Independent of our CPU-SDPA mapping: torch's own counter, its own matmul formulas, split by operator."""
    B, N, H, dh, M = shape
    torch.manual_seed(2)
    x = torch.randn(B, N, H * dh)
    la = LatentAttention(H * dh, M, H)
    counts = stock_counts(lambda: la(x, return_maps=True))
    cost = total_cost(latent_attention_cost(shape_of(*shape), path="teaching"))
    assert counts["aten.bmm"] == cost.core_flops  # every einsum / weights @ v of the three stages
    assert counts.get("aten.addmm", 0) + counts.get("aten.mm", 0) == cost.projection_flops  # the 12 Linear layers
    mha = MultiHeadAttention(H * dh, H)
    counts = stock_counts(lambda: mha(x, return_maps=True))
    assert counts["aten.bmm"] == full_attention_cost(shape_of(*shape)).core_flops


def test_stock_counter_misses_the_cpu_fused_kernel_ours_does_not():
    """Why lattn.complexity.flop_counter exists: on the CPU, torch's counter sees no FLOPs in fused attention."""
    q, k, v = (torch.randn(1, 2, 16, 8) for _ in range(3))
    stock = sum(stock_counts(lambda: fused_attention(q, k, v)).values())
    ours = count_flops(lambda: fused_attention(q, k, v))
    assert ours == 4 * 2 * 16 * 16 * 8
    assert stock in (0, ours)  # 0 in torch 2.13; equal if a later torch learns the CPU kernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_flops_do_not_depend_on_dtype_or_mask(dtype):
    B, N, H, dh, M = 2, 24, 2, 8, 4
    torch.manual_seed(3)
    la = LatentAttention(H * dh, M, H).to(dtype)
    x, mask = torch.randn(B, N, H * dh, dtype=dtype), torch.rand(B, N) > 0.5
    cost = total_cost(latent_attention_cost(shape_of(B, N, H, dh, M, dtype=dtype)))
    assert count_flops(lambda: la(x, mask=mask)) == cost.flops


def test_without_projections_is_the_attention_core():
    torch.manual_seed(4)
    mha, x = MultiHeadAttention(16, 2), torch.randn(2, 9, 16)
    core = without_projections(mha)
    q = split_heads(x, 2)  # identity projections: q = k = v = the tokens, split into heads
    assert torch.allclose(core(x), merge_heads(fused_attention(q, q, q)), atol=1e-6)
    assert isinstance(mha.to_q, torch.nn.Linear)  # the original is untouched
    with pytest.raises(TypeError, match=r"nn\.Module"):
        without_projections(lambda t: t)
    with pytest.raises(ValueError, match="square Linear"):
        without_projections(torch.nn.Sequential(torch.nn.Linear(4, 3)))


def test_stage_formulas_by_hand():
    """Hand-derived: B=1, H=2, dh=4 (D=8), N=10, M=3. Each stage: two N×M matmuls per head and four Linear layers.

    core = 2 matmuls · 2 FLOPs · H·N·M·dh = 4·2·10·3·4 = 960; projections = 2·D²·(2N + 2M) = 2·64·26 = 3328.
    Write memory (float32): q, v = 10·8·4 = 320 B each; k, output = 3·8·4 = 96 B each; map 2·10·3·4 = 240 B.
    """
    shape = Shape(seq_len=10, num_latents=3, heads=2, d_head=4)
    for stage in STAGES:
        cost = latent_stage_cost(stage, shape, path="fast")
        assert (cost.core_flops, cost.projection_flops) == (960, 3328)
    write = latent_stage_cost("write", shape, path="teaching")
    assert sorted(write.inputs.values()) == [96, 320, 320]  # k from the latents; q, v from the tokens
    assert sorted(write.tensors.values()) == [96, 240]  # the update of the 3 latents; the map
    assert (write.core_bytes, write.peak_bytes) == (336, 1072)
    # the maps exist only on the teaching path (the fast path fuses gather and broadcast, streams write)
    for stage in STAGES:
        assert latent_stage_cost(stage, shape).peak_bytes == 1072 - 240


def test_total_cost_adds_flops_and_finds_the_peak():
    """N=100, M=4, H=2, dh=8 (D=16), float32: each map (2·100·4 floats) is 3,200 B; a stage holding its map peaks
    at 16,512 B (e.g. broadcast: q 6,400 + k 256 + v 256 + map 3,200 + output 6,400), 13,312 B without it. The fast
    path holds no map, so the module peaks at 13,312 B; the teaching path returns all three maps, so during the
    broadcast stage the write and gather maps are still held: 16,512 + 6,400 = 22,912 B.
    """
    shape = Shape(seq_len=100, num_latents=4, heads=2, d_head=8)
    for path, stage_peaks, peak in (("fast", [13_312] * 3, 13_312), ("teaching", [16_512] * 3, 22_912)):
        costs = latent_attention_cost(shape, path=path)
        total = total_cost(costs)
        assert total.core_flops == sum(c.core_flops for c in costs.values())
        assert total.flops == sum(c.flops for c in costs.values())
        assert [c.peak_bytes for c in costs.values()] == stage_peaks
        assert total.peak_bytes == peak
    # the core alone (q, k, v being views of the input): the broadcast stage's token-sized output, plus the maps
    core = {path: total_cost(latent_attention_cost(shape, path=path), core_only=True) for path in PATHS}
    assert (core["fast"].core_bytes, core["teaching"].core_bytes) == (6_400, 3 * 3_200 + 6_400)
    maps = [name for name in total.tensors if "weights" in name]
    assert maps == ["write: weights (B,H,100,4) float32", "gather: weights (B,H,4,100) float32",
                    "broadcast: weights (B,H,100,4) float32"]  # fmt: skip
    assert total_cost([Cost(1, 2, {"q": 3}, {"a": 5})]) == Cost(1, 2, {"q": 3}, {"a": 5})


def test_matrix_bytes_and_half_precision():
    assert matrix_bytes(16_384, 16_384) == 2**30  # one float32 16k×16k map: 1 GiB
    assert matrix_bytes(4, 5, batch=2, heads=3, dtype=torch.bfloat16) == 2 * 3 * 4 * 5 * 2
    f32 = full_attention_cost(Shape(seq_len=64, heads=2, d_head=8), path="teaching")
    bf16 = full_attention_cost(Shape(seq_len=64, heads=2, d_head=8, dtype=torch.bfloat16), path="teaching")
    # activations halve; the softmax weights stay float32
    weights = matrix_bytes(64, 64, heads=2)
    assert bf16.peak_bytes - weights == (f32.peak_bytes - weights) // 2


def test_ratio_of_cores_is_n_over_3m():
    shape = Shape(seq_len=16_384, num_latents=64, heads=4)
    full = full_attention_cost(shape).core_flops
    latent = total_cost(latent_attention_cost(shape)).core_flops
    assert full / latent == pytest.approx(16_384 / (3 * 64))


@pytest.mark.parametrize("m,heads,d_head", [(64, 4, 64), (8, 2, 16), (1, 1, 4)])
def test_crossover_n_against_a_scan(m, heads, d_head):
    shape = Shape(num_latents=m, heads=heads, d_head=d_head)
    assert crossover_n(shape) == 3 * m + 1  # cores: 4·N²·D < 12·N·M·D ⇔ N > 3M
    assert crossover_n(shape.replace(seq_len=12_345)) == 3 * m + 1  # seq_len is ignored

    def latent_wins(n):
        at = shape.replace(seq_len=n)
        return total_cost(latent_attention_cost(at)).flops < full_attention_cost(at).flops

    n_star = crossover_n(shape, whole_module=True)
    assert latent_wins(n_star) and not latent_wins(n_star - 1)
    assert all(latent_wins(n) for n in range(n_star, n_star + 50))
    # closed form of N² − N·(D + 3M) − 3·M·D = 0
    D = heads * d_head
    assert n_star == math.floor((D + 3 * m + math.sqrt((D + 3 * m) ** 2 + 12 * m * D)) / 2) + 1
    assert crossover_n(shape, stages=("gather", "broadcast")) == 2 * m + 1


def test_peak_bytes_by_hand():
    x = torch.ones(1000)
    assert peak_bytes(lambda: x + 1) == 4000
    assert peak_bytes(lambda: (x + 1) * 2) == 8000  # x + 1 still exists while the product is made
    assert peak_bytes(lambda: x.view(10, 100).t()) == 0  # views allocate nothing
    assert peak_bytes(lambda: x.add_(0)) == 0  # nor do in-place ops
    assert peak_bytes(lambda: [x * i for i in range(3)]) == 12000  # all kept
    assert peak_bytes(lambda: [(x * i).sum() for i in range(3)]) == 4000 + 3 * 4  # products freed one by one


def _modules(dim, heads, m, stage):
    if stage == "full":
        return MultiHeadAttention(dim, heads)
    return LatentAttention(dim, m, heads, stages=STAGES if stage == "all" else (stage,))


def _cost(stage, shape, path):
    if stage == "full":
        return full_attention_cost(shape, path=path)
    if stage == "all":
        return total_cost(latent_attention_cost(shape, path=path))
    return latent_stage_cost(stage, shape, path=path)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("stage", ["full", *STAGES, "all"])
def test_memory_formula_is_a_lower_bound_of_what_pytorch_holds(stage, path, dtype):
    """Measured peak ≥ the bytes that must exist; for whole modules within 4× of it (eager PyTorch keeps a few
    temporaries more: the scores next to the weights, float32 copies of half-precision inputs, the output
    projection). The attention core alone (projections removed) holds at least ``core_bytes``."""
    torch.manual_seed(5)
    for B, N, H, dh, M in SHAPES:
        module = _modules(H * dh, H, M, stage).to(dtype)
        x = torch.randn(B, N, H * dh, dtype=dtype)
        cost = _cost(stage, shape_of(B, N, H, dh, M, dtype=dtype), path)
        teaching = path == "teaching"
        measured = peak_bytes(lambda: module(x, return_maps=teaching))  # noqa: B023
        assert cost.peak_bytes <= measured <= 4 * cost.peak_bytes, (stage, path, (B, N, H, dh, M), measured)
        core = without_projections(module)
        assert cost.core_bytes <= peak_bytes(lambda: core(x, return_maps=teaching))  # noqa: B023


@pytest.mark.parametrize(
    "stage,path,growth",
    [("full", "teaching", 4.0), ("full", "fast", 2.0), ("write", "fast", 2.0), ("write", "teaching", 2.0)],
)
def test_memory_grows_as_predicted_when_n_doubles(stage, path, growth):
    """N → 2N: the explicit N×N weights quadruple the peak; everything else (N·D, N·M) only doubles it."""
    torch.manual_seed(6)
    H, dh, M = 2, 8, 4
    module = _modules(H * dh, H, M, stage)
    peaks, costs = [], []
    for n in (512, 1024):
        x = torch.randn(1, n, H * dh)
        peaks.append(peak_bytes(lambda: module(x, return_maps=path == "teaching")))  # noqa: B023
        costs.append(_cost(stage, Shape(seq_len=n, num_latents=M, heads=H, d_head=dh), path).peak_bytes)
    assert peaks[1] / peaks[0] == pytest.approx(growth, rel=0.05)
    assert costs[1] / costs[0] == pytest.approx(growth, rel=0.05)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: full_attention_cost(Shape(seq_len=0)), ValueError, "seq_len must be an integer ≥ 1"),
        (lambda: full_attention_cost(8), TypeError, r"shape must be a lattn\.complexity\.Shape"),
        (lambda: full_attention_cost(Shape(seq_len=8, heads=2.0)), TypeError, "heads must be an integer ≥ 1"),
        (lambda: full_attention_cost(Shape(seq_len=8), path="slow"), ValueError, "path must be one of"),
        (lambda: full_attention_cost(Shape(seq_len=8, dtype=torch.int64)), TypeError, "floating torch.dtype"),
        (lambda: latent_stage_cost("read", Shape(seq_len=8, num_latents=2)), ValueError, "unknown stage"),
        (lambda: latent_stage_cost("write", 8), TypeError, r"shape must be a lattn\.complexity\.Shape"),
        (lambda: latent_attention_cost(Shape(seq_len=8, num_latents=0)), ValueError, "num_latents must be an integer"),
        (lambda: latent_attention_cost(Shape(seq_len=8), stages=("broadcast", "write")), ValueError, "order"),
        (lambda: total_cost([]), ValueError, "at least one"),
        (lambda: crossover_n(Shape(num_latents=0)), ValueError, "num_latents must be"),
        (lambda: crossover_n(64), TypeError, r"shape must be a lattn\.complexity\.Shape"),
        (lambda: matrix_bytes(-1, 3), ValueError, "rows"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fast_write_stage_streams_blocks_with_the_same_result_and_flops(monkeypatch):
    """The fast path's write stage walks the tokens in blocks (perf: no whole (B, H, N, M) map); it must give the
    teaching path's answer and count exactly the formula's FLOPs however the tokens are split."""
    import lattn.latent as latent

    class Shapes(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.seen.extend(
                tuple(t.shape) for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)
            )
            return out

    B, N, H, dh, M = 2, 50, 2, 8, 3
    torch.manual_seed(7)
    la = LatentAttention(H * dh, M, H, stages=("write",))
    x, mask = torch.randn(B, N, H * dh), torch.rand(B, N) > 0.3
    teaching, _ = la(x, mask=mask, return_maps=True)
    monkeypatch.setattr(latent, "_WRITE_BLOCK_BYTES", B * H * M * 4 * 7)  # ≤ 7 tokens per block: 8 blocks of 6-7
    rec = Shapes()
    rec.seen = []
    with rec:
        fast = la(x, mask=mask)
    diff = (fast - teaching).abs().max()
    assert diff < 1e-5, f"blocked fast path vs teaching path: max diff {diff:.2e}"
    assert (B, H, 6, M) in rec.seen and (B, H, 7, M) in rec.seen and (B, H, N, M) not in rec.seen
    cost = latent_stage_cost("write", shape_of(B, N, H, dh, M))
    assert count_flops(lambda: la(x, mask=mask)) == cost.flops


def test_shape_defaults_derived_sizes_and_replace():
    shape = Shape()
    assert (shape.batch, shape.seq_len, shape.num_latents, shape.heads, shape.d_head) == (1, 1, 1, 1, 64)
    assert shape.dtype == torch.float32
    shape = Shape(batch=2, seq_len=100, num_latents=8, heads=4, d_head=16)
    assert (shape.dim, shape.itemsize, shape.map_dtype) == (64, 4, torch.float32)
    assert Shape(dtype=torch.bfloat16).itemsize == 2  # activations halve; the map stays float32
    assert Shape(dtype=torch.bfloat16).map_dtype == torch.float32
    assert (Shape(dtype=torch.float64).itemsize, Shape(dtype=torch.float64).map_dtype) == (8, torch.float64)
    longer = shape.replace(seq_len=200)
    assert longer == Shape(batch=2, seq_len=200, num_latents=8, heads=4, d_head=16)
    assert shape.seq_len == 100  # a copy: the original is unchanged (and frozen)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shape.seq_len = 5
    with pytest.raises(TypeError):
        Shape(1, 100)  # keyword-only
    with pytest.raises(ValueError, match="heads must be an integer ≥ 1"):
        shape.replace(heads=0)  # replace validates again


@pytest.mark.parametrize("field", ["batch", "seq_len", "num_latents", "heads", "d_head"])
@pytest.mark.parametrize("value,error", [(True, TypeError), (2.0, TypeError), ("4", TypeError), (0, ValueError)])
def test_shape_rejects_bad_sizes_by_name(field, value, error):
    with pytest.raises(error, match=rf"^{field} must be an integer ≥ 1"):
        Shape(**{field: value})


def test_lattn_never_imports_torch_benchmark():
    """torch.utils.benchmark is never imported, not even to time something (on CUDA builds without a GPU its import
    logs a warning into the notebook)."""
    code = (
        "import sys, lattn.complexity, lattn.bench.complexity, lattn.bench\n"
        "lattn.bench.median_seconds(lambda: None, min_run_time=0.01)\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch.utils.benchmark')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_module_ratios_of_a_synthetic_run():
    """Whole modules at three N (flops from the formulas), plus points module_ratios must ignore: a skipped one,
    an N where only one module ran, core rows of another section."""
    ratios, rows = {1024: 2.0, 4096: 5.0, 16_384: 12.5}, []
    for n, ratio in ratios.items():
        for method, seconds in (("mha-module", ratio * 0.01), ("latent-module", 0.01)):
            flops = method_cost(method, Shape(seq_len=n, num_latents=64, heads=4)).flops
            rows.append({"section": "module", "method": method, "n": n, "seconds": seconds, "flops": flops})
    rows += [
        {"section": "module", "method": "mha-module", "n": 32_768, "seconds": None, "flops": 1},  # skipped
        {"section": "module", "method": "latent-module", "n": 32_768, "seconds": 0.5, "flops": 1},
        {"section": "module", "method": "latent-module", "n": 512, "seconds": 0.5, "flops": 1},  # no mha at 512
        {"section": "n-grid", "method": "mha-module", "n": 512, "seconds": 0.5, "flops": 1},  # not a module row
    ]
    got = module_ratios(rows)
    assert list(got) == [1024, 4096, 16_384]
    for n, ratio in ratios.items():
        assert got[n]["time"] == pytest.approx(ratio)
        shape = Shape(seq_len=n, num_latents=64, heads=4)
        latent = total_cost(latent_attention_cost(shape)).flops
        assert got[n]["flops"] == pytest.approx(full_attention_cost(shape).flops / latent)
    assert module_ratios([]) == {}


def test_one_definition_of_memory_q_k_v_output_and_kept_maps():
    """What an attention call must hold, by hand (B = 1, H = 4 heads of 64, D = 256, float32, N = 16,384, M = 64):
    fused full attention q, k, v, output = 4·N·D·4 B = 64 MiB; the latent fast path's largest stage holds two N-row
    and two M-row tensors = (2N + 2M)·D·4 B = 32.125 MiB; the same for both FLOP scopes of the explorer."""
    shape = Shape(seq_len=16_384, num_latents=64, heads=4)
    assert method_cost("full-sdpa", shape).peak_bytes == 4 * 16_384 * 256 * 4 == 64 * 2**20
    assert method_cost("latent-fast", shape).peak_bytes == (2 * 16_384 + 2 * 64) * 256 * 4
    assert method_cost("full-sdpa", shape).totals(True)[1] == method_cost("full-sdpa", shape).totals(False)[1]
    # what the call creates on top of its inputs (what the tracker sees on a core): the output, and the maps
    assert created_bytes("full-sdpa", shape) == 16 * 2**20
    assert created_bytes("full-explicit", shape) == 16 * 2**20 + 4 * 16_384**2 * 4
    assert created_bytes("latent-fast", shape) == 16 * 2**20  # broadcast's (N, D) output, the largest
    assert human_bytes(method_cost("latent-fast", shape).peak_bytes) == "32.1 MiB"
