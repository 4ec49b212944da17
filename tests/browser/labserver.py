"""A throw-away Jupyter server for the browser tests: JupyterLab 4, or the classic Notebook 6.5 (``frontend``).

The classic frontend is what the Colab-like venv has (Notebook 6.5 + widgetsnbextension 3.6, i.e. the ipywidgets
7.7.1 views in the page). Started from this Python (so its ``python3`` kernel is this venv), on 127.0.0.1 with a free fixed port, no token,
no password, no XSRF check, ``allow_root`` (CI runs as root), a temporary root holding copies of the notebooks, and
its own config/data/runtime/settings/workspaces folders, so nothing of the user's Jupyter set-up leaks in. News,
update checks, the extension manager and cell windowing (which removes off-screen cells from the page) are off.
``stop()`` ends the server and every process it started (kernels run in their own sessions, so they are found
through psutil before the server goes and killed if they outlive it).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

# settings id → values, written as JUPYTERLAB_SETTINGS_DIR/<package>/<plugin>.jupyterlab-settings
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
    "@jupyterlab/extensionmanager-extension:plugin": {"enabled": False},
}


REPO = Path(__file__).resolve().parents[2]


def notebook_dir() -> Path:
    return Path(os.environ.get("LATTN_NOTEBOOKS", REPO / "notebooks"))


def all_notebooks() -> list[Path]:
    return sorted(notebook_dir().glob("*.ipynb"))


def artifacts_dir() -> Path:
    default = REPO / "artifacts" / ("browser" if frontend() == "lab" else f"browser-{frontend()}")
    return Path(os.environ.get("LATTN_ARTIFACTS", default)).resolve()


FRONTENDS = ("lab", "classic")


def frontend() -> str:
    """Which frontend this run drives: ``LATTN_FRONTEND`` (``lab``, the default, or ``classic``)."""
    name = os.environ.get("LATTN_FRONTEND", "lab")
    if name not in FRONTENDS:
        raise ValueError(f"LATTN_FRONTEND must be one of {FRONTENDS}, got {name!r}")
    return name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(settings_dir: Path) -> None:
    for plugin_id, values in LAB_SETTINGS.items():
        package, plugin = plugin_id.split(":")
        path = settings_dir / package / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))


class LabServer:
    """``LabServer(workdir, notebooks, frontend).start()`` → ``.url``; always pair with ``stop()``."""

    def __init__(self, workdir: Path, notebooks: list[Path], frontend: str = "lab") -> None:
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
        self.frontend = frontend
        self.workdir = Path(workdir)
        self.root = self.workdir / "root"
        self.notebooks = notebooks
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"{frontend}.log"
        self._log = None

    def start(self, timeout: float = 120.0) -> LabServer:
        self.root.mkdir(parents=True, exist_ok=True)
        for nb in self.notebooks:
            shutil.copy2(nb, self.root / nb.name)
        env = dict(os.environ)
        for var, sub in [
            ("JUPYTER_CONFIG_DIR", "config"),
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTERLAB_SETTINGS_DIR", "settings"),
            ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
            ("IPYTHONDIR", "ipython"),
            ("MPLCONFIGDIR", "mpl"),
        ]:
            (self.workdir / sub).mkdir(exist_ok=True)
            env[var] = str(self.workdir / sub)
        write_settings(self.workdir / "settings")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("JUPYTER_PATH", None)
        env.pop("MPLBACKEND", None)  # a learner's kernel picks its own (inline), whatever pytest's conftest set
        cmd = self.lab_command() if self.frontend == "lab" else self.classic_command()
        self._log = open(self.log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.frontend} server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the {self.frontend} server did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def lab_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.allow_root=True",
            "--IdentityProvider.token=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True",
        ]

    def classic_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "notebook",
            "--no-browser",
            "--NotebookApp.ip=127.0.0.1",
            f"--NotebookApp.port={self.port}",
            "--NotebookApp.port_retries=0",
            "--NotebookApp.allow_root=True",
            "--NotebookApp.token=",
            "--NotebookApp.password=",
            "--NotebookApp.disable_check_xsrf=True",
            f"--NotebookApp.notebook_dir={self.root}",
        ]

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def api(self, method: str, path: str) -> object:
        req = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """End every session and kernel (between notebooks), ignoring a server that is already gone."""
        try:
            for session in self.api("GET", "/api/sessions"):
                self.api("DELETE", f"/api/sessions/{session['id']}")
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass

    def stop(self, grace: float = 15.0) -> list[int]:
        """Stop the server and all its descendants; returns the pids that had to be killed."""
        if self.proc is None:
            return []
        killed: list[int] = []
        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        if self.proc.poll() is None:
            self.shutdown_kernels()
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server handles SIGTERM by closing its kernels
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(grace)
                killed.append(self.proc.pid)
        _, alive = psutil.wait_procs(descendants, timeout=grace)
        for p in alive:
            try:
                p.kill()
                killed.append(p.pid)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=grace)
        if self._log:
            self._log.close()
        self.proc = None
        return killed
