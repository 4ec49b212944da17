"""Notebook 01's figures: the hero diagram carries each stage's update rule; the dependence figure puts the
normalised dependence and the per-head effective maps on one colour scale; the sensitivity figure draws an exact 0
at the bottom edge; rank_errors falls from 1 to 0 and agrees with low_rank; no picture repeats within notebooks 00-02."""

import numpy as np
import pytest
import torch

from lattn.analysis import low_rank, rank_errors, singular_values
from lattn.viz.basics import UPDATE_RULES, dependence_figure, hero_figure, sensitivity_figure


def test_hero_figure_has_three_panels_and_their_rules():
    fig = hero_figure(8, 3)
    texts = [t.get_text() for t in fig.axes[0].texts]
    for score, update in UPDATE_RULES.values():
        assert score in texts and update in texts
    assert "softmax over latents" in " ".join(texts) and "softmax over tokens" in " ".join(texts)


def test_dependence_figure_shares_one_scale():
    dep = torch.rand(6, 6)
    eff = torch.softmax(torch.randn(2, 6, 6), -1)
    fig = dependence_figure(dep, eff, role=torch.tensor([0, 0, 1, 1, 2, 2]))
    maps = [ax.images[0] for ax in fig.axes if ax.images and ax.get_title() != "role"]
    assert len(maps) == 3
    for im in maps:
        assert im.get_clim() == pytest.approx((0.0, eff.max().item()))
    np.testing.assert_allclose(maps[0].get_array().sum(-1), 1, rtol=1e-6)  # rows normalised
    with pytest.raises(ValueError, match="need dependence"):
        dependence_figure(dep, eff[:, :5])


def test_sensitivity_figure_puts_exact_zero_and_rounding_noise_at_the_bottom():
    moves = {"window": torch.tensor([1.0, 0.5, 3e-8, 0.0]), "full": torch.tensor([1.0, 0.3, 0.2, 0.1])}
    fig = sensitivity_figure(moves, token=0, window=1)  # 3e-8 < 1e-6 of the largest move: noise, not a move
    ax = fig.axes[0]
    window_line = ax.get_lines()[0]
    assert list(window_line.get_ydata()[-2:]) == pytest.approx([0.01, 0.01]) and ax.get_ylim()[0] < 0.01


def test_rank_errors_match_low_rank():
    a = torch.softmax(torch.randn(10, 10, generator=torch.Generator().manual_seed(0)), -1)
    errors = rank_errors(singular_values(a))
    assert errors.shape == (11,) and errors[0] == pytest.approx(1) and errors[-1] == 0
    assert (errors.diff() <= 1e-12).all()
    for r in (1, 3, 7):
        assert errors[r].item() == pytest.approx(low_rank(a, r)[1], abs=1e-12)


@pytest.mark.parametrize("stem", ["00_standard_attention", "01_what_is_latent_attention", "02_complexity"])
def test_no_byte_identical_pictures_within_a_notebook(stem):
    """Each stored picture of notebooks 00-02 shows something the others do not (02 once showed one twice)."""
    import hashlib
    import json
    from pathlib import Path

    nb = json.loads((Path(__file__).parent.parent / "notebooks" / f"{stem}.ipynb").read_text())
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                digest = hashlib.sha1("".join(png).encode()).hexdigest()
                assert digest not in seen, f"cell {i} repeats the picture of cell {seen[digest]}"
                seen[digest] = i
