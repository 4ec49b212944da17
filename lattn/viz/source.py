"""Short excerpts of the package's own source, read with :mod:`inspect` when the notebook runs, so a lesson that
shows "here is the code" cannot drift from the code.

:func:`excerpt` returns an :class:`Excerpt`: a plain string (the code, with a one-line header naming the file and the
lines) that a notebook renders as a highlighted Python block and a text viewer shows as is.

Example: ``excerpt(LunaCausal, "_advance", start="key_sums", stop="read =")`` — the running-sum lines of causal Luna.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

__all__ = ["Excerpt", "excerpt"]

SKIP = ("refuse_causal(", "check_input(", "check_latents(")  # input validation: true, but not the mechanism


class Excerpt(str):
    """The excerpt's text; shown in Jupyter as a Python code block."""

    def _repr_markdown_(self) -> str:
        return f"```python\n{self}\n```"


def _body(lines: list[str]) -> int:
    """Index of the first line after the signature and the docstring of a dedented ``def``."""
    i = 0
    while not lines[i].rstrip().endswith(":") or lines[i].lstrip().startswith(("@", "#")):
        i += 1  # the signature may span several lines; it ends with "… -> T:" or "):"
    i += 1
    first = lines[i].strip()
    if first.startswith(('"""', "'''", 'r"""')):
        quote = first[first.index(first.lstrip("r")[0]) :][:3]
        if first.count(quote) >= 2 and len(first) > 3:
            return i + 1
        i += 1
        while quote not in lines[i]:
            i += 1
        return i + 1
    return i


def _where(fn: object) -> str:
    """The file that defines ``fn``, relative to its top-level package (``lattn/family/luna.py``), whatever the folders
    above the package are called: in a clone named ``lattn`` the path is ``…/lattn/lattn/family/luna.py``."""
    module = inspect.getmodule(fn)
    name = Path(inspect.getsourcefile(fn) or "?").name
    if module is None or not module.__name__ or module.__name__ == "__main__":
        return name
    package = module.__name__.split(".")
    if name != "__init__.py":
        package = package[:-1]  # a module's file sits in its parent package's folder
    return "/".join([*package, name])


def excerpt(
    obj: type | object,
    method: str = "forward",
    *,
    start: str | None = None,
    stop: str | None = None,
    skip: tuple[str, ...] = SKIP,
    max_lines: int = 24,
) -> Excerpt:
    """The body of ``obj.method`` (a class or an instance; docstring and input checks dropped), from the first line
    containing ``start`` to the first later line containing ``stop`` (both kept), at most ``max_lines`` lines.

    Raises ValueError when ``method``, ``start`` or ``stop`` is not found, so an excerpt that drifted fails loudly.
    """
    cls = obj if isinstance(obj, type) else type(obj)
    fn = getattr(cls, method, None)
    if fn is None or not callable(fn):
        raise ValueError(f"{cls.__name__} has no method {method!r}")
    source, first_line = inspect.getsourcelines(fn)
    lines = textwrap.dedent("".join(source)).splitlines()
    body = _body(lines)
    numbered = [(first_line + k, line) for k, line in enumerate(lines) if k >= body]
    numbered = [(n, line) for n, line in numbered if line.strip() and not any(p in line for p in skip)]
    if start is not None:
        hits = [k for k, (_, line) in enumerate(numbered) if start in line]
        if not hits:
            raise ValueError(f"{cls.__name__}.{method} has no line containing {start!r}")
        numbered = numbered[hits[0] :]
    if stop is not None:
        hits = [k for k, (_, line) in enumerate(numbered) if stop in line]
        if not hits:
            raise ValueError(f"{cls.__name__}.{method} has no line containing {stop!r} after the start")
        numbered = numbered[: hits[0] + 1]
    if len(numbered) > max_lines:
        numbered = [*numbered[:max_lines], (numbered[max_lines][0], "    ...")]
    code = textwrap.dedent("\n".join(line for _, line in numbered))
    header = f"# {_where(fn)} · {cls.__name__}.{method}, lines {numbered[0][0]}–{numbered[-1][0]}"
    return Excerpt(f"{header}\n{code}")
