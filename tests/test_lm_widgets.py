"""Explorers and exercise checkers of notebook 06, driven from code (tiny random models)."""

import numpy as np
import pytest
import torch

from lattn.exercises import lm as ex
from lattn.lm import CharLM, LMConfig, future_leak, generate, sampling_probs
from lattn.lm_data import CharVocab
from lattn.viz import text_panel, wrap_text
from lattn.viz.family import OKABE_ITO
from lattn.viz.lm import block_diagram, curves, shown, text_samples
from lattn.widgets.lm import GenerationExplorer, LeakExplorer

VOCAB = CharVocab(" abcdefghij\n")


def tiny(kind: str, seed: int = 0) -> CharLM:
    config = LMConfig(VOCAB.size, kind=kind, dim=16, heads=2, layers=1, context=16, num_latents=8)
    return CharLM.build(config, seed=seed).eval()


def test_generation_explorer_shows_what_generate_gives():
    models = {"full": tiny("full"), "luna": tiny("luna")}
    e = GenerationExplorer(models, VOCAB, prompt="abc")
    assert e.renders == 1 and e.status.value.startswith("rendered 1: model=full")
    e.set(model="luna", temperature=0.0, length=20, seed=1)
    want = generate(models["luna"], VOCAB.encode("abc")[None], 20)
    assert e.state["text"] == VOCAB.decode(want[0]) and len(e.state["generated"]) == 20
    logits = models["luna"](VOCAB.encode("abc")[None])[0, -1]
    model = sampling_probs(logits, 1.0)  # the model's own distribution
    assert e.state["top_chars"][0] == VOCAB.chars[int(model.argmax())] == e.state["drawn"] == e.state["generated"][0]
    assert e.state["sampled_probs"].tolist() == [1.0] + [0.0] * 11, "temperature 0 samples the arg-max only"
    assert np.allclose(e.state["model_probs"], model.sort(descending=True).values[:12].detach().numpy())
    e.set(temperature=0.5)
    want = sampling_probs(logits, 0.5)[[VOCAB.chars.index(c) for c in e.state["top_chars"]]]
    assert np.allclose(e.state["sampled_probs"], want.detach().numpy()) and e.state["sampled_probs"][0] > model.max()
    before = e.png
    e.set(temperature=1.5, seed=2)
    assert e.png != before and e.renders == 4
    assert "temperature=1.5" in e.status.value


def test_generation_explorer_drops_unknown_prompt_characters():
    e = GenerationExplorer({"full": tiny("full")}, VOCAB, prompt="aXb")
    assert e.state["prompt"] == "ab" and e.state["dropped"] == 1
    e.set(prompt="XYZ")
    assert e.state["prompt"] == " " and e.state["dropped"] == 3
    with pytest.raises(ValueError, match="at least one model"):
        GenerationExplorer({}, VOCAB)


def test_leak_explorer_marks_the_future_leak(tmp_path):
    models = {"latent": tiny("latent"), "full": tiny("full")}
    ids = VOCAB.encode("abcdefghij abcde")[None]
    e = LeakExplorer(models, ids, VOCAB)
    e.set(model="latent", position=9)
    assert e.state["earlier"] > 0
    assert torch.allclose(torch.as_tensor(e.state["delta"]).float(), future_leak(models["latent"], ids, 9))
    e.set(model="full")
    assert e.state["earlier"] == 0.0 and e.state["delta"][9] > 0
    assert "earlier max=0" in e.status.value
    assert e.save(tmp_path / "leak.png").stat().st_size > 1000
    with pytest.raises(ValueError, match=r"\(1, N\)"):
        LeakExplorer(models, ids[0], VOCAB)


def test_text_helpers():
    assert wrap_text("abcdef\nxy", 4) == "abcd\nef\nxy"
    assert wrap_text("", 3) == ""
    assert text_panel("cost $5 and $6", width=10).get_text() == "cost $5 an\nd $6"
    assert shown(" ") == "␣" and shown("\n") == "⏎" and shown("a") == "a"


# --- exercise checkers: right answers pass, typical mistakes get their hint --------------------------------------
def test_check_leak_test(capsys):
    def right(model, ids, position):
        return future_leak(model, ids, position)[:position].max().item() if position else 0.0

    def includes_the_change(model, ids, position):
        return future_leak(model, ids, position)[: position + 1].max().item()

    assert ex.check_leak_test(right)
    assert not ex.check_leak_test(includes_the_change)
    assert "look only at positions before" in capsys.readouterr().out
    assert not ex.check_leak_test(None)
    assert "Your turn" in capsys.readouterr().out


def test_check_sampling_probs(capsys):
    assert ex.check_sampling_probs(sampling_probs)
    assert not ex.check_sampling_probs(lambda logits, t: (logits * t).softmax(-1) if t else logits.softmax(-1))
    assert "divide the logits by the temperature" in capsys.readouterr().out
    assert not ex.check_sampling_probs(lambda logits, t: (logits / t).softmax(-1))  # t = 0 → NaN
    assert "divide by zero" in capsys.readouterr().out


def test_check_cache_values(capsys):
    assert ex.check_cache_values((96, 20))
    assert not ex.check_cache_values((48, 20))
    assert "key AND a value" in capsys.readouterr().out
    assert not ex.check_cache_values((96, 32))
    assert "c_KV once" in capsys.readouterr().out


def test_curves_differ_in_colour_and_style_and_text_samples_sit_side_by_side():
    fig = curves({"a": ([1, 2], [3, 2]), "b": ([1, 2], [3, 1]), "c": ([1, 2], [2, 2])}, baseline=2.5)
    lines = fig.axes[0].get_lines()[:3]
    assert [line.get_color() for line in lines] == list(OKABE_ITO[:3]), "Okabe–Ito colours"
    assert len({line.get_linestyle() for line in lines}) == 3, "and three dash styles"
    assert len(text_samples({"one": "ab", "two": "cd"}).axes) == 2
    short, long = (text_samples({"one": "ab" * n}, width=10).get_figheight() for n in (2, 20))
    assert long > short + 0.19 * 2, "each wrapped line adds height: the figure is as tall as its text"
    with pytest.raises(ValueError, match="at least one"):
        text_samples({})


def test_block_diagram_names_the_slot_its_mechanisms_and_both_residuals():
    fig = block_diagram(["full causal", "MLA"], mlp_mult=3)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "fits: full causal · MLA" in texts and "attention (the slot)" in texts
    assert any("D → 3D → D" in t for t in texts) and texts.count("LayerNorm") == 2 and texts.count("+") == 2
    assert "the only place where positions mix" in texts and "each position on its own" in texts
    with pytest.raises(ValueError, match="at least one attention mechanism"):
        block_diagram([])


def test_leak_view_numbers_positions_from_zero():
    e = LeakExplorer({"full": tiny("full")}, VOCAB.encode("abcd")[None], VOCAB)
    labels = [t.get_text() for t in e.view.ax.get_xticklabels()]
    assert labels == ["0\na", "1\nb", "2\nc", "3\nd"]
