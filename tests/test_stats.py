"""lattn.stats and lattn.records: the verdict rule against hand-computed Welch intervals and Student's t tables,
and the record queries on hand-made records."""

import math

import pytest

from lattn import records as rec
from lattn.latent import STAGES
from lattn.stats import LEVEL, compare, t_quantile


@pytest.mark.parametrize(("df", "table"), [(1, 12.706), (2, 4.303), (4, 2.776), (8, 2.306), (30, 2.042), (1000, 1.962)])
def test_t_quantile_is_the_table(df, table):
    """97.5 % quantiles of Student's t as printed in the tables (3 decimals)."""
    assert t_quantile(0.975, df) == pytest.approx(table, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-table, abs=5e-4)  # symmetric
    assert t_quantile(0.5, df) == pytest.approx(0, abs=1e-9)


def test_welch_interval_by_hand():
    """a = 1, 2, 3, 4, 5 (mean 3, s² 2.5), b = 2, 4, 6 (mean 4, s² 4): se² = 0.5 + 4/3, Welch df = se⁴ / (0.5²/4 +
    (4/3)²/2) = 3.5328…; the quantile t is checked by integrating Student's density between −t and t (0.95)."""
    c = compare([1, 2, 3, 4, 5], [2, 4, 6], ("A", "B"))
    se = math.sqrt(0.5 + 4 / 3)
    df = (0.5 + 4 / 3) ** 2 / (0.5**2 / 4 + (4 / 3) ** 2 / 2)
    assert df == pytest.approx(3.5328, abs=1e-4)

    def density(t):  # Student's t density at df
        return (
            math.gamma((df + 1) / 2)
            / (math.sqrt(df * math.pi) * math.gamma(df / 2))
            * (1 + t * t / df) ** (-(df + 1) / 2)
        )

    t = t_quantile(0.975, df)
    steps = 20000  # the central mass between −t and t by the midpoint rule: 0.95
    assert sum(density(-t + (i + 0.5) * 2 * t / steps) for i in range(steps)) * 2 * t / steps == pytest.approx(
        0.95, abs=1e-6
    )
    assert (c.low, c.high) == pytest.approx((-1 - t * se, -1 + t * se), abs=1e-9)
    assert c.verdict == "within noise" and c.difference == pytest.approx(-1)


def test_verdicts_and_the_printed_line():
    a, b = [0.96, 0.95, 0.96, 0.97, 0.96], [0.81, 0.80, 0.81, 0.82, 0.81]
    win = compare(a, b, ("latent M=1", "window ±4"))
    assert win.verdict == "latent M=1 beats window ±4" and win.low > 0
    lose = compare(b, a, ("window ±4", "latent M=1"))
    assert lose.verdict == "latent M=1 beats window ±4" and lose.high < 0
    assert str(win) == (
        "latent M=1 vs window ±4: 0.96 vs 0.81 (5 vs 5 seeds), difference +0.150, "
        f"{LEVEL:.0%} interval [+0.140, +0.160] → latent M=1 beats window ±4"
    )
    assert win.cell() == "+0.150 [+0.140, +0.160] A" and lose.cell().endswith(" B")
    noisy = compare([0.90, 0.95, 0.85], [0.88, 0.93, 0.91])
    assert noisy.verdict == "within noise" and noisy.cell().endswith(" ~")
    same = compare([1.0, 1.0, 1.0], [1.0, 1.0])  # no spread, no difference
    assert (same.low, same.high, same.verdict) == (0, 0, "within noise")


def test_against_a_fixed_reference():
    """One setting vs a number: the one-sample t-interval of mean − reference (df = n − 1)."""
    c = compare([0.31, 0.30, 0.33, 0.32, 0.31], 0.23, ("trained", "one-slot reference"))
    mean, sd = 0.314, math.sqrt(sum((v - 0.314) ** 2 for v in (0.31, 0.30, 0.33, 0.32, 0.31)) / 4)
    half = 2.776445 * sd / math.sqrt(5)
    assert (c.low, c.high) == pytest.approx((mean - 0.23 - half, mean - 0.23 + half), abs=1e-6)
    assert c.n_b == 0 and "5 seeds vs a fixed reference" in str(c) and c.verdict == "trained beats one-slot reference"


def record(acc, seed, m=1, **extra):
    return {"part": "sweep", "task": "global", "task_args": {"seq_len": 32}, "dim": 32, "heads": 2,
            "positions": "none", "seed": seed,
            "mixer": {"kind": "latent", "num_latents": m, "layers": 1, "window": 0, "stages": list(STAGES)},
            "accuracy": acc, "shifted": {"noise=1.2": acc - 0.1}, "map_tv": {"write": acc / 10}, **extra}  # fmt: skip


def test_record_queries():
    runs = [record(0.9, 0), record(0.8, 1), record(0.7, 2), record(0.5, 0, m=4)]
    xs, mean, lo, hi = rec.band(runs, "num_latents")
    assert xs == [1, 4] and mean == pytest.approx([0.8, 0.5]) and lo == [0.7, 0.5] and hi == [0.9, 0.5]
    assert rec.curve(runs, "num_latents", "noise=1.2")[1] == pytest.approx([0.7, 0.4])
    assert rec.curve(runs, "num_latents", "map_tv.write")[1] == pytest.approx([0.08, 0.05])
    assert rec.seed_values(runs, "num_latents", seed=0) == {1: [0.9], 4: [0.5]}
    assert rec.select(runs, stages=STAGES) == runs  # the JSON list matches the tuple
    assert rec.select(runs, noise=0.6, num_clusters=4) == runs  # the task's defaults count
    assert rec.spread([0.9, 0.8, 0.7]) == "0.80 (0.70–0.90)" and rec.spread([0.5]) == "0.50"
    assert rec.mean_over_seeds(runs, num_latents=1) == pytest.approx(0.8)
    assert rec.mean_over_seeds(runs, num_latents=2) is None
    assert rec.value_of(runs[0], "noise=1.2") == pytest.approx(0.8)
    assert rec.per_seed(list(reversed(runs)), num_latents=1) == [0.9, 0.8, 0.7]  # in seed order
    with pytest.raises(ValueError, match=r"must pick one setting trained from distinct seeds, got 4 records"):
        rec.per_seed(runs)
