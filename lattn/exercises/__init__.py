"""Self-check functions for the notebooks' exercises: one submodule per lesson.

A checker takes the learner's answer, prints one deterministic line — ``✅ …`` when right, ``❌ Not yet: <hint>``
when wrong — and returns a truthy/falsy :class:`Verdict` (which displays nothing). It never raises on a wrong answer (so a notebook runs top to bottom with the
exercise still open), and ``None`` (the placeholder in the notebook) prints where to start.

Example::

    >>> from lattn.exercises import basics as ex
    >>> ex.check_softmax(my_softmax)
    ✅ Correct: your softmax matches torch.softmax on 3 random inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Verdict", "report", "run_check"]


class Verdict:
    """Truthy when the answer was right. Shows nothing in a notebook (the printed line is the message)."""

    def __init__(self, ok: bool) -> None:
        self.ok = bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Verdict(ok={self.ok})"

    def _ipython_display_(self) -> None:
        pass


def report(ok: bool, success: str, hint: str) -> Verdict:
    """Print the verdict line and return it as a :class:`Verdict`."""
    print(f"✅ Correct: {success}" if ok else f"❌ Not yet: {hint}")
    return Verdict(ok)


def run_check(answer: Any, check: Callable[[Any], tuple[bool, str]], success: str, start: str) -> Verdict:
    """Shared skeleton: ``None`` → print ``start``; otherwise ``check(answer)`` → (ok, hint); exceptions in the
    learner's code become a hint instead of a traceback."""
    if answer is None:
        print(f"✏️  Your turn: {start}")
        return Verdict(False)
    try:
        ok, hint = check(answer)
    except Exception as exc:  # the learner's code failed: explain, don't crash the notebook
        ok, hint = False, f"your answer raised {type(exc).__name__}: {exc}"
    return report(ok, success, hint)
