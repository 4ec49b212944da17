"""In-kernel check of every explorer a notebook left in its namespace (runs inside the notebook's kernel).

``check_explorers(globals())`` finds each ``lattn.widgets.base.Explorer`` bound to a global name (or held in a
global list, tuple or dict), then for each of its controls sets another valid value the way the frontend would
(assigning the widget's ``value``/``index``, which fires the explorer's observer), and records whether that gave
exactly one render, a different picture and a rewritten status label; putting the old value back must give the old
picture again. Returns plain dicts, so the driver can read them as JSON.

NOTE: "different picture" is judged on decoded pixels, not bytes: re-rendering an unchanged figure that has a
layout engine (constrained/tight) moves a few pixels, so its PNG bytes differ although nothing changed.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import ipywidgets as W
import matplotlib.image as mpimg

from lattn.widgets.base import Explorer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN_CHANGED_FRACTION = 0.001  # a picture "changed" when at least this share of its pixels did (and 20 or more)
MIN_CHANGED_PIXELS = 20
IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit"}  # the shell's own globals (Out caches results)


def find_explorers(namespace: dict[str, Any]) -> list[tuple[str, Explorer]]:
    """(name, explorer) for each distinct explorer reachable from the namespace's public names."""
    found: dict[int, tuple[str, Explorer]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() on some torch objects warns
        for name, obj in list(namespace.items()):
            if name.startswith("_") or name in IPYTHON_NAMES:
                continue
            candidates = [(name, obj)]
            if isinstance(obj, (list, tuple)):
                candidates += [(f"{name}[{i}]", item) for i, item in enumerate(obj)]
            elif isinstance(obj, dict):
                candidates += [(f"{name}[{key!r}]", item) for key, item in obj.items()]
            for label, item in candidates:
                if isinstance(item, Explorer) and id(item) not in found:
                    found[id(item)] = (label, item)
    return list(found.values())


def changed_pixels(a: bytes, b: bytes) -> tuple[int, int]:
    """(pixels that differ, pixels in all) between two PNGs; all of them when the sizes differ."""
    pa, pb = (mpimg.imread(io.BytesIO(p), format="png") for p in (a, b))
    total = pb.shape[0] * pb.shape[1]
    if pa.shape != pb.shape:
        return total, total
    return int((pa != pb).any(axis=-1).sum()), total


def is_change(changed: int, total: int) -> bool:
    return changed >= max(MIN_CHANGED_PIXELS, MIN_CHANGED_FRACTION * total)


def other_value(control: W.Widget) -> tuple[str, Any]:
    """(trait, value): a different valid setting of ``control``; LookupError when there is none to try."""
    if isinstance(control, W.Button):
        raise LookupError("a button has no value")
    if hasattr(control, "options") and isinstance(getattr(control, "index", None), int):
        if len(control.options) < 2:
            raise LookupError("fewer than two options")
        return "index", (control.index + 1) % len(control.options)
    value = control.value
    if isinstance(value, bool):
        return "value", not value
    if isinstance(control, W.FloatLogSlider):
        exponent = math.log(value, control.base)
        exponent += control.step if exponent + control.step <= control.max else -control.step
        return "value", control.base**exponent
    if isinstance(value, (int, float)):
        step = getattr(control, "step", None) or 1
        top, bottom = getattr(control, "max", None), getattr(control, "min", None)
        if top is None or value + step <= top:
            return "value", value + step
        if bottom is None or value - step >= bottom:
            return "value", value - step
        raise LookupError("the slider has a single value")
    if isinstance(value, tuple) and len(value) == 2 and hasattr(control, "max"):
        low, high = value
        step = getattr(control, "step", None) or 1
        if high + step <= control.max:
            return "value", (low, high + step)
        if low - step >= control.min:
            return "value", (low - step, high)
        raise LookupError("the range spans the whole slider")
    if isinstance(value, str):
        return "value", value + "x"
    raise LookupError(f"no rule for a {type(control).__name__}")


def control_values(explorer: Explorer) -> dict[str, Any]:
    return {name: c.value for name, c in explorer._controls.items() if hasattr(c, "value")}


def check_control(explorer: Explorer, name: str, control: W.Widget) -> dict[str, Any]:
    result: dict[str, Any] = {"control": name, "widget": type(control).__name__}
    try:
        trait, new = other_value(control)
    except LookupError as why:
        return {**result, "skipped": str(why)}
    old, values0 = getattr(control, trait), control_values(explorer)
    # NOTE: bytes(): ipywidgets 8 keeps Image.value as a memoryview (a CByteMemoryView trait), 7.7.1 as bytes
    png0, renders0, status0 = bytes(explorer.png), explorer.renders, explorer.status.value
    setattr(control, trait, new)
    png1 = bytes(explorer.png)
    changed, total = changed_pixels(png0, png1)
    result.update(
        old=repr(old),
        new=repr(getattr(control, trait)),
        renders=explorer.renders - renders0,
        changed_pixels=changed,
        pixels=total,
        png_valid=png1.startswith(PNG_MAGIC),
        status_before=status0,
        status_after=explorer.status.value,
        status_current=explorer.status.value.startswith(f"rendered {explorer.renders}:"),
    )
    setattr(control, trait, old)
    # same control values must give the same picture; a coupled control (e.g. a preset that switched to "custom")
    # may not come back by itself, and then there is nothing to compare
    coupled = sorted(k for k, v in control_values(explorer).items() if k != name and v != values0[k])
    result["coupled"] = coupled
    result["restored_changed_pixels"] = None if coupled else changed_pixels(png0, bytes(explorer.png))[0]
    return result


def check_explorers(namespace: dict[str, Any]) -> list[dict[str, Any]]:
    report = []
    for label, explorer in find_explorers(namespace):
        controls = [check_control(explorer, name, c) for name, c in explorer._controls.items()]
        report.append({"name": label, "type": type(explorer).__name__, "controls": controls})
    return report


def described(status: str) -> str:
    """The status label without its render count: ``"rendered 3: n=4"`` → ``"n=4"``."""
    return status.split(":", 1)[-1].strip()


def problems(report: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(failures, warnings), one line each; used by the driver on the JSON it got back.

    Failures: a change that did not give exactly one render, a valid PNG and a rewritten status; same control values
    that gave another picture; an explorer none of whose controls changes the picture. Warnings: one control whose
    change left the picture or the status text as it was (it may be legitimate, e.g. a value snapped back to a valid
    one; the browser tests require both for the controls they move).
    """
    failures, warnings_ = [], []
    for ex in report:
        moved = [c for c in ex["controls"] if "skipped" not in c]
        if not any(is_change(c["changed_pixels"], c["pixels"]) for c in moved):
            failures.append(f"{ex['name']} ({ex['type']}): no control changes the picture")
        for c in moved:
            where = f"{ex['name']}.{c['control']} ({c['widget']} {c['old']} → {c['new']})"
            if c["renders"] != 1:
                failures.append(f"{where}: {c['renders']} renders instead of 1")
            if not c["png_valid"]:
                failures.append(f"{where}: the image is not a PNG")
            if not c["status_current"]:
                failures.append(f"{where}: status label not rewritten ({c['status_after']!r})")
            restored = c["restored_changed_pixels"]
            if restored is not None and is_change(restored, c["pixels"]):
                failures.append(f"{where}: the same control values gave another picture ({restored} pixels differ)")
            if not is_change(c["changed_pixels"], c["pixels"]):
                warnings_.append(f"{where}: the picture did not change ({c['changed_pixels']} pixels)")
            if described(c["status_after"]) == described(c["status_before"]):
                warnings_.append(f"{where}: the status label does not report the change ({c['status_after']!r})")
    return failures, warnings_
