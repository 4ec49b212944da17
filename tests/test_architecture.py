"""The layering the design states, checked on the source (an AST walk of the imports; nothing is imported):

data flows one way, tasks → mechanisms → models → viz → widgets → notebooks. Compute modules import no notebook
executor, display code, figures or widgets; ``viz`` takes arrays and results (no experiments, benchmarks or
widgets); widgets hold no maths and draw nothing themselves. Imports count transitively, through every module of the
package an import reaches (a package's ``__init__`` included). Also: every file of the package is ≤ 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lattn"

COMPUTE = ("attention", "latent", "masks", "checks", "analysis", "family", "mla", "rope", "norm", "tasks", "tagger",
           "train", "blocks", "lm", "lm_cost", "lm_data", "complexity")  # fmt: skip
PRESENTATION = ("lattn.notebooks", "lattn.display", "lattn.viz", "lattn.widgets")
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    """The absolute names an ``from … import …`` brings in (``from .x import y``: x, and x.y when it is a module)."""
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]  # a module's relative imports start from its package
        base = base[: len(base) - (node.level - 1)]
        stem = ".".join(base + ([node.module] if node.module else []))
    else:
        stem = node.module or ""
    return [stem] + [f"{stem}.{alias.name}" for alias in node.names]


def _import_nodes(tree: ast.AST, *, in_functions: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a file: those that run when it is imported (module and class level), or with
    ``in_functions`` also those inside functions, which run only when the function is called."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif in_functions or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return found


def direct_imports(module: str, *, in_functions: bool = False) -> set[str]:
    """Every name ``module`` imports: at import time, or with ``in_functions`` anywhere in the file."""
    names: set[str] = set()
    for node in _import_nodes(ast.parse(MODULES[module].read_text()), in_functions=in_functions):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        else:
            names.update(_resolve(module, node))
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def reachable(module: str) -> dict[str, list[str]]:
    """Every module that importing ``module`` imports, through the package's own modules (third-party ones by their
    top-level name, e.g. ``matplotlib``), each with the chain of imports that reaches it."""
    chains = {module: [module]}
    todo = [module]
    while todo:
        current = todo.pop()
        for name in sorted(direct_imports(current)):
            parts = _with_parents(name) if name.startswith("lattn") else [name.split(".")[0]]
            for part in parts:  # importing lattn.a.b runs lattn/a/__init__.py too
                if part not in chains and (part in MODULES or not part.startswith("lattn")):
                    chains[part] = chains[current] + [part]
                    if part in MODULES:
                        todo.append(part)
    return chains


def _violations(module: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        " → ".join(chain)
        for name, chain in sorted(reachable(module).items())
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def _modules_under(*stems: str) -> list[str]:
    return [m for m in MODULES if any(m == f"lattn.{s}" or m.startswith(f"lattn.{s}.") for s in stems)]


def test_the_walk_sees_real_imports():
    """The walker itself: relative imports resolve, and a known chain is found."""
    assert "lattn.masks" in direct_imports("lattn.attention")
    assert "lattn.attention" in reachable("lattn.family.luna")
    assert _violations("lattn.widgets.base", ("lattn.display",)), "widgets.base imports lattn.display"


@pytest.mark.parametrize("module", _modules_under(*COMPUTE))
def test_compute_modules_import_no_presentation(module):
    """Mechanisms, models, tasks, training and cost formulas know no notebooks, display code, figures or widgets:
    importing one imports none of them."""
    bad = _violations(module, (*PRESENTATION, "matplotlib", "ipywidgets", "IPython"))
    assert not bad, "compute imports presentation:\n" + "\n".join(bad)


# Presentation a compute function imports only when it is called, and why. Anything new here is a layering slip.
LAZY_PRESENTATION = {("lattn.train", "lattn.display")}  # fit(progress=True): the default progress bar


def test_compute_functions_import_presentation_only_where_listed():
    found = {
        (module, name)
        for module in _modules_under(*COMPUTE)
        for name in direct_imports(module, in_functions=True)
        if any(name == f or name.startswith(f + ".") for f in PRESENTATION) and name in MODULES
    }
    assert found == LAZY_PRESENTATION


@pytest.mark.parametrize("module", _modules_under("viz"))
def test_viz_takes_arrays_and_results(module):
    """Figures are drawn from arrays and results: viz imports no experiments, benchmarks or widgets."""
    forbidden = ("lattn.experiments", "lattn.bench", "lattn.widgets")
    lazy = [n for n in direct_imports(module, in_functions=True) if any(n.startswith(f) for f in forbidden)]
    bad = _violations(module, forbidden) + lazy
    assert not bad, "viz imports what it should be given:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", _modules_under("widgets"))
def test_widgets_hold_no_maths_and_draw_nothing(module):
    """Widgets wire controls to compute and viz: no torch maths of their own (torch.nn.functional, torch.linalg,
    torch.fft), no pyplot drawing, no notebook executor."""
    forbidden = ("torch.nn.functional", "torch.linalg", "torch.fft", "matplotlib.pyplot", "lattn.notebooks")
    imported = direct_imports(module, in_functions=True)
    bad = [name for name in imported if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_file_is_at_most_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"lattn/{path.relative_to(PACKAGE)} has {lines} lines (> {MAX_LINES}): split it"
