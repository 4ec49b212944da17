"""Prose checked against outputs: every quantity a notebook's text quotes is one its own outputs show.

A *quantity* is a number with a unit or a ratio sign: ``16 GiB``, ``7.5 MiB``, ``38 ms``, ``77×``, ``93.3 %``. For each
quantity in a markdown cell, some stored output of the same notebook (printed text, a table, a figure's alt text …)
must show a number with the same unit that rounds to it at the precision the prose uses (``16 GiB`` matches a printed
``16.00 GiB``; ``77×`` matches ``77.3×``). Numbers that come from papers, definitions or the shipped long runs, not from
a cell, are listed in ``ALLOWED`` with the reason. The README's claims ledger is checked the same way against the
outputs of the notebooks each row names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

UNITS = {
    "×": "×",
    "x": "×",
    "%": "%",
    "GiB": "GiB",
    "MiB": "MiB",
    "KiB": "KiB",
    "GB": "GB",
    "MB": "MB",
    "kB": "KB",
    "KB": "KB",
    "ms": "ms",
    "µs": "µs",
    "s": "s",
}
# a number (thousands separators: comma, thin space, narrow no-break space) + optional space + a unit; not inside a
# longer word or number, and not an exponent or an index like "16²" / "x₁"
QUANTITY = re.compile(
    r"(?<![\w.,/^])(\d{1,3}(?:[,\u2009\u202f]\d{3})+|\d+)(\.\d+)?[ \u00a0\u2009\u202f]?"
    r"(×|%|GiB|MiB|KiB|GB|MB|kB|KB|ms|µs|s)(?![\w/])"
)

# Quantities quoted from papers, definitions or shipped long runs (not computed by a cell), per notebook, each with
# its reason in a comment. Keep these short: a number a cell can print belongs in an output instead.
ALLOWED: dict[str, set[str]] = {
    "00_standard_attention": set(),
    "01_what_is_latent_attention": set(),
    "02_complexity": set(),
    "03_bottleneck": set(),
    "04_latent_family": set(),
    "05_deepseek_mla": {
        "32 MiB",  # the last-level cache of the machine that measured the stored benchmark run (hardware spec)
        "80 GB",  # the calculator's default budget: the memory of one 80 GB GPU (A100/H100), a hardware size
    },
    "06_latent_transformer": set(),
}


def quantities(text: str) -> list[tuple[str, float, int, str]]:
    """(as written, value, decimals, unit) of every quantity in ``text``; code spans and LaTeX are skipped."""
    text = re.sub(r"`[^`]*`|\$[^$]*\$", " ", text)
    found = []
    for m in QUANTITY.finditer(text):
        whole, frac, unit = m.group(1), m.group(2) or "", m.group(3)
        digits = re.sub(r"[,\u2009\u202f]", "", whole)
        found.append((m.group(0).strip(), float(digits + frac), max(len(frac) - 1, 0), UNITS[unit]))
    return found


def output_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            parts.append("".join(out.get("text", "")))
            for key in ("text/plain", "text/markdown", "text/html"):
                parts.append("".join(out.get("data", {}).get(key, "")))
    return "\n".join(parts)


def shown(value: float, decimals: int, unit: str, outputs: str) -> bool:
    """Does some number with this unit in the outputs round to ``value`` at ``decimals``?"""
    for _, v, _, u in quantities(outputs):
        if u == unit and round(v, decimals) == round(value, decimals):
            return True
    return False


def mismatches(nb_path: Path) -> list[str]:
    nb = json.loads(nb_path.read_text())
    outputs = output_text(nb)
    allowed = ALLOWED.get(nb_path.stem, set())
    bad = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for written, value, decimals, unit in quantities("".join(cell["source"])):
            if written in allowed or shown(value, decimals, unit, outputs):
                continue
            bad.append(f"cell {i}: '{written}'")
    return bad


def test_quantity_parser():
    q = quantities("needs 16 GiB, 7.5 MiB and 1,024 ms; 77× faster, 93.3 % less; x₁ and 16² and `64 GiB` skipped")
    assert [(w, v, d, u) for w, v, d, u in q] == [
        ("16 GiB", 16.0, 0, "GiB"),
        ("7.5 MiB", 7.5, 1, "MiB"),
        ("1,024 ms", 1024.0, 0, "ms"),
        ("77×", 77.0, 0, "×"),
        ("93.3 %", 93.3, 1, "%"),
    ]
    assert shown(77, 0, "×", "speed-up 77.3×") and not shown(256, 0, "×", "speed-up 77.3×")
    assert shown(16, 0, "GiB", "needs 16.00 GiB") and not shown(64, 0, "GiB", "needs 16.00 GiB")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_prose_numbers_equal_outputs(nb_path):
    bad = mismatches(nb_path)
    assert not bad, f"{nb_path.name}: quantities in the prose that no output shows: {bad}"


# README ledger quantities that come from papers or definitions, not from a notebook's outputs
LEDGER_ALLOWED: set[str] = set()


def ledger_rows() -> list[tuple[str, list[str], str]]:
    """(claim, notebook stems, what we measured) of each row of the README's claims ledger."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Claims ledger", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("claim", "") or set(cells[0]) <= {"-"}:
            continue
        numbers = re.findall(r"\b(0\d)\b", cells[1])
        stems = [p.stem for p in NOTEBOOKS if p.stem[:2] in numbers]
        rows.append((cells[0], stems, cells[2]))
    return rows


def test_readme_ledger_numbers_equal_notebook_outputs():
    rows = ledger_rows()
    assert len(rows) >= 20, "the claims ledger was not found"
    bad = []
    for claim, stems, measured in rows:
        assert stems, f"ledger row {claim!r} names no notebook"
        outputs = "\n".join(output_text(json.loads((ROOT / "notebooks" / f"{s}.ipynb").read_text())) for s in stems)
        for written, value, decimals, unit in quantities(measured):
            if written not in LEDGER_ALLOWED and not shown(value, decimals, unit, outputs):
                bad.append(f"{claim[:40]!r}: '{written}' (notebooks {', '.join(s[:2] for s in stems)})")
    assert not bad, "README ledger quantities that no output of the named notebooks shows:\n" + "\n".join(bad)
