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
    "Shape": (Shape, (), {"batch": 1, "seq_len": 8, "num_latents": 2, "heads": 2, "d_head": 8}),
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
    monkeypatch.setattr(checks, "MAP_BYTES_LIMIT", 30_000)  # MHA 65,536 B refused; LatentAttention 24,576 B not
    x = torch.randn(1, 64, 16)
    with pytest.raises(
        MemoryError, match=r"would hold .* of attention maps and their intermediates.*use the fast path"
    ):
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


# --- nb04: Nyströmformer (lattn.family.nystrom) -------------------------------------------------------------------


def test_nystromformer_bad_inputs():
    from lattn.family import Nystromformer
    from lattn.family.nystrom import pinv_iterative, segment_ids

    with pytest.raises(ValueError, match="num_landmarks must be an integer ≥ 1, got 0"):
        Nystromformer(16, 0)
    with pytest.raises(TypeError, match=r"pinv_iterations must be an integer ≥ 0, got 2.5"):
        Nystromformer(16, 4, pinv_iterations=2.5)
    module = Nystromformer(16, 4, heads=2)
    with pytest.raises(ValueError, match="Nystromformer cannot be causal: each landmark is the mean"):
        module(torch.randn(1, 8, 16), causal=True)
    with pytest.raises(ValueError, match=r"x last dimension must be dim=16, got shape \(1, 8, 12\)"):
        module(torch.randn(1, 8, 12))
    with pytest.raises(TypeError, match=r"square matrices \(…, m, m\), got \(2, 3\)"):
        pinv_iterative(torch.ones(2, 3))
    with pytest.raises(ValueError, match="iterations must be an integer ≥ 0, got -1"):
        pinv_iterative(torch.eye(2), -1)
    with pytest.raises(ValueError, match="m=4 segments need at least m tokens, got n=3"):
        segment_ids(3, 4)


# --- nb06: the language-model experiment over seeds ---------------------------------------------------------------
def test_lm_experiment_refuses_bad_seeds_and_results():
    from lattn.experiments import lm as lm_experiment

    with pytest.raises(ValueError, match=r"seeds must be distinct and at least one, got \(1, 1\)"):
        lm_experiment.run(("full",), seeds=(1, 1), progress=False)
    with pytest.raises(ValueError, match="combine_seeds\\(\\) needs at least one run"):
        lm_experiment.combine_seeds([])
    run = {"seed": 0, "steps": 1, "models": {"full": {}}}
    with pytest.raises(ValueError, match=r"distinct seeds and the same kinds; got seeds \[0, 0\]"):
        lm_experiment.combine_seeds([run, run])
    with pytest.raises(ValueError, match=r"kind 'mla' has no results; by_seed holds \['full'\]"):
        lm_experiment.compare_seeds({"full": {"0": {"val_loss": 1.0}}}, ("mla",))


# --- nb0012: the explorers of notebooks 00-01 and notebook 01's module checker -----------------------------------
@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((LatentAttention(16, 4, 2), torch.randn(1, 8, 16)), TypeError,
         r"mha must be a lattn.MultiHeadAttention.*got LatentAttention \(for latent attention's maps use LatentExplorer\)"),
        ((MultiHeadAttention(16, 2), torch.randn(8, 16)), ValueError,
         r"tokens must be one sequence .* \(1, N, D\), got \(8, 16\) — add the batch axis: tokens\[None\]"),
        ((MultiHeadAttention(16, 2), torch.randn(1, 8, 8)), ValueError,
         r"tokens must have the module's width D = 16, got shape \(1, 8, 8\): build MultiHeadAttention\(8, heads\)"),
    ],
)  # fmt: skip
def test_attention_explorer_names_the_argument_and_the_fix(args, error, match):
    from lattn.widgets.attention import AttentionExplorer

    with pytest.raises(error, match=match):
        AttentionExplorer(*args)


@pytest.mark.parametrize(
    ("models", "match"),
    [({}, r"models must be a mapping \{\"untrained\": \{M: model\}.*got \{\}"),
     ({"trained": {}}, r"models\['trained'\] must map each M \(an int\) to a model.*got \{\}")],
)  # fmt: skip
def test_latent_explorer_names_the_argument_and_the_fix(models, match):
    from lattn.widgets.attention import LatentExplorer

    with pytest.raises(ValueError, match=match):
        LatentExplorer(models, lambda n: None)


def test_latent_attention_checker_asks_for_the_class(capsys):
    """Checkers never raise on a wrong answer: the printed hint names the slip (an instance, not the class)."""
    from lattn.exercises.latent import check_latent_attention

    assert not check_latent_attention(LatentAttention(8, 3, 2))
    out = capsys.readouterr().out
    assert "pass the class itself, check_latent_attention(MyLatentAttention), not an instance" in out


# --- core: MHA's KV cache, NaN in padded tokens and the maps, the size guard counting every map ----------------------


@pytest.mark.parametrize(
    "cache, x, error, match",
    [
        (
            lambda: True,
            torch.randn(1, 1, 16),
            TypeError,
            r"cache must be a KVCache from this layer's new_cache\(batch, max_len\), got True \(bool\)",
        ),
        (
            lambda: MultiHeadAttention(16, 2).new_cache(2, 8),  # a cache for batch 2, decoding batch 1
            torch.randn(1, 1, 16),
            ValueError,
            r"x has batch size 1 but this cache was made for batch 2: make one with new_cache\(1, max_len\)",
        ),
        (
            lambda: MultiHeadAttention(16, 2).new_cache(1, 8),  # batch 1 → 2
            torch.randn(2, 1, 16),
            ValueError,
            r"x has batch size 2 but this cache was made for batch 1: make one with new_cache\(2, max_len\)",
        ),
        (
            lambda: MultiHeadAttention(16, 4).new_cache(1, 8),  # from a module with other heads
            torch.randn(1, 1, 16),
            ValueError,
            r"this cache holds 4 heads of d_head=4 but the layer has 2 heads of d_head=8: make the cache with this"
            r" layer's new_cache\(batch, max_len\)",
        ),
        (
            lambda: MultiHeadAttention(16, 2).double().new_cache(1, 8),  # another dtype
            torch.randn(1, 1, 16),
            TypeError,
            r"x has dtype torch.float32 but this cache holds torch.float64: make the cache with new_cache after"
            r" module.to\(torch.float32\)",
        ),
    ],
    ids=["cache=True", "batch 2 cache, batch 1", "batch 1 cache, batch 2", "other heads", "other dtype"],
)
def test_mha_kv_cache_is_checked_like_mla_s(cache, x, error, match):
    """Each of these used to decode silently wrong (batch 2 → 1 returned (2, 1, D) and overwrote both rows) or fail
    deep in torch ("expanded size", "'bool' object has no attribute 'append'")."""
    mha = MultiHeadAttention(16, 2)
    with pytest.raises(error, match=match):
        mha(x, cache=cache())


def test_mha_start_pos_needs_a_cache():
    with pytest.raises(ValueError, match=r"start_pos=3 needs a cache \(from new_cache\); without one x starts at 0"):
        MultiHeadAttention(16, 2)(torch.randn(1, 4, 16), start_pos=3)


def test_nan_in_a_padded_token_leaves_the_maps_clean():
    """The maps too: padded query rows are zeros (MHA's teaching maps, LatentAttention's broadcast map and
    effective()), never NaN; padded key columns are zeros."""
    x = torch.randn(1, 6, 16)
    mask = torch.tensor([[True] * 4 + [False] * 2])
    bad = x.masked_fill(~mask[..., None], float("nan"))
    _, mha_maps = MultiHeadAttention(16, 2)(bad, mask=mask, return_maps=True)  # (1, 2, 6, 6)
    _, la_maps = LatentAttention(16, 4, 2)(bad, mask=mask, return_maps=True)
    for name, m in [("MHA", mha_maps), ("broadcast", la_maps.broadcast), ("effective()", la_maps.effective())]:
        assert torch.isfinite(m).all() and (m[0, :, 4:] == 0).all(), f"{name}: padded rows"
    assert (mha_maps[0, ..., 4:] == 0).all() and (la_maps.gather[0, ..., 4:] == 0).all(), "padded columns"


def test_size_guard_counts_everything_the_call_holds(monkeypatch):
    """LatentAttention(64, 16, heads=4) at N = 3,000,000 (x on the meta device: nothing is allocated). Each map is
    B·H·N·M·4 = 4 × 3,000,000 × 16 × 4 B = 768,000,000 B (732.4 MiB), and so is each token tensor (B·N·D·4). The
    call holds at most 4 maps at once without a mask (write and gather kept, broadcast's scores and weights), 5 with
    one (gather's masked softmax beside the kept write map), and 4 token tensors: 8 × 768,000,000 B = 5.7 GiB, or
    9 × … = 6.4 GiB. Each map alone (0.7 GiB) is far under any limit — the guard that looked at one map at a time let
    this through, and the call then failed in the allocator of a machine with 6 GB."""
    monkeypatch.setattr(checks, "MAP_BYTES_LIMIT", 2 * 2**30)
    la = LatentAttention(64, 16, heads=4)
    x = torch.empty(1, 3_000_000, 64, device="meta")
    with pytest.raises(
        MemoryError,
        match=r"LatentAttention\(return_maps=True\) at N = 3,000,000 would hold up to 5.7 GiB of attention maps and"
        r" their intermediates \(4 maps of 732.4 MiB: one kept per stage, and the scores and weights beside them; 4"
        r" token tensors of 732.4 MiB\), over the limit of 2.0 GiB \(MAP_BYTES_LIMIT\): use the fast path"
        r" \(return_maps=False\)",
    ):
        la(x, return_maps=True)
    with pytest.raises(MemoryError, match=r"would hold up to 6.4 GiB .*\(5 maps of 732.4 MiB"):
        la(x, mask=torch.ones(1, 3_000_000, dtype=torch.bool, device="meta"), return_maps=True)
    monkeypatch.setattr(checks, "MAP_BYTES_LIMIT", 8 * 2**30)
    monkeypatch.setattr(checks, "machine_memory", lambda: 6 * 10**9)  # the machine of the report: 6 GB
    with pytest.raises(MemoryError, match=r"over the limit of 5.6 GiB \(this machine's memory\)"):
        la(x, return_maps=True)


def test_query_mask_is_checked_like_mask():
    layer = Attention(16, heads=2)
    x, ctx = torch.randn(2, 3, 16), torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match=r"query_mask must have shape \(B, N\) = \(2, 3\) to match x \(2, 3, 16\)"):
        layer(x, context=ctx, query_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"query_mask must have dtype torch.bool"):
        layer(x, context=ctx, query_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, N\) = \(2, 5\) to match context \(2, 5, 16\)"):
        layer(x, context=ctx, mask=torch.ones(2, 3, dtype=torch.bool))


# --- mla: YaRN fields, rope_theta with YaRN, YaRN.from_config keys, the KV-cache calculator's controls ----------------
from lattn.mla import YaRN  # noqa: E402
from lattn.rope import rope_frequencies  # noqa: E402
from lattn.widgets.mla import KVCacheCalculator  # noqa: E402

YARN_CASES = [  # (fields, error class, the exact message)
    ({"factor": float("inf")}, ValueError, "YaRN.factor must be finite, got inf: give the number the config.json holds"),
    ({"factor": float("nan")}, ValueError, "YaRN.factor must be finite, got nan: give the number the config.json holds"),
    ({"factor": "40"}, TypeError, "YaRN.factor must be a finite number, got '40' (str)"),
    ({"factor": None}, TypeError, "YaRN.factor must be a finite number, got None (NoneType)"),
    ({"factor": True}, TypeError, "YaRN.factor must be a finite number, got True (bool)"),
    ({"factor": 40, "beta_fast": float("inf")}, ValueError,
     "YaRN.beta_fast must be finite, got inf: give the number the config.json holds"),
    ({"factor": 40, "beta_slow": "1"}, TypeError, "YaRN.beta_slow must be a finite number, got '1' (str)"),
    ({"factor": 40, "mscale": float("inf")}, ValueError,
     "YaRN.mscale must be finite, got inf: give the number the config.json holds"),
    ({"factor": 40, "mscale_all_dim": "0.707"}, TypeError,
     "YaRN.mscale_all_dim must be a finite number or None (not set), got '0.707' (str)"),
    ({"factor": 40, "attention_factor": float("nan")}, ValueError,
     "YaRN.attention_factor must be finite, got nan: give the number the config.json holds"),
    ({"factor": 40, "truncate": "false"}, TypeError, "YaRN.truncate must be True or False, got 'false' (str)"),
    ({"factor": 40, "original_max_position_embeddings": 4096.0}, TypeError,
     "YaRN.original_max_position_embeddings must be an integer ≥ 1, got 4096.0 (float)"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "error", "message"), YARN_CASES, ids=[str(c[0]) for c in YARN_CASES])
def test_yarn_refuses_non_finite_and_non_numeric_fields(fields, error, message):
    with pytest.raises(error) as info:
        YaRN(**fields)
    assert str(info.value) == message


def test_rope_theta_one_with_yarn_is_refused_by_name():
    yarn = YaRN(factor=40)
    expected = (
        "MLAConfig.rope_theta must be > 1 with YaRN rope_scaling (the correction range divides by "
        "ln(MLAConfig.rope_theta)), got 1.0: use the base of the checkpoint (DeepSeek: 10000) or rope_scaling=None"
    )
    with pytest.raises(ValueError) as info:
        MLAConfig(32, 4, 8, 16, 4, rope_theta=1.0, rope_scaling=yarn)
    assert str(info.value) == expected
    with pytest.raises(ValueError, match=r"theta must be > 1 with YaRN rope_scaling .* got 1.0"):
        rope_frequencies(8, 1.0, yarn)  # was a bare ZeroDivisionError
    with pytest.raises(ValueError, match=r"theta must be > 1 with YaRN .* got 0.5"):
        yarn.correction_range(8, 0.5)
    MLAConfig(32, 4, 8, 16, 4, rope_theta=1.0)  # plain RoPE with theta 1 is defined (every pair turns by 1 rad)
    with pytest.raises(TypeError, match=r"MLAConfig.rope_theta must be a finite number > 0, got inf"):
        MLAConfig(32, 4, 8, 16, 4, rope_theta=float("inf"))


def test_yarn_from_config_refuses_keys_it_would_drop():
    with pytest.raises(ValueError) as info:
        YaRN.from_config({"type": "yarn", "factor": 40, "rope_theta": 1e6})
    assert str(info.value) == (
        "YaRN.from_config does not know the key(s) ['rope_theta'], which may change the result; it reads "
        "['attention_factor', 'beta_fast', 'beta_slow', 'factor', 'mscale', 'mscale_all_dim', "
        "'original_max_position_embeddings', 'truncate'] (rope_theta belongs to MLAConfig.rope_theta): remove or "
        "move them"
    )
    with pytest.raises(TypeError, match=r"rope_scaling must be a dict \(config.json's block\), got list"):
        YaRN.from_config([("factor", 40)])


def test_kv_cache_calculator_names_the_control_and_what_it_accepts():
    with pytest.raises(ValueError) as info:
        KVCacheCalculator(preset="GPT-4")
    assert str(info.value) == (
        "KVCacheCalculator: preset must be one of ['DeepSeek-V2', 'DeepSeek-V2-Lite', 'DeepSeek-V3'], got 'GPT-4'; "
        "start from a preset, then move the size sliders (or .set(heads=…, d_head=…, d_c=…)) for another model"
    )
    calc = KVCacheCalculator()
    with pytest.raises(ValueError) as info:
        calc.set(context=5000)
    assert str(info.value) == (
        "KVCacheCalculator: context must be one of 1,024, 2,048, 4,096, 8,192, 16,384, 32,768, 65,536, 131,072, "
        "262,144, 524,288, 1,048,576; got 5000"
    )
    with pytest.raises(ValueError, match=r"^KVCacheCalculator: batch must be an integer from 1 to 128, got 1000$"):
        calc.set(batch=1000)  # was clamped to 128 without a word
    with pytest.raises(ValueError, match=r"preset must be one of 'DeepSeek-V2', .*'custom'; got 'GPT-4'"):
        calc.set(preset="GPT-4")
    assert calc.state["gb"]["MLA"] == pytest.approx(576 * 60 * 131_072 * 2 / 1e9)  # refused calls changed nothing


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
