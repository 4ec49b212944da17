"""Every bad input a user can hand the package, with the exact error class and a fragment of its message.

One table per kind of mistake: wrong integer sizes in any public constructor, wrong tensors at the entry points,
caches asked to contradict themselves, and requests that would allocate a huge attention map. (Each module's own
test file checks its errors in context too; this file is the list in one place.)
"""

import pytest
import torch

from lattn import Attention, LatentAttention, MultiHeadAttention, checks
from lattn.attention import fused_attention, scaled_dot_product
from lattn.complexity import Shape
from lattn.family import ISAB, MAB, PMA, Linformer, Luna, LunaCausal, Perceiver, PerceiverAR, PerceiverIO, SlotAttention
from lattn.lm import LMConfig
from lattn.mla import MLAConfig, MultiHeadLatentAttention
from lattn.tagger import StackedAttention, WindowAttention

GOOD = {  # a valid call of every public constructor with integer sizes: (class, args, kwargs)
    "Attention": (Attention, (16,), {"heads": 2, "context_dim": 8}),
    "MultiHeadAttention": (MultiHeadAttention, (16, 2), {}),
    "LatentAttention": (LatentAttention, (16, 4, 2), {}),
    "Perceiver": (Perceiver, (16, 4), {"heads": 2, "cross_heads": 2, "depth": 1, "ff_mult": 2}),
    "PerceiverIO": (PerceiverIO, (16, 4), {"num_outputs": 3, "heads": 2}),
    "PerceiverAR": (PerceiverAR, (16, 4), {"heads": 2}),
    "MAB": (MAB, (16, 2), {"ff_mult": 2}),
    "ISAB": (ISAB, (16, 4), {"heads": 2}),
    "PMA": (PMA, (16, 2), {"heads": 2}),
    "Luna": (Luna, (16, 4), {"heads": 2}),
    "LunaCausal": (LunaCausal, (16, 4), {"heads": 2}),
    "SlotAttention": (SlotAttention, (16, 3), {"iters": 2, "mlp_mult": 2}),
    "Linformer": (Linformer, (16, 12, 4), {"heads": 2}),
    "MLAConfig": (MLAConfig, (32, 4, 8, 16, 4), {}),
    "LMConfig": (LMConfig, (20,), {"dim": 16, "heads": 2, "context": 8}),
    "WindowAttention": (WindowAttention, (16, 2), {"window": 2}),
    "StackedAttention": (StackedAttention, (16, 2, 3), {}),
    "Shape": (Shape, (), {"batch": 1, "seq_len": 8, "num_latents": 2, "heads": 2, "dim_head": 8}),
}


def _integer_slots(cls, args, kwargs):
    """(where, name) of every integer size of a valid call: positional index or keyword."""
    import inspect

    names = list(inspect.signature(cls).parameters)
    slots = [(i, names[i]) for i, a in enumerate(args) if isinstance(a, int)]
    return slots + [(k, k) for k, v in kwargs.items() if isinstance(v, int) and not isinstance(v, bool)]


CASES = [
    pytest.param(key, where, name, bad, id=f"{key}.{name}={bad!r}")
    for key, (cls, args, kwargs) in GOOD.items()
    for where, name in _integer_slots(cls, args, kwargs)
    for bad in (True, 4.0)
]


def test_good_calls_build():
    for cls, args, kwargs in GOOD.values():
        cls(*args, **kwargs)


@pytest.mark.parametrize("key, where, name, bad", CASES)
def test_integer_sizes_refuse_bools_and_floats(key, where, name, bad):
    """`num_latents=True`, `heads=4.0`, `dim=64.0` … are refused up front, naming the argument (one shared check)."""
    cls, args, kwargs = GOOD[key]
    args, kwargs = list(args), dict(kwargs)
    if isinstance(where, int):
        args[where] = bad
    else:
        kwargs[where] = bad
    with pytest.raises(TypeError, match=f"{name} must be an integer"):
        cls(*args, **kwargs)


TOKENS_ERRORS = [  # (module, call kwargs, error, message fragment)
    (
        "float64 tokens, float32 module",
        {"x": torch.randn(2, 5, 16, dtype=torch.float64)},
        TypeError,
        r"x has dtype torch.float64 but the module's weights are torch.float32: convert one of them, e.g. module.to",
    ),
    ("integer tokens", {"x": torch.ones(2, 5, 16, dtype=torch.long)}, TypeError, "floating-point"),
    ("2-D tokens", {"x": torch.randn(5, 16)}, ValueError, r"must be 3-D \(B, N, dim=16\)"),
    ("wrong width", {"x": torch.randn(2, 5, 8)}, ValueError, "last dimension must be dim=16"),
    (
        "mask not a tensor",
        {"x": torch.randn(2, 5, 16), "mask": [[True] * 5] * 2},
        TypeError,
        r"mask must be a bool torch.Tensor of shape \(B, N\) = \(2, 5\)",
    ),
    ("float mask", {"x": torch.randn(2, 5, 16), "mask": torch.ones(2, 5)}, ValueError, "dtype torch.bool"),
    (
        "mask of the wrong shape",
        {"x": torch.randn(2, 5, 16), "mask": torch.ones(2, 4, dtype=torch.bool)},
        ValueError,
        r"mask must have shape \(B, N\) = \(2, 5\)",
    ),
]


@pytest.mark.parametrize("module", [MultiHeadAttention(16, 2), LatentAttention(16, 4, 2)], ids=["mha", "latent"])
@pytest.mark.parametrize("what, kwargs, error, match", TOKENS_ERRORS, ids=[c[0] for c in TOKENS_ERRORS])
def test_bad_tokens_and_masks(module, what, kwargs, error, match):
    kwargs = dict(kwargs)
    x = kwargs.pop("x")
    with pytest.raises(error, match=match):
        module(x, **kwargs)


def test_mask_is_keyword_only():
    with pytest.raises(TypeError):
        LatentAttention(16, 4, 2)(torch.randn(1, 5, 16), torch.ones(1, 5, dtype=torch.bool))


def test_fused_and_teaching_cores_validate():
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    for core in (fused_attention, scaled_dot_product):
        with pytest.raises(ValueError, match=r"mask must have dtype torch\.bool"):
            core(q, k, v, torch.zeros(4, 6))
        with pytest.raises(ValueError, match="need q"):
            core(q, k, v[:, :, :5])  # keys and values of different lengths


def test_caches_know_their_length():
    """A start_pos that leaves a gap is refused; without one, decoding continues where the cache ends."""
    x = torch.randn(1, 6, 16)
    mha = MultiHeadAttention(16, 2)
    cache = mha.new_cache(1, 8)
    mha(x[:, :4], cache=cache)
    with pytest.raises(ValueError, match=r"cannot write 1 token\(s\) at position 5: the cache holds 4"):
        mha(x[:, 4:5], cache=cache, start_pos=5)
    torch.testing.assert_close(mha(x[:, 4:5], cache=cache), mha(x[:, :5], causal=True)[:, 4:5])

    mla = MultiHeadLatentAttention(MLAConfig(32, 4, 8, 16, 4))
    h = torch.randn(1, 6, 32)
    mla_cache = mla.new_cache(1, 8)
    mla(h[:, :4], cache=mla_cache)
    with pytest.raises(ValueError, match="gap"):
        mla(h[:, 4:5], cache=mla_cache, start_pos=5)
    torch.testing.assert_close(mla(h[:, 4:5], cache=mla_cache), mla(h[:, :5])[:, 4:5])

    luna = LunaCausal(16, 4, heads=2)
    state = luna.new_cache(1, 8)
    luna(x[:, :4], cache=state)
    with pytest.raises(ValueError, match="start_pos"):
        luna(x[:, 4:5], cache=state, start_pos=2)
    torch.testing.assert_close(luna(x[:, 4:5], cache=state), luna(x[:, :5])[:, 4:5])


def test_huge_maps_are_refused_with_the_bytes_and_the_fix(monkeypatch):
    monkeypatch.setattr(checks, "MAP_BYTES_LIMIT", 10_000)
    x = torch.randn(1, 64, 16)
    with pytest.raises(MemoryError, match=r"would hold .* GiB of attention weights.*use the fast path"):
        MultiHeadAttention(16, 2)(x, return_maps=True)
    _, maps = LatentAttention(16, 4, 2)(x, return_maps=True)
    with pytest.raises(MemoryError, match=r"effective\(\) at N = 64"):
        maps.effective()


def test_nan_in_a_padded_token_changes_nothing():
    """Padded tokens take no part: a NaN there leaves every real output as it was (a NaN in a real token may
    propagate: that is honest)."""
    x = torch.randn(1, 6, 16)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    bad = x.clone()
    bad[:, 4:] = float("nan")
    for module in (MultiHeadAttention(16, 2), LatentAttention(16, 4, 2)):
        torch.testing.assert_close(module(bad, mask=mask), module(x, mask=mask), rtol=0, atol=0)


# --- nb03: the copy task, the tagger's positions and dropout, the verdict helper, task names ----------------------


def test_nb03_bad_inputs_name_the_argument():
    from lattn.records import per_seed
    from lattn.stats import compare, t_quantile
    from lattn.tagger import NoMixer, Tagger, sinusoidal_positions
    from lattn.tasks import PositionalCopy, make_task

    with pytest.raises(ValueError, match=r"source must be one of \('first', 'ahead'\), got 'last'"):
        PositionalCopy(source="last")
    with pytest.raises(ValueError, match=r"need num_values ≥ 2 and offset ≥ 1, got num_values=8, offset=0"):
        PositionalCopy(source="ahead", offset=0)
    with pytest.raises(ValueError, match=r"seq_len=16 is too short: source='ahead' needs at least 17 tokens"):
        PositionalCopy(seq_len=16, source="ahead", offset=16)
    with pytest.raises(ValueError, match=r"positions must be one of \('none', 'sinusoidal'\), got 'rope'"):
        Tagger(4, 8, 2, NoMixer(), positions="rope")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.5"):
        Tagger(4, 8, 2, NoMixer(), dropout=1.5)
    with pytest.raises(ValueError, match="seq_len must be an integer ≥ 1, got 0"):
        sinusoidal_positions(0, 8)
    with pytest.raises(ValueError, match=r"compare needs at least 2 values per setting .* got 1 and 3; pass a fixed"):
        compare([0.5], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"need 0 < p < 1 and df > 0, got p=1\.5, df=4"):
        t_quantile(1.5, 4)
    with pytest.raises(ValueError, match=r"unknown task 'sorting'; choose from \['copy', 'global', 'retrieval'\]"):
        make_task("sorting", {})
    with pytest.raises(
        ValueError, match=r"where=\{'part': 'nowhere'\} must pick one setting trained from distinct seeds"
    ):
        per_seed([], part="nowhere")
