"""A training run shows a tqdm bar and leaves one plain line with its final numbers; progress=False prints nothing;
the numbers do not depend on the bar; a stored notebook keeps the lines and pictures, never a frozen bar."""

import re

import nbformat
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lattn.display import FALLBACK, WIDGET_VIEW
from lattn.lm import CharLM, LMConfig, train_lm
from lattn.lm_data import CharCorpus
from lattn.notebooks import clean
from lattn.tagger import MixerSpec
from lattn.tasks import ClusterMajority
from lattn.train import History, train

# what tests/nbval_sanitize.cfg masks in the line: the wall time, the one machine-dependent part
TIME = re.compile(r"steps, \d+(\.\d+)? s\)")
LINE = re.compile(r"trained latent M=2: loss (\S+), accuracy (\S+) \(40 steps, \d+\.\d s\)")


def run(progress: bool, desc: str = "latent M=2") -> tuple[History, torch.nn.Module]:
    task = ClusterMajority(seq_len=12)
    model = MixerSpec("latent", num_latents=2).tagger(task, dim=16, heads=2, seed=0)
    return train(model, task, steps=40, batch_size=8, seed=0, progress=progress, desc=desc), model


def test_one_line_per_run_with_the_final_numbers(capsys):
    history, _ = run(progress=True)
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1, out
    match = LINE.fullmatch(out.strip())
    assert match, out
    assert match.groups() == (f"{history.loss[-1]:.3g}", f"{history.accuracy[-1]:.2f}")
    assert TIME.sub("steps, T s)", out) == f"trained latent M=2: loss {history.loss[-1]:.3g}, accuracy " + (
        f"{history.accuracy[-1]:.2f} (40 steps, T s)\n"
    )


def test_progress_false_prints_nothing(capsys):
    run(progress=False)
    assert capsys.readouterr() == ("", "")


def test_the_bar_does_not_change_the_numbers(capsys):
    (quiet, a), (loud, b) = run(progress=False), run(progress=True)
    assert quiet == loud and quiet.loss == loud.loss  # History equality leaves out the wall time
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_summary_rounds_for_stable_comparison():
    h = History(loss=[0.7, 0.123456], accuracy=[0.5, 0.96875], val_steps=[0, 2], val_loss=[2.0, 1.23456], seconds=1.26)
    assert (
        h.summary("latent M=4")
        == "trained latent M=4: loss 0.123, accuracy 0.97, validation loss 1.23 (2 steps, 1.3 s)"
    )
    assert History(loss=[0.01234], seconds=12.34).summary() == "trained: loss 0.0123 (1 steps, 12.3 s)"


def test_language_model_line_has_the_validation_loss(capsys):
    corpus = CharCorpus.load()
    model = CharLM.build(LMConfig(corpus.vocab.size, kind="full", dim=16, heads=2, layers=1, context=8), seed=0)
    history = train_lm(model, corpus, 6, batch_size=4, eval_every=3, desc="full")
    out = capsys.readouterr().out
    expected = f"trained full: loss {history.loss[-1]:.3g}, validation loss {history.val_loss[-1]:.3g} (6 steps, T s)\n"
    assert TIME.sub("steps, T s)", out) == expected


def test_executor_drops_frozen_bars_and_joins_the_lines():
    view = {"version_major": 2, "version_minor": 0, "model_id": "0" * 32}
    lines = [
        "trained latent M=2: loss 0.1, accuracy 0.9 (300 steps, 1.0 s)\n",
        "trained full: loss 0.2 (3 steps, 0.1 s)\n",
    ]
    nb = new_notebook(
        cells=[
            new_code_cell(
                "train(...)",
                execution_count=1,
                outputs=[
                    # an old tqdm bar (its text is the frozen bar), then the bar this package shows (no text at all)
                    new_output("display_data", data={WIDGET_VIEW: view, "text/plain": "latent M=2:   0%|  | 0/300 [00:00<?, ?it/s]"}),
                    new_output("stream", name="stdout", text=lines[0]),
                    new_output("display_data", data={WIDGET_VIEW: view}),
                    new_output("stream", name="stdout", text=lines[1]),
                ],
            )
        ]
    )  # fmt: skip
    clean(nb)
    assert nb.cells[0].outputs == [new_output("stream", name="stdout", text="".join(lines))]


def test_a_notebook_run_stores_the_lines_and_the_pictures(tmp_path):
    """A real kernel: the bars it shows carry no text (strict nbval sees only the lines), and the stored file keeps
    one stream of lines per training cell and a picture + text per explorer."""
    from nbclient import NotebookClient

    train_code = """from lattn.tasks import ClusterMajority
from lattn.tagger import MixerSpec
from lattn.train import train
task = ClusterMajority(seq_len=12)
for m in (1, 2):
    train(MixerSpec("latent", num_latents=m).tagger(task, 16, 2), task, steps=5, batch_size=4, desc=f"latent M={m}")"""
    explorer_code = """import ipywidgets as W
from lattn.widgets.base import Explorer
class Dot(Explorer):
    figsize = (2.0, 1.5)
    def controls(self): return {"x": W.IntSlider(value=1, max=3)}
    def compute(self): return {"x": self.x.value}
    def setup(self, fig): self.dot, = fig.add_subplot().plot([0], [0], "o")
    def draw(self, state): self.dot.set_xdata([state["x"]])
dot = Dot()
display(dot)
dot"""
    nb = new_notebook(cells=[new_code_cell(train_code), new_code_cell(explorer_code)])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    bars = [o for o in nb.cells[0].outputs if o.output_type == "display_data"]
    assert len(bars) == 2 and all(set(o.data) == {WIDGET_VIEW} for o in bars)  # the live bars: no text to compare
    shown = nb.cells[1].outputs
    assert [o.output_type for o in shown] == ["display_data", "execute_result"]
    assert all(set(o.data) == {WIDGET_VIEW, "image/png", "text/plain"} for o in shown)

    clean(nb)
    (stream,) = nb.cells[0].outputs
    assert [TIME.sub("steps, T s)", line).split(":")[0] for line in stream.text.splitlines()] == [
        "trained latent M=1",
        "trained latent M=2",
    ]
    assert all(set(o.data) == {"image/png", "text/plain"} and o.data["text/plain"] == FALLBACK for o in shown)
    text = nbformat.writes(nb)
    assert WIDGET_VIEW not in text and "children=" not in text and "0%|" not in text
