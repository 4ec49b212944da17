"""Verdicts from a few seeds: the means of two settings, a 95 % interval of their difference, and one rule.

:func:`compare` takes the per-seed results of two settings (or of one setting and a fixed reference number) and
returns a :class:`Comparison` whose ``str`` is the one line a notebook prints, e.g.::

    latent M=1 vs window ±4: 0.96 vs 0.81 (5 vs 5 seeds), difference +0.152, 95% interval [+0.144, +0.160]
    → latent M=1 beats window ±4

**The interval.** Welch's t-interval for the difference of two means (unpaired, unequal variances): difference ±
t · √(s_a²/n_a + s_b²/n_b), with t the 97.5 % quantile of Student's t at the Welch–Satterthwaite degrees of
freedom. Against a fixed reference number (no seeds of its own) it is the one-sample t-interval of the mean.
Unpaired, because two settings trained from the same seed share their data order but not their weights.

**The rule.** The interval wholly above 0: "A beats B"; wholly below: "B beats A"; otherwise "within noise".
"Within noise" means that these seeds cannot resolve the difference, not that the settings are equal. With 5
seeds each, t ≈ 2.3–2.8 and the half-width is about 1.5–1.8 seed standard deviations: differences smaller than
that stay unresolved, and among many comparisons about 1 in 20 true ties is still called a win.

Where the records come from and how to query them: :mod:`lattn.records`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LEVEL", "Comparison", "compare", "t_quantile"]

LEVEL = 0.95  # the coverage of every interval the course prints


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), as in Numerical Recipes' betacf."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # fmt: skip
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularised incomplete beta function I_x(a, b), 0 ≤ x ≤ 1, given x and y = 1 − x (each computed without
    cancellation by the caller)."""
    if x <= 0.0 or y <= 0.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def _t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom (bisection on the CDF).

    Example: ``t_quantile(0.975, 4)`` = 2.776, ``t_quantile(0.975, 8)`` = 2.306 (the tables' values).
    """
    if not 0 < p < 1 or not df > 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p!r}, df={df!r}")
    lo, hi = -1e4, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def _mean_var(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    return mean, (sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0)


@dataclass(frozen=True)
class Comparison:
    """Two settings compared over their seeds: means, the difference A − B, its interval, the verdict.

    ``str(comparison)`` is the printed line; ``verdict`` is "A beats B", "B beats A" or "within noise" with the
    settings' names in place of A and B.
    """

    name_a: str
    name_b: str
    mean_a: float
    mean_b: float
    n_a: int
    n_b: int  # 0: B is a fixed reference number, not a setting with seeds
    low: float
    high: float
    digits: int = 2

    @property
    def difference(self) -> float:
        return self.mean_a - self.mean_b

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return f"{self.name_a} beats {self.name_b}"
        if self.high < 0:
            return f"{self.name_b} beats {self.name_a}"
        return "within noise"

    def __str__(self) -> str:
        d, e = self.digits, self.digits + 1
        seeds = f"{self.n_a} vs {self.n_b} seeds" if self.n_b else f"{self.n_a} seeds vs a fixed reference"
        return (
            f"{self.name_a} vs {self.name_b}: {self.mean_a:.{d}f} vs {self.mean_b:.{d}f} ({seeds}), difference "
            f"{self.difference:+.{e}f}, {LEVEL:.0%} interval [{self.low:+.{e}f}, {self.high:+.{e}f}] → {self.verdict}"
        )

    def cell(self) -> str:
        """The short form for tables: ``+0.031 [+0.012, +0.050] A`` (A / B: that setting beats the other; ~: noise)."""
        e = self.digits + 1
        mark = "A" if self.low > 0 else "B" if self.high < 0 else "~"
        return f"{self.difference:+.{e}f} [{self.low:+.{e}f}, {self.high:+.{e}f}] {mark}"


def compare(
    a: Sequence[float], b: Sequence[float] | float, names: tuple[str, str] = ("A", "B"), digits: int = 2
) -> Comparison:
    """Compare the per-seed results ``a`` of one setting with ``b``: the per-seed results of another setting
    (Welch's t-interval of the difference of the means) or one fixed reference number (the one-sample t-interval
    of ``mean(a) − b``). Higher is better. ``digits``: decimals of the printed means (the difference gets one
    more). Returns a :class:`Comparison`; print it for the verdict line.
    """
    a = [float(v) for v in a]
    fixed = isinstance(b, (int, float))
    b_values = [float(b)] if fixed else [float(v) for v in b]
    if len(a) < 2 or (not fixed and len(b_values) < 2):
        raise ValueError(
            f"compare needs at least 2 values per setting (seeds), got {len(a)} and {len(b_values)}; "
            "pass a fixed reference as one number"
        )
    (mean_a, var_a), (mean_b, var_b) = _mean_var(a), _mean_var(b_values)
    se_a, se_b = var_a / len(a), (0.0 if fixed else var_b / len(b_values))
    se = math.sqrt(se_a + se_b)
    if se == 0:  # every seed gave the same number: the interval is the difference itself
        half = 0.0
    else:
        df = (se_a + se_b) ** 2 / (se_a**2 / (len(a) - 1) + (0.0 if fixed else se_b**2 / (len(b_values) - 1)))
        half = t_quantile(0.5 + LEVEL / 2, df) * se
    diff = mean_a - mean_b
    return Comparison(names[0], names[1], mean_a, mean_b, len(a), 0 if fixed else len(b_values), diff - half,
                      diff + half, digits)  # fmt: skip
