"""Source excerpts for the notebooks (lattn.viz.source): read from the package, trimmed, and failing loudly on drift."""

import inspect

import pytest

from lattn.family import MAB, LunaCausal
from lattn.viz.source import Excerpt, excerpt


def test_excerpt_is_the_body_without_docstring_or_checks():
    text = excerpt(MAB)
    header, *code = text.splitlines()
    assert header.startswith("# lattn/family/set_transformer.py · MAB.forward, lines ")
    assert "refuse_causal" not in text and '"""' not in text
    source = inspect.getsource(MAB.forward)
    assert all(line.strip() in source for line in code)  # every shown line is a real line of the method
    assert isinstance(text, Excerpt) and text._repr_markdown_().startswith("```python\n# lattn/")


def test_start_stop_and_line_numbers():
    text = excerpt(LunaCausal, "_advance", start="key_sums", stop="read =")
    lines = text.splitlines()
    assert lines[1].startswith("key_sums") and lines[-1].startswith("read =")
    first, last = (int(n) for n in lines[0].rsplit("lines ", 1)[1].split("–"))
    source, start = inspect.getsourcelines(LunaCausal._advance)
    assert source[first - start].strip() == lines[1] and source[last - start].strip() == lines[-1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"method": "nope"}, "no method 'nope'"), ({"start": "not in the code"}, "no line containing")],
)
def test_drift_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        excerpt(MAB, **kwargs)


def test_long_bodies_are_cut():
    assert excerpt(LunaCausal, max_lines=3).splitlines()[-1].strip() == "..."
