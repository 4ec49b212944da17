"""Explorers and checkers of notebook 04: set controls in code, check the drawn data are the package's."""

import math

import numpy as np
import pytest
import torch

from lattn.exercises import family as ex
from lattn.family.compare import MECHANISMS, Sizes, future_leak
from lattn.tasks import ClusterMajority
from lattn.viz.diagram import PRESETS
from lattn.viz.family import future_shade, stage_overview, token_maps
from lattn.widgets.family import DIAGRAMS, FamilyExplorer, LeakExplorer

TOKENS = ClusterMajority().example(12, seed=0).x  # (1, 12, 16)


@pytest.fixture(scope="module")
def family():
    return FamilyExplorer(TOKENS, heads=2, m_range=(2, 5))


def test_every_mechanism_shows_exactly_its_stages(family):
    for key, mech in MECHANISMS.items():
        state = family.set(mechanism=key, n=10, m=3).state
        shown = tuple(s for s in ("write", "gather", "broadcast") if state[s] is not None)
        assert shown == mech.stages == state["stages"], key
        expected = (*mech.stages, "effective") if state["effective"] is not None else mech.stages
        assert family.view.shown == expected, key  # only the maps it has, left to right: no empty panel
        assert DIAGRAMS.get(key, key) in PRESETS, key  # every mechanism has its schematic
        assert f"mechanism={key}," in family.status.value and family.status.value.startswith(
            f"rendered {family.renders}"
        )
        if mech.outputs == "latents":
            assert state["future_leak"] is None and "future leak=n/a" in family.status.value, key
        elif mech.causal:
            assert state["future_leak"] == 0.0 and "future leak=0 (exact)" in family.status.value, key
        else:
            assert state["future_leak"] > 1e-6, f"{key}: a bidirectional mixer must leak the future"


def test_family_maps_are_the_package_maps(family):
    state = family.set(mechanism="luna_causal", n=9, m=4).state
    mech = MECHANISMS["luna_causal"]
    module = mech.build(Sizes(dim=16, heads=2, num_latents=4), seed=0)
    with torch.no_grad():
        _, maps = mech.run(module, TOKENS[:, :9])
    np.testing.assert_allclose(state["broadcast"], maps.broadcast[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(state["effective"], maps.effective()[0, 0].numpy(), atol=1e-6)
    assert np.triu(state["effective"], 1).max() == 0  # lower-triangular
    assert state["gather"].shape == (4, 9) and state["write"] is None


def test_family_controls_change_shapes_and_picture(family):
    family.set(mechanism="latent", n=8, m=2)
    png = family.png
    assert family.state["gather"].shape == (2, 8) and family.state["effective"].shape == (8, 8)
    family.m.value = 5
    assert family.state["gather"].shape == (5, 8) and family.png != png
    family.n.value = 12
    assert family.state["write"].shape == (12, 5)
    png = family.png
    family.mark_future.value = False
    assert not family.view.shade_visible("effective") and family.png != png
    family.mark_future.value = True
    assert family.view.shade_visible("effective")
    family.set(mechanism="linformer", n=7)  # a Linformer is built for each length
    assert family.state["gather"].shape == (5, 7)
    family.set(mechanism="perceiver_ar", n=10, m=4)
    assert family.state["gather_offset"] == 6 and family.view.shade_visible("gather")
    assert family.view.diagram_ax.get_visible()  # one map, three free slots: the schematic fills them
    family.set(mechanism="isab")  # three maps, one free slot: too small for a two-stage schematic
    assert not family.view.diagram_ax.get_visible()
    assert family.view.slots[3]["note"].get_text() == "not used:\nwrite"
    family.set(mechanism="slot")
    assert family.state["effective"] is None and family.view.shown == ("write",)


def test_family_explorer_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(1, N, D\)"):
        FamilyExplorer(torch.randn(2, 8, 16))
    with pytest.raises(ValueError, match="unknown mechanism"):
        FamilyExplorer(TOKENS, keys=["latent", "reformer"])


def test_future_shade():
    assert future_shade(2, 3)[..., 3].tolist() == [[0, FUT := future_shade(1, 2)[0, 1, 3], FUT], [0, 0, FUT]]
    assert (future_shade(2, 4, offset=2)[..., 3] > 0).tolist() == [[False, False, False, True], [False] * 4]


def test_static_figures_show_only_used_stages_on_stated_scales(family):
    keys = ["latent", "perceiver", "perceiver_ar", "slot", "linformer"]
    before = family.state["key"], family.renders
    states = family.states(keys, n=10, m=3)
    assert [s["key"] for s in states] == keys and family.state["key"] == before[0], "explorer left as it was"
    assert family.renders == before[1] and family.mechanism.value == before[0], "no render, controls restored"
    family.set(mechanism="isab")  # the controls still drive the picture afterwards
    assert family.state["key"] == "isab" and family.renders == before[1] + 1
    family.set(mechanism=before[0])
    fig = stage_overview(states)
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == sum(len(MECHANISMS[k].stages) for k in keys) == 8, "one panel per used stage, none empty"
    assert len(fig.axes) == 2 * len(maps), "every map has its own colorbar"
    ar = maps[4]  # after latent attention's three stages and the Perceiver's gather
    assert [t.get_text() for t in ar.get_yticklabels()] == ["7", "8", "9"], "Perceiver AR's latents are positions"
    tokens = token_maps(family.states(["latent", "isab", "luna_causal", "perceiver"], n=10, m=3))
    panels = [ax for ax in tokens.axes if ax.images]
    assert len(panels) == 3, "Perceiver outputs latents: no token→token panel"
    assert all(ax.images[0].get_clim() == (0.0, 1.0) for ax in panels), "one shared 0–1 scale"
    assert len(tokens.axes) == len(panels) + 1, "one shared colorbar"
    with pytest.raises(ValueError, match="at least one panel"):
        token_maps(family.states(["perceiver"], n=10, m=3))


def test_leak_explorer_measures_exact_causality():
    leak = LeakExplorer(TOKENS, m=4)
    assert leak.state["position"] == 9
    for key, value in leak.state["leaks"].items():
        assert value == future_leak(key, leak.models[key], TOKENS, 9), f"{key}: the package's one leak measurement"
        if MECHANISMS[key].causal:
            assert value == 0.0, key
        else:
            assert value > 1e-4, key
    png = leak.png
    leak.position.value = 10
    positions, change = leak.state["profiles"]["latent"]
    assert list(positions) == list(range(12)) and change.shape == (12,) and leak.png != png
    assert list(leak.state["profiles"]["perceiver_ar"][0]) == [8, 9, 10, 11]  # outputs only at the latent positions
    assert "luna_causal: exact" in leak.status.value and "latent: moved" in leak.status.value
    with pytest.raises(ValueError, match="latents"):
        LeakExplorer(TOKENS, keys=("latent", "perceiver"))


# --- checkers -----------------------------------------------------------------------------------------------------


def _stage(proj, queries, context):
    w = (proj.to_q(queries) @ proj.to_k(context).transpose(1, 2) / math.sqrt(queries.shape[-1])).softmax(-1)
    return proj.to_out(w @ proj.to_v(context))


def good_isab(la, x):
    inducing = la.latents.expand(x.shape[0], -1, -1)
    h = inducing + _stage(la.proj["gather"], inducing, x)
    return x + _stage(la.proj["broadcast"], x, h)


def test_check_isab_from_stages(capsys):
    assert ex.check_isab_from_stages(good_isab)
    assert "✅" in capsys.readouterr().out
    cases = [
        (None, "Your turn"),
        (lambda la, x: good_isab(la, x) - x, "residual"),
        (lambda la, x: x + _stage(la.proj["broadcast"], x, la.latents.expand(2, -1, -1)), "*after* they gathered"),
        (lambda la, x: x[:, :1], "shape"),
        (lambda la, x: x * 2, "two lines"),
        (lambda la, x: la.nope, "raised AttributeError"),
    ]
    for answer, hint in cases:
        assert not ex.check_isab_from_stages(answer)
        assert hint in capsys.readouterr().out


def test_check_causal_choice(capsys):
    assert ex.check_causal_choice({"luna_causal", "perceiver_ar"})
    assert "✅" in capsys.readouterr().out
    cases = [
        (None, "Your turn"),
        ("luna_causal", "not a single string"),
        ({"luna_causal", "perceiver_ar", "gpt"}, "unknown key"),
        ({"luna_causal", "perceiver_ar", "linformer"}, "Linformer cannot be causal"),
        ({"luna_causal", "perceiver_ar", "luna"}, "Luna cannot be causal"),
        ({"luna_causal"}, "Perceiver AR can"),
    ]
    for answer, hint in cases:
        assert not ex.check_causal_choice(answer)
        assert hint in capsys.readouterr().out


def good_luna_step(phi, q, k, v, key_sum, value_sum, t):
    key_sum = key_sum + phi[..., None] * k[:, :, None]  # (B, H, l, dh)
    value_sum = value_sum + phi[..., None] * v[:, :, None]
    a = (torch.einsum("bhd,bhld->bhl", q, key_sum) / t).softmax(-1)  # over the l slots
    return torch.einsum("bhl,bhld->bhd", a, value_sum) / t, key_sum, value_sum


def test_check_luna_step(capsys):
    assert ex.check_luna_step(good_luna_step)
    assert "✅" in capsys.readouterr().out
    cases = [
        (None, "Your turn"),
        (lambda *a: (good_luna_step(*a)[0], a[4], a[5]), "accumulate"),  # sums never grow
        (lambda *a: good_luna_step(*a[:6], 1), "accumulate"),  # never divided by t
        (lambda phi, q, *rest: good_luna_step(phi, 2 * q, *rest), "first token"),
        (lambda *a: (a[1][..., :1], a[4], a[5]), "shape (B, H, d_head) = (2, 2, 4)"),
        (lambda *a: 1, "raised TypeError"),
    ]
    for answer, hint in cases:
        assert not ex.check_luna_step(answer)
        assert hint in capsys.readouterr().out


def test_reach_profiles_draws_exact_zeros_on_the_floor():
    from lattn.viz.family import LEAK_FLOOR, reach_profiles

    fig = reach_profiles({"a": np.array([1.0, 0.5, 0.0]), "b": np.array([0.2, 0.1, 0.3])}, window=1)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()[:2]] == ["a", "b"]
    assert ax.get_lines()[0].get_ydata()[2] == LEAK_FLOOR  # an exact zero sits on the dotted floor
    with pytest.raises(ValueError, match="at least one"):
        reach_profiles({})


def test_explorer_labels_perceiver_ar_rows_with_their_positions(family):
    before = {"mechanism": family.state["key"], "n": family.n.value, "m": family.m.value}
    family.set(mechanism="perceiver_ar", n=10, m=3)
    ax = family.view.slots[0]["ax"]
    family.fig.canvas.draw()
    assert ax.get_ylabel() == "latent at position p"
    assert ax.yaxis.get_major_formatter()(0, 0) == "7", "row 0 is the latent at position N − M = 7"
    family.set(mechanism="isab")
    assert family.view.slots[0]["ax"].yaxis.get_major_formatter()(0, 0) == "0"
    family.set(**before)


def test_joint_attention_draws_one_mask_and_one_softmax():
    from lattn.masks import local_global_mask
    from lattn.viz.family import joint_attention

    allowed = local_global_mask(8, 2, 2)  # (10, 10) over [g₀, g₁; x₀ … x₇]
    fig = joint_attention(allowed, 2, query=3)
    left, right = fig.axes
    kinds = left.images[0].get_array()
    assert (kinds > 0).sum() == allowed.sum() == 70, "the picture is the package's mask, cell for cell"
    assert (kinds[:2] == 2).all() and (kinds[:, :2] == 2).all(), "global rows and columns in one colour"
    assert [t.get_text() for t in left.get_xticklabels()][:3] == ["g₀", "g₁", "x₀"], "0-based labels"
    assert "70 of 10² scores" in left.get_title()
    links, focus = right.collections[:2]
    assert len(links.get_segments()) + len(focus.get_segments()) == 70
    assert len(focus.get_segments()) == allowed[2 + 3].sum() == 7, "x₃ reads g₀, g₁ and x₁ … x₅ in one softmax"
    softmax_labels = [t for t in right.texts if t.get_text() == "softmax"]
    assert len(softmax_labels) == 1, "one softmax band, not one per stage"
