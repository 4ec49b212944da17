"""Notebook 03's explorer and exercise checkers: controls drive the drawn data; right answers pass, typical
mistakes get the right hint."""

import numpy as np
import pytest
import torch

from lattn.analysis import latent_roles
from lattn.exercises import bottleneck as ex
from lattn.experiments import bottleneck as bn
from lattn.tagger import MixerSpec
from lattn.tasks import ClusterMajority, KeyValueRetrieval, slot_memory_accuracy
from lattn.viz import bottleneck as vb
from lattn.widgets.bottleneck import TrainedLatentExplorer

TASKS = {"global": ClusterMajority(seq_len=16), "retrieval": KeyValueRetrieval(seq_len=16, num_facts=4)}


@pytest.fixture(scope="module")
def explorer():
    models = {name: MixerSpec("latent", num_latents=3).tagger(t, dim=16, heads=2, seed=0) for name, t in TASKS.items()}
    return TrainedLatentExplorer(models, TASKS, heads=2, profile_size=8)


def test_explorer_follows_controls(explorer, tmp_path):
    e = explorer.set(task="global", stage="write", head=0, example=0)
    assert e.state["map"].shape == (16, 3) and e.state["profile"].shape == (3, 4)
    np.testing.assert_allclose(e.state["map"].sum(1), 1, atol=1e-5)  # write rows: distributions over latents
    np.testing.assert_allclose(e.state["profile"].sum(1), 1, atol=1e-5)
    png = e.png
    e.stage.value = "gather"
    np.testing.assert_allclose(e.state["map"].sum(0), 1, atol=1e-5)  # transposed: each latent's column sums to 1
    assert e.png != png
    e.set(task="retrieval", stage="effective", head=1, example=3)
    assert e.state["map"].shape == (16, 16)
    groups = e.state["profile"]  # effective: (G, G), where each group's tokens read; present groups' rows sum to 1
    assert groups.shape == (len(e.state["names"]),) * 2
    present = np.isin(np.arange(len(groups)), e.state["groups"])
    np.testing.assert_allclose(groups[present].sum(1), 1, atol=1e-5)
    assert (groups[~present] == 0).all()
    assert e.view.prof_im.get_visible() and "each group" in e.view.prof_im.axes.get_title()  # no empty panel
    assert e.status.value.startswith(f"rendered {e.renders}:") and "task=retrieval" in e.status.value
    assert e.save(tmp_path / "t.png").stat().st_size > 1000


def test_explorer_shows_the_models_own_maps(explorer):
    e = explorer.set(task="retrieval", stage="broadcast", head=1, example=2)
    batch = TASKS["retrieval"].example(seed=2)
    logits, maps = e.models["retrieval"](batch.x, return_maps=True)
    np.testing.assert_allclose(e.state["map"], maps.broadcast[0, 1].detach().numpy(), atol=1e-6)
    scored = batch.scored[0].numpy()
    right = (logits[0].argmax(-1) == batch.y[0]).numpy()
    assert np.isnan(e.state["verdict"][~scored]).all()
    np.testing.assert_array_equal(e.state["verdict"][scored], right[scored])
    assert e.state["names"][-2:] == ["query", "filler"]


def test_explorer_profile_is_latent_roles(explorer):
    e = explorer.set(task="global", stage="write", head=1)
    task = TASKS["global"]
    batch = task(8, torch.Generator().manual_seed(2024))
    _, maps = e.models["global"](batch.x, return_maps=True)
    expected = latent_roles(maps.write, batch.role, 4, per_token=True)[1]
    np.testing.assert_allclose(e.state["profile"], expected.numpy(), atol=1e-6)


def test_explorer_rejects_mismatched_names():
    with pytest.raises(ValueError, match="same names"):
        TrainedLatentExplorer({"a": None}, {"b": None})


def test_capacity_checker(capsys):
    assert ex.check_capacity(slot_memory_accuracy(16, 4, 8))
    assert "✅" in capsys.readouterr().out
    assert not ex.check_capacity(0.25)
    assert "guess" in capsys.readouterr().out
    assert not ex.check_capacity(1 / 8)
    assert "pure guessing" in capsys.readouterr().out
    assert not ex.check_capacity(None)
    assert "Your turn" in capsys.readouterr().out
    assert not ex.check_capacity("many")
    assert "ValueError" in capsys.readouterr().out


def test_min_slots_checker(capsys):
    assert ex.check_min_slots(8)  # 7 slots: 7/8 + 1/64 = 0.891 < 0.9; 8 slots: 1.0
    assert not ex.check_min_slots(7)
    assert "more room" in capsys.readouterr().out
    assert not ex.check_min_slots(12)
    assert "smallest" in capsys.readouterr().out
    assert ex.check_min_slots(4, num_facts=8, target=0.5)


def test_latent_share_checker(capsys):
    def share(write, groups, g):
        onehot = torch.nn.functional.one_hot(groups, g).to(write.dtype)  # (N, G)
        mass = write.T @ onehot  # (M, G)
        return mass / mass.sum(-1, keepdim=True)

    assert ex.check_latent_share(share)
    assert not ex.check_latent_share(lambda w, gr, g: share(w, gr, g).T)
    assert "one row per latent" in capsys.readouterr().out
    assert not ex.check_latent_share(lambda w, gr, g: w.T @ torch.nn.functional.one_hot(gr, g).to(w.dtype))
    assert "sum to 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    "name", ["sweep", "ablation", "heads", "capacity", "distil", "generalisation", "length", "position"]
)
def test_result_figures_draw_the_shipped_numbers(name):
    runs = bn.load()
    fig = vb.length_figure(runs, bn.load(bn.TIMING_FILE)) if name == "length" else getattr(vb, f"{name}_figure")(runs)
    assert fig.axes and all(ax.lines or ax.patches or ax.collections for ax in fig.axes)
    if name == "sweep":  # the latent curve of the global panel is the stored mean accuracy per M
        line = fig.axes[0].lines[0]
        xs, ys = bn.curve(runs, "num_latents", part="sweep", task="global", kind="latent")
        np.testing.assert_allclose(line.get_xdata(), xs)
        np.testing.assert_allclose(line.get_ydata(), ys)
    if name == "distil":
        heights = [p.get_height() for p in fig.axes[0].patches]
        _, stored = bn.curve(runs, "num_latents", part="distil", kind="latent")  # the mean over the seeds
        assert all(any(abs(h - a) < 1e-9 for h in heights) for a in stored)
    if name == "position":  # one line per model and task: the stored mean per test length, training length included
        first = fig.axes[0].lines[0]
        runs_m = bn.select(runs, part="position", source="first", label="full")
        acc = [r["accuracy"] for r in runs_m]
        assert first.get_ydata()[0] == pytest.approx(sum(acc) / len(acc))
    seeds = len({r["seed"] for r in bn.select(runs, part="sweep")})
    texts = [fig.texts[0].get_text()] if fig.texts else []
    texts += [ax.get_title() for ax in fig.axes]
    if name not in ("capacity",):  # every figure with bands says over how many seeds
        assert any(f"{seeds} seeds" in t for t in texts), texts


def my_train_with(zero_grad=True, step=True, eval_mode=True, scored=True):
    """The exercise's solution, with one usual slip switched on."""

    def my_train(model, task, steps, batch_size, lr, seed):
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
        losses = []
        model.train()
        for _ in range(steps):
            batch = task(batch_size, g)
            logits = model(batch.x, mask=batch.mask)
            m = batch.scored if scored else batch.mask
            loss = torch.nn.functional.cross_entropy(logits[m], batch.y[m])
            if zero_grad:
                opt.zero_grad()
            loss.backward()
            if step:
                opt.step()
            losses.append(loss.item())
        if eval_mode:
            model.eval()
        held_out = task(256, torch.Generator().manual_seed(1234))
        with torch.no_grad():
            logits = model(held_out.x, mask=held_out.mask)
        right = logits.argmax(-1)[held_out.scored] == held_out.y[held_out.scored]
        return losses, right.float().mean().item()

    return my_train


@pytest.mark.parametrize(
    ("slip", "hint"),
    [
        ({}, "✅ Correct: your loop matches lattn.train.fit step by step"),
        ({"zero_grad": False}, "gradients add up across steps unless you clear them — call opt.zero_grad() every step"),
        ({"step": False}, "the weights never changed: after loss.backward(), call opt.step()"),
        ({"eval_mode": False}, "the model is still in training mode: call model.eval() before measuring"),
        ({"scored": False}, "take the cross-entropy over the scored tokens only"),
    ],
    ids=["right", "no-zero-grad", "no-step", "train-mode", "all-tokens"],
)
def test_training_loop_checker_names_each_slip(slip, hint, capsys):
    assert bool(ex.check_training_loop(my_train_with(**slip))) is (not slip)
    assert hint in capsys.readouterr().out


def test_training_loop_checker_other_answers(capsys):
    assert not ex.check_training_loop(None)
    assert "Your turn" in capsys.readouterr().out
    assert not ex.check_training_loop(lambda *a, **k: [0.5])
    assert "return two things" in capsys.readouterr().out
    assert not ex.check_training_loop(lambda *a, **k: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out
    _, model = ex.loop_model()
    assert model.training and any(isinstance(m, torch.nn.Dropout) for m in model.modules())
