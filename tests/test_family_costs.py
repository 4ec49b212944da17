"""lattn.family costs and comparison: FLOP formulas = torch's counter, fast = teaching path, gradcheck, the table."""

import dataclasses

import pytest
import torch

from lattn import complexity as cx
from lattn.family import (
    ISAB,
    Linformer,
    Luna,
    LunaCausal,
    Nystromformer,
    Perceiver,
    PerceiverAR,
    PerceiverIO,
    SlotAttention,
)
from lattn.family.compare import MECHANISMS, Sizes, comparison_table, future_leak, leak_profile

SHAPES = [Sizes(dim=8, heads=2, num_latents=3, seq_len=7), Sizes(dim=12, heads=3, num_latents=5, seq_len=4)]


@pytest.mark.parametrize("sizes", SHAPES, ids=["N>M", "N<M"])
@pytest.mark.parametrize("key", list(MECHANISMS))
def test_flop_formula_equals_counter_on_both_paths(key, sizes):
    mech = MECHANISMS[key]
    module = mech.build(sizes)
    B, N = 2, sizes.seq_len
    x = torch.randn(B, N, sizes.dim)
    fast = cx.count_flops(lambda: mech.run(module, x, return_maps=False))
    teaching = cx.count_flops(lambda: mech.run(module, x, return_maps=True))
    assert fast == mech.cost(N, sizes.num_latents, sizes, batch=B).flops, "fast path"
    if key in ("luna_causal", "nystrom"):  # the members whose teaching path does more work (explicit N×N)
        sz = {"batch": B, "heads": sizes.heads, "d_head": sizes.d_head}
        price = cx.luna_causal_cost if key == "luna_causal" else cx.nystrom_cost
        assert teaching == price(N, sizes.num_latents, path="teaching", **sz).flops > fast
    else:
        assert teaching == fast


@pytest.mark.parametrize(
    "module, price",
    [
        (Luna(8, 3, heads=2), lambda p: cx.luna_cost(7, 3, batch=2, heads=2, d_head=4, path=p)),
        (LunaCausal(8, 3, heads=2), lambda p: cx.luna_causal_cost(7, 3, batch=2, heads=2, d_head=4, path=p)),
        (Linformer(8, 7, 3, heads=2), lambda p: cx.linformer_cost(7, 3, batch=2, heads=2, d_head=4, path=p)),
        (Nystromformer(8, 3, heads=2), lambda p: cx.nystrom_cost(7, 3, batch=2, heads=2, d_head=4, path=p)),
        (
            ISAB(8, 3, heads=2, feedforward=False),
            lambda p: cx.isab_cost(7, 3, feedforward=False, batch=2, heads=2, d_head=4, path=p),
        ),
    ],
    ids=["luna", "luna_causal", "linformer", "nystrom", "isab"],
)
def test_core_and_projection_flops_separately(module, price):
    x = torch.randn(2, 7, 8)
    for path in ("fast", "teaching"):
        counted = cx.measured_flops(module, x, return_maps=path == "teaching")
        cost = price(path)
        assert (counted["core"], counted["projections"]) == (cost.core_flops, cost.projection_flops), path


def test_family_costs_scale_linearly_in_n_and_luna_teaching_quadratically():
    for key in ("perceiver", "perceiver_io", "isab", "luna", "luna_causal", "linformer", "nystrom", "slot", "latent"):
        f = [MECHANISMS[key].cost(n, 16, Sizes(dim=64)).flops for n in (1024, 2048, 4096)]
        assert f[2] - f[1] == 2 * (f[1] - f[0]), key  # exactly a + b·N: linear in N
    f = [MECHANISMS["full"].cost(n, 16, Sizes(dim=64)).flops for n in (1024, 2048, 4096)]
    assert f[2] - f[1] > 2 * (f[1] - f[0])  # quadratic
    teach = [cx.luna_causal_cost(n, 16, path="teaching").core_flops for n in (1024, 2048)]
    assert 3.9 < teach[1] / teach[0] < 4.0
    with pytest.raises(ValueError, match="path"):
        cx.luna_causal_cost(8, 2, path="slow")
    with pytest.raises(ValueError, match="depth"):
        cx.perceiver_cost(8, 2, depth=-1)
    with pytest.raises(ValueError, match="k must be an integer ≥ 1"):  # the shared check_int message
        cx.linformer_cost(8, 0)


@pytest.mark.parametrize("key", list(MECHANISMS))
def test_fast_path_equals_teaching_path(key):
    mech = MECHANISMS[key]
    module = mech.build(Sizes(dim=8, heads=2, num_latents=3, seq_len=7))
    x = torch.randn(2, 7, 8)
    fast, maps = mech.run(module, x, return_maps=False)
    teaching, maps = mech.run(module, x, return_maps=True)
    assert maps is not None
    torch.testing.assert_close(fast, teaching, atol=1e-5, rtol=0)


GRAD_CASES = {
    "perceiver": (lambda: Perceiver(4, 2, heads=2, cross_heads=2, depth=1), {}),
    "perceiver_io": (lambda: PerceiverIO(4, 2, num_outputs=2), {}),
    "perceiver_ar": (lambda: PerceiverAR(4, 2, depth=1), {}),
    "isab": (lambda: ISAB(4, 2, heads=2), {}),
    "luna": (lambda: Luna(4, 2, heads=2), {}),
    "luna_causal": (lambda: LunaCausal(4, 2, heads=2), {}),
    "slot": (lambda: SlotAttention(4, 2, iters=2), {"slots": torch.randn(1, 2, 4, dtype=torch.float64)}),
    "linformer": (lambda: Linformer(4, 3, 2, heads=2), {}),
    "nystrom": (lambda: Nystromformer(4, 2, heads=2), {}),
}


@pytest.mark.parametrize("key", list(GRAD_CASES))
@pytest.mark.parametrize("return_maps", [False, True], ids=["fast", "teaching"])
def test_gradcheck_float64(key, return_maps):
    make, kwargs = GRAD_CASES[key]
    module = make().double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)

    def f(t):
        out = module(t, return_maps=return_maps, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    assert torch.autograd.gradcheck(f, (x,))


def test_pma_gradcheck_float64():
    from lattn.family import PMA

    m = PMA(4, 2, heads=2).double()
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, False, True]])
    assert torch.autograd.gradcheck(lambda t: m(t, mask=mask), (x,))
    assert torch.autograd.gradcheck(lambda t: m(t, mask=mask, return_maps=True)[0], (x,))


@pytest.mark.parametrize("key", list(MECHANISMS))
def test_bfloat16_runs_with_float32_maps(key):
    mech = MECHANISMS[key]
    module = mech.build(Sizes(dim=8, heads=2, num_latents=3, seq_len=7)).to(torch.bfloat16)
    out, maps = mech.run(module, torch.randn(2, 7, 8, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    for name in ("write", "gather", "broadcast"):
        m = maps if isinstance(maps, torch.Tensor) else getattr(maps, name)  # full attention: its (B, H, N, N) map
        if m is not None and key not in ("linformer",):  # Linformer's gather map is its learned weight, not a softmax
            assert m.dtype == torch.float32, f"{key} {name} map: softmax in float32"


def test_comparison_table_is_generated_from_the_code():
    table = comparison_table(n=16, m=4, dim=8, heads=2)
    rows = {r["key"]: r for r in table.rows}
    assert list(rows) == list(MECHANISMS)
    for key, r in rows.items():
        assert r["flops_formula"] == r["flops_counted"], key
        assert r["stages"] == MECHANISMS[key].stages
        if r["causal"]:
            assert r["leak"] == 0.0, f"{key} claims causality but leaks"
        elif r["leak"] is not None:
            assert r["leak"] > 1e-6, f"{key} is not causal, yet the perturbation moved nothing"
    assert {k for k, r in rows.items() if r["causal"]} == {"full", "perceiver_ar", "luna_causal"}
    assert {k for k, r in rows.items() if r["leak"] is None} == {"perceiver", "pma", "slot"}
    text, md = repr(table), table.markdown()
    assert "Luna causal" in text and "0 (exact)" in text and "leaks" in text
    assert md.count("\n") == len(MECHANISMS) + 1 and "arXiv:2106.01540" in md


def test_the_table_takes_any_mechanism_of_the_convention():
    # a mechanism outside the registry: a Perceiver AR with no latent self-attention, priced by its own formula
    mech = dataclasses.replace(
        MECHANISMS["perceiver_ar"],
        key="perceiver_ar_0",
        title="Perceiver AR, depth 0",
        make=lambda s: PerceiverAR(s.dim, s.num_latents, heads=s.heads, cross_heads=s.heads, depth=0),
        price=lambda n, m, s, b: cx.perceiver_ar_cost(n, m, depth=0, batch=b, heads=s.heads, d_head=s.d_head),
    )
    table = comparison_table(n=16, m=4, dim=8, heads=2, keys=[mech, "luna"])
    (mine, luna) = table.rows
    assert mine["key"] == "perceiver_ar_0" and mine["flops_formula"] == mine["flops_counted"] and mine["leak"] == 0.0
    assert luna["key"] == "luna" and luna["leak"] > 1e-6
    with pytest.raises(ValueError, match="unknown mechanism"):
        comparison_table(n=16, m=4, keys=["gpt"])


def test_future_leak_of_the_naive_latent_decoder():
    mech = MECHANISMS["latent"]
    module = mech.build(Sizes(dim=8, heads=2, num_latents=3))
    x = torch.randn(1, 10, 8)
    assert future_leak("latent", module, x, position=9) > 1e-4  # shared latents carry token 9 back to token 0…8
    assert future_leak("latent", module, x, position=0) is None  # nothing sits before position 0
    causal = MECHANISMS["luna_causal"]
    assert future_leak(causal, causal.build(Sizes(dim=8, heads=2, num_latents=3)), x, position=4) == 0.0
    with pytest.raises(ValueError, match="position"):
        future_leak("latent", module, x, position=10)
    profile = leak_profile("perceiver_ar", MECHANISMS["perceiver_ar"].build(Sizes(dim=8, heads=2, num_latents=3)), x, 8)
    assert profile.positions == [7, 8, 9] and profile.change.shape == (3,) and profile.leak == 0.0
    assert profile.change[1:].min() > 0, "the perturbed position and later ones move"
    assert leak_profile("perceiver", MECHANISMS["perceiver"].build(Sizes(dim=8, heads=2, num_latents=3)), x, 8) is None
