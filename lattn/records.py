"""Queries over result records: pick runs by their fields and collect one number per seed.

A record is a plain dict, one trained model each (the files of ``python -m lattn.experiments bottleneck``): its
configuration (``part``, ``task``, ``task_args``, ``mixer``, ``dim``, ``heads``, ``positions``, ``seed``, ``train``,
``shifts``) and what was measured (``accuracy``, ``shifted``, ``map_tv``, …). This module only reads records; the
experiments that write them are :mod:`lattn.experiments`, the verdicts drawn from the per-seed numbers are
:mod:`lattn.stats`, and the figures (:mod:`lattn.viz.bottleneck`) use these queries too.

Example::

    >>> runs = load("bottleneck_runs.json")
    >>> seed_values(runs, "num_latents", part="sweep", task="global", kind="latent")   # {1: [0.96, …], 2: […], …}
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from typing import Any

from .tasks import make_task

__all__ = ["band", "curve", "load", "mean_over_seeds", "per_seed", "seed_values", "select", "spread", "value_of"]


def load(name: str) -> Any:
    """A shipped result file of ``lattn/data/`` (parsed JSON)."""
    return json.loads(resources.files("lattn").joinpath("data", name).read_text())


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    """A record's fields, its task's fields (defaults included) and its mixer's fields, in one dict."""
    task = make_task(record["task"], record["task_args"])
    fields = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
    mixer = {**record["mixer"], "stages": tuple(record["mixer"].get("stages", ()))}  # JSON lists → tuples
    return {**fields, **mixer, **record}


def select(records: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    """The records whose fields match ``where``; task and mixer fields count too, with their defaults.

    Example: ``select(runs, task="retrieval", kind="latent", num_facts=16)``.
    """
    return [r for r in records if all(_flat(r).get(k) == v for k, v in where.items())]


def value_of(record: dict[str, Any], y: str) -> float:
    """One measured number of a record: a field (``"accuracy"``), a shift (``"seq_len=512"``, looked up in
    ``shifted``) or a map distance (``"map_tv.write"``, a field of ``map_tv``)."""
    if y in record.get("shifted", {}):
        return record["shifted"][y]
    if y.startswith("map_tv."):
        return record["map_tv"][y.removeprefix("map_tv.")]
    return record[y]


def seed_values(records: list[dict[str, Any]], x: str, y: str = "accuracy", **where: Any) -> dict[Any, list[float]]:
    """For each value of field ``x`` among the selected records (sorted), the values of ``y`` (see
    :func:`value_of`), one per seed, in the records' order."""
    groups: dict[Any, list[float]] = {}
    for r in select(records, **where):
        groups.setdefault(_flat(r)[x], []).append(value_of(r, y))
    return {v: groups[v] for v in sorted(groups)}


def per_seed(records: list[dict[str, Any]], y: str = "accuracy", **where: Any) -> list[float]:
    """The values of ``y`` (see :func:`value_of`) of one setting, one per seed, in seed order: what
    :func:`lattn.stats.compare` takes. ``where`` must pick one setting: two records with the same seed are an error.

    Example: ``per_seed(runs, part="sweep", task="global", label="latent M=1")`` → five accuracies.
    """
    chosen = sorted(select(records, **where), key=lambda r: r["seed"])
    seeds = [r["seed"] for r in chosen]
    if not chosen or len(set(seeds)) != len(seeds):
        raise ValueError(
            f"where={where} must pick one setting trained from distinct seeds, got {len(chosen)} records with "
            f"seeds {seeds}; add fields (part, task, label, …) until one setting is left"
        )
    return [value_of(r, y) for r in chosen]


def curve(records: list[dict[str, Any]], x: str, y: str = "accuracy", **where: Any) -> tuple[list, list[float]]:
    """``(xs, ys)``: for each value of field ``x`` among the selected records (sorted), the mean of ``y`` over the
    seeds. Example: ``curve(runs, "num_latents", part="sweep", task="global", kind="latent")`` → accuracy vs M."""
    groups = seed_values(records, x, y, **where)
    return list(groups), [sum(v) / len(v) for v in groups.values()]


def band(records: list[dict[str, Any]], x: str, y: str = "accuracy", **where: Any):
    """``(xs, means, lows, highs)`` over the seeds of each x (lowest and highest seed: the seed spread), e.g. for
    a line with a shaded band: ``band(runs, "num_latents", part="sweep", task="global", kind="latent")``."""
    groups = seed_values(records, x, y, **where)
    vals = list(groups.values())
    return list(groups), [sum(v) / len(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def spread(values: list[float], digits: int = 2) -> str:
    """Mean and seed range as text, e.g. ``"0.63 (0.58–0.66)"``; one value alone is just that value."""
    mean = f"{sum(values) / len(values):.{digits}f}"
    return mean if len(values) == 1 else f"{mean} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def mean_over_seeds(records: list[dict[str, Any]], y: str = "accuracy", **where: Any) -> float | None:
    """Mean of ``y`` over the seeds of the selected records (None if there are none), e.g. a baseline's accuracy:
    ``mean_over_seeds(runs, part="sweep", task="global", label="full")``."""
    _, ys = curve(records, "part", y, **where)
    return ys[0] if ys else None
