"""The in-kernel explorer check itself: it passes a working explorer and catches broken ones.

Runs in the main environment (ipywidgets 8) with tiny explorers; the Colab-like run uses the same code under 7.7.1.
"""

from __future__ import annotations

import json

import ipywidgets as W
import numpy as np
import pytest
from explorer_check import check_explorers, find_explorers, other_value, problems

from lattn.widgets.base import Explorer


class Heat(Explorer):
    """A 4×4 map that depends on both controls (deterministically)."""

    figsize = (1.5, 1.2)
    dpi = 60

    def controls(self):
        return {
            "k": W.IntSlider(value=1, min=0, max=5, description="k", continuous_update=False),
            "flip": W.Checkbox(value=False, description="flip"),
        }

    def compute(self):
        grid = np.add.outer(3 * np.arange(4), np.arange(4)) * (self.k.value + 1) % 7 / 6  # (4, 4) in [0, 1]
        return {"map": grid[::-1] if self.flip.value else grid}

    def setup(self, fig):
        self.im = fig.add_subplot().imshow(np.zeros((4, 4)), vmin=0, vmax=1)

    def draw(self, state):
        self.im.set_data(state["map"])


class Frozen(Heat):
    """Renders on every change, but the picture never changes."""

    def draw(self, state):
        pass


class Noisy(Heat):
    """Fresh randomness on each render: the same settings give another picture."""

    def draw(self, state):
        self.im.set_data(np.random.default_rng().random((4, 4)))


def test_a_working_explorer_passes():
    report = check_explorers({"heat": Heat()})
    assert [c["control"] for c in report[0]["controls"]] == ["k", "flip"]
    assert all(c["renders"] == 1 and c["changed_pixels"] > 20 for c in report[0]["controls"])
    assert problems(report) == ([], [])


def test_an_explorer_whose_picture_never_changes_fails():
    failures, warnings = problems(check_explorers({"frozen": Frozen()}))
    assert failures == ["frozen (Frozen): no control changes the picture"]
    assert len(warnings) == 2  # one per control


def test_an_explorer_that_is_not_deterministic_fails():
    failures, _ = problems(check_explorers({"noisy": Noisy()}))
    assert any("the same control values gave another picture" in f for f in failures), failures


def test_controls_are_left_as_they_were():
    heat = Heat()
    before = (heat.k.value, heat.flip.value, heat.png)
    check_explorers({"heat": heat})
    assert (heat.k.value, heat.flip.value) == before[:2]


def test_explorers_are_found_in_globals_lists_and_dicts_once():
    a, b, c = Heat(), Heat(), Heat()
    namespace = {"a": a, "again": a, "pair": [b, 1], "by_name": {"c": c}, "_hidden": Heat(), "Out": {1: Heat()}}
    assert [name for name, _ in find_explorers(namespace)] == ["a", "pair[0]", "by_name['c']"]


@pytest.mark.parametrize(
    ("widget", "expected"),
    [
        (W.IntSlider(value=2, min=0, max=5, step=1), ("value", 3)),
        (W.IntSlider(value=5, min=0, max=5, step=1), ("value", 4)),  # at the top: one step down
        (W.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.5), ("value", 1.5)),
        (W.Checkbox(value=True), ("value", False)),
        (W.Dropdown(options=["a", "b", "c"], value="c"), ("index", 0)),  # wraps round
        (W.IntRangeSlider(value=(1, 3), min=0, max=5, step=1), ("value", (1, 4))),
        (W.Text(value="ab"), ("value", "abx")),
    ],
)
def test_other_value_is_another_valid_setting(widget, expected):
    assert other_value(widget) == expected


def test_other_value_of_a_log_slider_moves_its_exponent():
    trait, value = other_value(W.FloatLogSlider(value=10.0, base=10, min=-1, max=2, step=0.5))
    assert trait == "value" and value == pytest.approx(10**1.5)


@pytest.mark.parametrize(
    "widget",
    [W.Button(description="go"), W.IntSlider(value=0, min=0, max=0), W.Dropdown(options=["only"])],
    ids=["button", "single-value slider", "single option"],
)
def test_controls_without_another_value_are_skipped(widget):
    with pytest.raises(LookupError):
        other_value(widget)


def test_the_driver_reads_the_kernels_report_and_checks_the_pinned_versions():
    import check_explorers as driver

    report = {"versions": dict.fromkeys(driver.PINS, "0.0"), "explorers": check_explorers({"heat": Heat()})}
    printed = f"something else\n{driver.MARKER}{json.dumps(report)}\n"
    failures, warnings = driver.report_problems(driver.parse_report(printed))
    assert len(failures) == 1 and failures[0].startswith("the kernel did not run in the Colab-like env")
    assert warnings == []
    with pytest.raises(ValueError, match="printed no report"):
        driver.parse_report("NameError: name 'x' is not defined")
