"""Driving a notebook from Playwright: open, run all, read errors, find and move explorers.

Two frontends: JupyterLab 4 (ipywidgets 8 views; ``window.jupyterapp``, exposed by the test server) and the classic
Notebook 6.5 (ipywidgets 7 views, as in Colab; ``window.Jupyter``). Everything here works on what a learner sees:
the page's DOM and the frontend's own objects. An explorer is found by its status label (``.lattn-status``, text ``rendered N: …``, written by the kernel
last); its picture is the ``<img>`` in the same VBox. A change is measured from the input event (key or click) to the
redrawn image's ``load`` event, both timed in the page with ``performance.now()``.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote

LAB_KERNEL_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""

LAB_RUN_ALL = """() => {
  window.__lattnRun = null;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => { window.__lattnRun = {ok: ok}; }, err => { window.__lattnRun = {error: String(err)}; });
}"""

# every code cell: index, execution count, and its error outputs
LAB_CELL_REPORT = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.filter(c => c.model.type === 'code').map(c => ({
    index: panel.content.widgets.indexOf(c),
    count: c.model.executionCount,
    errors: c.model.outputs.toJSON().filter(o => o.output_type === 'error')
      .map(o => `${o.ename}: ${o.evalue}`),
  }));
}"""

# silent code in the notebook's kernel; returns what it printed (nothing of it appears in the notebook)
LAB_KERNEL_EXEC = """async (code) => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const future = kernel.requestExecute({code: code, silent: false, store_history: false});
  let text = '';
  future.onIOPub = msg => {
    if (msg.header.msg_type === 'stream' && msg.content.name === 'stdout') text += msg.content.text;
    if (msg.header.msg_type === 'error') text += msg.content.ename + ': ' + msg.content.evalue;
  };
  await future.done;
  return text;
}"""

# NOTE: the widgets extension loads after the notebook, then asks the kernel for existing widgets and re-renders the
# saved widget outputs; cells run before that has settled get their widgets dropped (nothing shows). Ready means:
# kernel_ready seen (info_reply), the manager attached, no request of the page still waiting for the kernel, idle.
CLASSIC_KERNEL_READY = """() => {
  const nb = window.Jupyter && window.Jupyter.notebook, k = nb && nb.kernel;
  return !!k && nb._fully_loaded && k.is_connected() && !!k.widget_manager
    && Object.keys(k.info_reply).length > 0 && Object.keys(k._msg_callbacks).length === 0
    && document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null;
}"""

CLASSIC_IDLE = "() => document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null"

CLASSIC_RUN_ALL = "() => { window.Jupyter.notebook.execute_all_cells(); }"

# run-all is over when no code cell is queued or running ('*') and the kernel is idle
CLASSIC_RUN_DONE = """() => window.Jupyter.notebook.get_cells().every(
    c => c.cell_type !== 'code' || c.input_prompt_number !== '*')
  && document.querySelector('#kernel_indicator_icon.kernel_idle_icon') !== null"""

CLASSIC_CELL_REPORT = """() => window.Jupyter.notebook.get_cells().map((c, i) => ({cell: c, index: i}))
  .filter(x => x.cell.cell_type === 'code').map(x => ({
    index: x.index,
    count: typeof x.cell.input_prompt_number === 'number' ? x.cell.input_prompt_number : null,
    errors: x.cell.output_area.outputs.filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`),
  }))"""

# done once the reply and the kernel's idle status for this request are in (all its output has arrived by then)
CLASSIC_KERNEL_EXEC = """(code) => new Promise(resolve => {
  let text = '', replied = false, idle = false;
  const done = () => { if (replied && idle) resolve(text); };
  window.Jupyter.notebook.kernel.execute(code, {
    iopub: {
      output: msg => {
        if (msg.msg_type === 'stream' && msg.content.name === 'stdout') text += msg.content.text;
        if (msg.msg_type === 'error') text += msg.content.ename + ': ' + msg.content.evalue;
      },
      status: msg => { if (msg.content.execution_state === 'idle') { idle = true; done(); } },
    },
    shell: {reply: () => { replied = true; done(); }},
  }, {silent: false, store_history: false});
})"""

# the widget manager applies a comm message's state in promise callbacks, and the views redraw on the next frames
SETTLE = "() => new Promise(r => setTimeout(() => requestAnimationFrame(() => requestAnimationFrame(r)), 100))"

# how many explorers the kernel holds (gc, since a notebook may keep them anywhere); leaves no name behind
COUNT_EXPLORERS_PY = """
def _lattn_count_explorers():
    import gc, warnings
    from lattn.widgets.base import Explorer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() on some torch objects warns
        return sum(isinstance(o, Explorer) for o in gc.get_objects())
print(_lattn_count_explorers())
del _lattn_count_explorers
"""

# the <img>'s pixels, decoded by the browser: kept before a change, compared after it
IMAGE_PIXELS = """async (img) => {
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}"""
KEEP_PIXELS = f"async (img) => {{ window.__lattnPixels = await ({IMAGE_PIXELS})(img); }}"
CHANGED_PIXELS = f"""async (img) => {{
  const a = window.__lattnPixels, b = await ({IMAGE_PIXELS})(img);
  if (a.width !== b.width || a.height !== b.height) return {{changed: b.width * b.height, total: b.width * b.height}};
  let changed = 0;
  for (let i = 0; i < a.data.length; i += 4)
    if (a.data[i] !== b.data[i] || a.data[i + 1] !== b.data[i + 1] || a.data[i + 2] !== b.data[i + 2]
        || a.data[i + 3] !== b.data[i + 3]) changed++;
  return {{changed: changed, total: a.width * a.height}};
}}"""

# NOTE: re-rendering an unchanged figure with a layout engine (constrained/tight) moves a few pixels, so "the
# picture changed" means: at least this fraction of its pixels differ (and at least MIN_CHANGED_PIXELS).
MIN_CHANGED_FRACTION = 0.001
MIN_CHANGED_PIXELS = 20

# timestamps of the next input event, image src change, image load and status change in this explorer
INSTALL_PROBE = """(box) => {
  const status = box.querySelector('.lattn-status'), img = box.querySelector('img');
  const p = {input: null, src: null, load: null, status: null};
  const mark = k => () => { if (p[k] === null) p[k] = performance.now(); };
  const onInput = mark('input');
  const events = ['keydown', 'pointerdown', 'mousedown', 'change'];
  events.forEach(e => document.addEventListener(e, onInput, {capture: true}));
  const onLoad = () => { if (p.src !== null && p.load === null) p.load = performance.now(); };
  img.addEventListener('load', onLoad);
  const observers = [new MutationObserver(mark('src')), new MutationObserver(mark('status'))];
  observers[0].observe(img, {attributes: true, attributeFilter: ['src']});
  observers[1].observe(status, {childList: true, characterData: true, subtree: true});
  window.__lattnProbe = {p, stop: () => {
    events.forEach(e => document.removeEventListener(e, onInput, {capture: true}));
    img.removeEventListener('load', onLoad);
    observers.forEach(o => o.disconnect());
  }};
}"""

# a control's description: the first non-empty label in its box (ipywidgets 8 puts a zero-width space in empty ones)
LABEL_TEXT = """box => [...box.querySelectorAll('.widget-label, .widget-label-basic')]
  .map(e => e.textContent.replace(/\\u200b/g, '').trim()).find(t => t) || ''"""

# (value, min, max) of a slider handle: noUiSlider's aria attributes (ipywidgets 8), else the jQuery UI handle's
# offset in % (ipywidgets 7 bundles its own jQuery, out of the page's reach; min == max leaves no valid offset)
SLIDER_POSITION = """h => {
  if (h.hasAttribute('aria-valuenow'))
    return ['aria-valuenow', 'aria-valuemin', 'aria-valuemax'].map(a => +h.getAttribute(a));
  const left = parseFloat(h.style.left);
  return isNaN(left) ? [0, 0, 0] : [left, 0, 100];
}"""
SLIDER_HANDLE = ".noUi-handle, .ui-slider-handle"

READ_PROBE = "() => { window.__lattnProbe.stop(); return window.__lattnProbe.p; }"

STATUS_RE = re.compile(r"^rendered (\d+): ?(.*)$", re.S)


def parse_status(text: str) -> tuple[int, str]:
    """``"rendered 3: heads=2"`` → ``(3, "heads=2")``."""
    m = STATUS_RE.match(text.strip())
    if not m:
        raise AssertionError(f"status label does not read 'rendered N: …': {text!r}")
    return int(m.group(1)), m.group(2)


@dataclass
class Measurement:
    notebook: str
    explorer: int  # 1-based, in page order
    control: str  # the control's description (or its kind)
    kind: str  # slider / checkbox / dropdown / toggle / radio
    image_ms: list[float]  # input event → redrawn image loaded, one per change
    status_ms: list[float]  # input event → status label rewritten


def latency_table(rows: list[Measurement]) -> str:
    lines = [
        "| notebook | explorer | control | changes | image ms (median) | image ms (min–max) | status ms (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        lines.append(
            f"| {m.notebook} | {m.explorer} | {m.kind} `{m.control}` | {len(m.image_ms)} | "
            f"{statistics.median(m.image_ms):.0f} | {min(m.image_ms):.0f}–{max(m.image_ms):.0f} | "
            f"{statistics.median(m.status_ms):.0f} |"
        )
    return "\n".join(lines)


class NotebookPage:
    """One notebook open in a frontend; subclasses know how that frontend opens, runs and reports."""

    notebook = ""  # CSS selector of the notebook's area on the page

    def __init__(self, page, base_url: str, name: str) -> None:
        self.page = page
        self.name = name
        self.open(base_url)

    def open(self, base_url: str) -> None:
        raise NotImplementedError

    def run_all(self, timeout_s: float) -> None:
        raise NotImplementedError

    def cell_report(self) -> list[dict]:
        """Each code cell: ``index``, ``count`` (None if it did not run), ``errors``."""
        raise NotImplementedError

    def kernel(self, code: str) -> str:
        """Run code in the notebook's kernel (nothing shows in the notebook); returns what it printed."""
        raise NotImplementedError

    def settle(self) -> None:
        """Wait until the kernel is idle and the page has applied the widget updates it sent (after ``kernel()``)."""
        raise NotImplementedError

    def cell_problems(self) -> list[str]:
        problems = []
        for cell in self.cell_report():
            if cell["count"] is None:
                problems.append(f"cell {cell['index']} did not run")
            problems += [f"cell {cell['index']} shows {e}" for e in cell["errors"]]
        if self.page.locator(f"{self.notebook} :text('Error displaying widget')").count():
            problems.append("a widget failed to display ('Error displaying widget')")
        return problems

    def stored_pictures(self) -> int:
        """Pictures (``<img>``) the notebook shows as opened, before anything runs; widget errors count as -1 each."""
        return self.page.evaluate(
            """(sel) => {
              const nb = document.querySelector(sel);
              const errors = [...nb.querySelectorAll('*')].filter(e => !e.childElementCount
                && /Error displaying widget|model not found/.test(e.textContent)).length;
              return errors ? -errors : nb.querySelectorAll('.jp-RenderedImage img, .output_png img').length;
            }""",
            self.notebook,
        )

    def widget_diagnostics(self) -> str:
        """What the page shows of widgets: for a message when explorers are missing."""
        return self.page.evaluate(
            """(sel) => {
              const nb = document.querySelector(sel);
              const boxes = nb.querySelectorAll('.widget-vbox').length;
              const errors = [...nb.querySelectorAll('*')].map(e => e.childElementCount ? '' : e.textContent)
                .filter(t => /Error displaying widget|model not found/.test(t)).slice(0, 3);
              return `${boxes} widget VBoxes, ${nb.querySelectorAll('.lattn-status').length} status labels, `
                + `widget errors: ${JSON.stringify(errors)}`;
            }""",
            self.notebook,
        )

    def explorers(self, expected: int, timeout_s: float = 60.0) -> list[Explorer]:
        """The explorers on the page, once at least ``expected`` status labels have appeared (or after the timeout)."""
        selector = f"{self.notebook} .lattn-status"
        try:
            self.page.wait_for_function(
                "([sel, n]) => document.querySelectorAll(sel).length >= n",
                arg=[selector, expected],
                timeout=timeout_s * 1000,
            )
        except Exception:  # fewer on the page: the caller compares the counts and says so
            pass
        labels = self.page.locator(selector)
        return [Explorer(self.page, labels.nth(i), i + 1) for i in range(labels.count())]


class LabNotebook(NotebookPage):
    """JupyterLab 4 (ipywidgets 8 in the page)."""

    notebook = ".jp-Notebook"

    def open(self, base_url: str) -> None:
        self.page.goto(f"{base_url}/lab/tree/{quote(self.name)}?reset")
        self.page.wait_for_selector(self.notebook)
        for _ in range(2):  # idle twice, a second apart: let the widget manager's start-up talk with the kernel end
            self.page.wait_for_function(LAB_KERNEL_READY)
            self.page.wait_for_timeout(1000)

    def run_all(self, timeout_s: float) -> None:
        self.page.evaluate(LAB_RUN_ALL)
        self.page.wait_for_function("() => window.__lattnRun !== null", timeout=timeout_s * 1000)
        outcome = self.page.evaluate("() => window.__lattnRun")
        assert "error" not in outcome, f"run-all failed in the page: {outcome['error']}"
        self.page.wait_for_function(LAB_KERNEL_READY, timeout=timeout_s * 1000)

    def cell_report(self) -> list[dict]:
        return self.page.evaluate(LAB_CELL_REPORT)

    def kernel(self, code: str) -> str:
        return self.page.evaluate(LAB_KERNEL_EXEC, code)

    def settle(self) -> None:
        self.page.wait_for_function(LAB_KERNEL_READY)
        self.page.evaluate(SETTLE)


class ClassicNotebook(NotebookPage):
    """The classic Notebook 6.5 (ipywidgets 7 in the page, the views Colab's frontend uses)."""

    notebook = "#notebook"

    def open(self, base_url: str) -> None:
        self.page.goto(f"{base_url}/notebooks/{quote(self.name)}")
        for _ in range(2):  # ready twice, a second apart: the widget manager's start-up requests come one by one
            self.page.wait_for_function(CLASSIC_KERNEL_READY)
            self.page.wait_for_timeout(1000)

    def run_all(self, timeout_s: float) -> None:
        self.page.evaluate(CLASSIC_RUN_ALL)
        self.page.wait_for_timeout(500)  # let the first cell get its '*' before asking whether all are done
        self.page.wait_for_function(CLASSIC_RUN_DONE, timeout=timeout_s * 1000)

    def cell_report(self) -> list[dict]:
        return self.page.evaluate(CLASSIC_CELL_REPORT)

    def kernel(self, code: str) -> str:
        return self.page.evaluate(CLASSIC_KERNEL_EXEC, code)

    def settle(self) -> None:
        # NOTE: not CLASSIC_KERNEL_READY: the widget views' own comm messages get no shell reply, so their callbacks
        # stay in the kernel's table once widgets have talked to the kernel
        self.page.wait_for_function(CLASSIC_IDLE)
        self.page.evaluate(SETTLE)


FRONTEND_PAGES = {"lab": LabNotebook, "classic": ClassicNotebook}


class Explorer:
    """An explorer's VBox on the page: controls, ``<img>`` and status label."""

    def __init__(self, page, status, number: int) -> None:
        self.page = page
        self.status = status
        self.box = status.locator("xpath=..")
        self.image = self.box.locator("img")
        self.number = number

    def read_status(self) -> tuple[int, str]:
        return parse_status(self.status.inner_text())

    def sliders(self) -> list[tuple[str, object]]:
        """(description, handle) of each slider that can move (min < max)."""
        boxes = self.box.locator(".widget-slider")
        out = []
        for i in range(boxes.count()):
            box = boxes.nth(i)
            handle = box.locator(SLIDER_HANDLE).first
            _, low, high = handle.evaluate(SLIDER_POSITION)
            if low == high:
                continue
            out.append((box.evaluate(LABEL_TEXT) or f"slider {i + 1}", handle))
        return out

    def toggles(self) -> list[tuple[str, str, object]]:
        """(kind, description, element) of the first checkbox, dropdown, radio group and toggle button, if any."""
        found = []
        for kind, box_sel, target_sel in [
            ("checkbox", ".widget-checkbox", "input[type=checkbox]"),
            ("dropdown", ".widget-dropdown", "select"),
            ("radio", ".widget-radio", "input[type=radio]"),
            ("toggle", ".widget-toggle-buttons", "button"),
            ("toggle", "button.widget-toggle-button:not(.widget-toggle-buttons *)", None),
        ]:
            boxes = self.box.locator(box_sel)
            if not boxes.count():
                continue
            box = boxes.first
            if target_sel is None:
                found.append((kind, box.inner_text().strip() or kind, box))
                continue
            found.append((kind, box.evaluate(LABEL_TEXT) or kind, box.locator(target_sel)))
        return found

    def change(self, action, what: str, timeout_s: float = 60.0) -> tuple[float, float]:
        """Run ``action`` (one user input on the control ``what``), wait for the kernel's new render.

        Returns (image ms, status ms): from the input event to the redrawn image's load and to the new status text.

        Asserts one more render, a rewritten status text, and a picture whose pixels changed (not only its bytes).
        """
        count0, text0 = self.read_status()
        self.image.evaluate(KEEP_PIXELS)
        self.box.evaluate(INSTALL_PROBE)
        action()
        self.page.wait_for_function(
            "([el, n]) => { const m = el.textContent.match(/^rendered (\\d+)/); return m && +m[1] > n; }",
            arg=[self.status.element_handle(), count0],
            timeout=timeout_s * 1000,
        )
        try:  # the image message comes before the status one; its load can land just after
            self.page.wait_for_function("() => window.__lattnProbe.p.load !== null", timeout=5000)
        except Exception:
            pass
        probe = self.page.evaluate(READ_PROBE)
        count1, text1 = self.read_status()
        who = f"explorer {self.number}, {what}"
        assert count1 == count0 + 1, f"{who}: expected one render, got {count1 - count0}"
        assert text1 != text0, f"{who}: the status label does not report the change, it still reads {text0!r}"
        diff = self.image.evaluate(CHANGED_PIXELS)
        enough = max(MIN_CHANGED_PIXELS, MIN_CHANGED_FRACTION * diff["total"])
        assert diff["changed"] >= enough, (
            f"{who}: the picture did not change ({diff['changed']} of {diff['total']} pixels; status {text1!r})"
        )
        assert probe["input"] is not None, "the probe saw no input event"
        shown = probe["load"] if probe["load"] is not None else probe["src"]
        assert shown is not None, f"{who}: the <img> src never changed"
        return shown - probe["input"], probe["status"] - probe["input"]

    def move_slider(self, name: str, handle, moves: int) -> tuple[list[float], list[float]]:
        """Move one slider ``moves`` times by one step, back and forth (away from the end it sits at)."""
        now, _, top = handle.evaluate(SLIDER_POSITION)
        keys = ["ArrowLeft", "ArrowRight"] if now >= top else ["ArrowRight", "ArrowLeft"]
        image_ms, status_ms = [], []
        for i in range(moves):
            a, b = self.change(lambda key=keys[i % 2]: handle.press(key), f"slider {name!r} ({keys[i % 2]})")
            image_ms.append(a)
            status_ms.append(b)
        return image_ms, status_ms

    def flip(self, kind: str, name: str, target, times: int) -> tuple[list[float], list[float]]:
        """Change a non-slider control ``times`` times (to another option / state each time)."""
        image_ms, status_ms = [], []
        for _ in range(times):
            if kind == "dropdown":
                n = target.locator("option").count()
                index = target.evaluate("s => s.selectedIndex")
                act = partial(target.select_option, index=(index + 1) % n)
            elif kind in ("radio", "toggle") and target.count() > 1:
                index = target.evaluate_all(
                    "els => els.findIndex(e => !(e.checked || e.classList.contains('mod-active')))"
                )
                act = target.nth(index).click
            else:
                act = target.first.click
            a, b = self.change(act, f"{kind} {name!r}")
            image_ms.append(a)
            status_ms.append(b)
        return image_ms, status_ms
