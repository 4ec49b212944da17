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

__all__ = ["Verdict", "report", "run_check", "usual_slip"]


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


def run_check(
    answer: Any,
    check: Callable[[Any], tuple[bool, str]],
    success: str,
    start: str,
    explain: Callable[[Exception], str | None] | None = None,
) -> Verdict:
    """Shared skeleton: ``None`` → print ``start``; otherwise ``check(answer)`` → (ok, hint); exceptions in the
    learner's code become a hint instead of a traceback: ``explain(exc)`` (default :func:`usual_slip`) names the
    likely slip (None: no idea), and the exception's first line follows it."""
    if answer is None:
        print(f"✏️  Your turn: {start}")
        return Verdict(False)
    try:
        ok, hint = check(answer)
    except Exception as exc:  # the learner's code failed: explain, don't crash the notebook
        raised = f"your answer raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        slip = (explain or usual_slip)(exc)
        ok, hint = False, f"{slip} ({raised})" if slip else raised
    return report(ok, success, hint)


def usual_slip(exc: Exception) -> str | None:
    """The likely slip behind the errors Python and torch raise for a few usual mistakes (a reduction's pair, a
    missing keepdim, view after transpose, a float size, math on tensors, a wrong argument list, a function that
    returns nothing, a number given as text); None when the error says nothing specific."""
    text = str(exc)
    hints = [
        (("return_types.max", "return_types.min"), "s.max(dim) returns a pair (values, indices): take .values — "
         "s.max(-1, keepdim=True).values — or use s.amax(-1, keepdim=True)"),
        (("must match the size of tensor",), "the shapes do not line up: a reduction over the last axis needs "
         "keepdim=True, so that (…, N, 1) lines up with (…, N, K); to swap the last two axes of a 4-D tensor use "
         ".transpose(-1, -2) (.T reverses every axis)"),
        (("view size is not compatible",), "after transpose the tensor is not contiguous, so view() cannot merge its "
         "axes: use .reshape(…) (or .contiguous().view(…))"),
        (("cannot be multiplied", "mat1 and mat2"), "the inner sizes of a product must agree: (a×b)·(b×c); check "
         "which side needs a transpose"),
        (("but got float",), "a size must be an int: D / H is a float in Python, use D // H"),
        (("only one element tensors can be converted",), "math.exp works on one number; use torch.exp(s), which "
         "works on every entry"),
        (("positional argument",), "your function must take exactly the arguments the exercise names"),
        (("'NoneType'",), "your function returns None: end it with return …"),
        (("invalid literal for int()", "could not convert string to float"), "answer with a number (no units, "
         "no quotes), e.g. 8"),
        (("not 'function'",), "answer with a number, not a function: call your function, or compute the value"),
    ]  # fmt: skip
    return next((hint for keys, hint in hints if any(k in text for k in keys)), None)
